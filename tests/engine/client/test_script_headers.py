"""Each script's header says how many KEYS and ARGV it takes; the suite
runs with every call held to it (CONVEYOR_CHECK_SCRIPTS=1, set by the
conftest), so a caller and a script that disagree fail the first test that
makes the call."""

from __future__ import annotations

from importlib import resources

import pytest

from conveyor.engine.client.headers import Count, check_call, shape_of
from conveyor.engine.client.scripts import script

NAMES = sorted(
    entry.name.removesuffix(".lua")
    for entry in (resources.files("conveyor.engine") / "lua").iterdir()
    if entry.name.endswith(".lua")
)


@pytest.mark.parametrize("name", NAMES)
def test_every_script_header_says_what_it_takes(name: str) -> None:
    shape = shape_of(name)
    assert shape.keys.least > 0 or shape.keys.more, name
    assert shape.argv.least > 0 or shape.argv.more, name


def test_headers_read_as_written() -> None:
    # "-- KEYS: 1 wait ..., 5 waiting-children" / "-- ARGV: 1 job key prefix, 2 logs prefix, 3 id"
    assert shape_of("remove_job").keys == Count(5, more=False)
    assert shape_of("remove_job").argv == Count(3, more=False)
    # "1 active, then the queue's state zsets ..."
    assert shape_of("obliterate").keys == Count(1, more=True)
    # "12... the job keys of its children"
    assert shape_of("add_flow_node").argv == Count(12, more=True)


def test_a_call_that_does_not_fit_its_header_is_refused() -> None:
    with pytest.raises(AssertionError, match="remove_job: 4 KEYS given, its header lists 5"):
        check_call("remove_job", ["a", "b", "c", "d"], ["p", "l", "1"])
    with pytest.raises(AssertionError, match="obliterate: 4 ARGV given, its header lists 5"):
        check_call("obliterate", ["active"], [1, 2, 3, 4])
    check_call("obliterate", ["active", "wait", "delayed"], [1, 2, 3, 4, 5])


def test_the_suite_checks_every_call() -> None:
    assert script("remove_job")._checked
