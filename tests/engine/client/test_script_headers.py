"""Each script's header says what it takes and replies; its Command (in
engine/commands) names the same KEYS, ARGV and reply fields in the same
order, and the typed function beside it is the script's only caller. The
suite runs with every call held to the header's counts
(CONVEYOR_CHECK_SCRIPTS=1, set by the conftest)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from importlib import resources
from pathlib import Path

import pytest

import conveyor
import conveyor.engine.commands
from conveyor.engine.client.command import COMMANDS
from conveyor.engine.client.headers import Count, check_call, names_of, shape_of, slug
from conveyor.engine.client.scripts import script

NAMES = sorted(
    entry.name.removesuffix(".lua")
    for entry in (resources.files("conveyor.engine") / "lua").iterdir()
    if entry.name.endswith(".lua")
)
for _module in pkgutil.iter_modules(conveyor.engine.commands.__path__):
    importlib.import_module(f"conveyor.engine.commands.{_module.name}")


@pytest.mark.parametrize("name", NAMES)
def test_every_script_header_says_what_it_takes(name: str) -> None:
    shape = shape_of(name)
    assert shape.keys.least > 0 or shape.keys.more, name
    assert shape.argv.least > 0 or shape.argv.more, name


@pytest.mark.parametrize("name", NAMES)
def test_every_script_has_a_command_that_names_what_its_header_does(name: str) -> None:
    assert name in COMMANDS, f"lua/{name}.lua has no Command in engine/commands"
    command, header = COMMANDS[name], names_of(name)
    assert command.keys == header.keys
    assert command.more_keys == header.more_keys
    assert command.argv == header.argv
    assert command.more_argv == header.more_argv
    # a script that replies { a, b, ... } has a NamedTuple of those fields
    assert (command.reply._fields if command.reply else None) == header.returns


def test_every_command_is_a_script() -> None:
    assert sorted(COMMANDS) == NAMES


def test_only_the_commands_send_scripts() -> None:
    root = Path(conveyor.__file__).parent
    allowed = {root / "engine" / "client", root / "engine" / "commands"}
    senders = []
    for path in root.rglob("*.py"):
        if path.parent in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in (
                "conveyor.engine.client.scripts",
                "conveyor.engine.client.command",
            ):
                senders.append(str(path.relative_to(root)))
    assert senders == []


def test_headers_read_as_written() -> None:
    # "-- KEYS: 1 wait ..., 5 waiting-children" / "-- ARGV: 1 job key prefix, 2 logs prefix, 3 id"
    assert shape_of("remove_job").keys == Count(5, more=False)
    assert shape_of("remove_job").argv == Count(3, more=False)
    # "1 active, then the queue's state zsets ..."
    assert shape_of("obliterate").keys == Count(1, more=True)
    # "12... child keys (the job keys of its children)": from the twelfth on, if any
    assert shape_of("add_flow_node").argv == Count(11, more=True)
    assert names_of("add_flow_node").argv[-1] == "child_keys"
    # "3 errors (the group's error hash)": the name, not its note
    assert names_of("claim_events").keys == ("stream", "dead_letter_stream", "errors")
    # "{ now, id, created (1, 0 or 2) }"
    assert names_of("add_job").returns == ("now", "id", "created")
    # "the removed ids": no fields
    assert names_of("clean_jobs").returns is None
    assert slug("the group's error hash") == "groups_error_hash"


def test_a_call_that_does_not_fit_its_header_is_refused() -> None:
    with pytest.raises(AssertionError, match="remove_job: 4 KEYS given, its header lists 5"):
        check_call("remove_job", ["a", "b", "c", "d"], ["p", "l", "1"])
    with pytest.raises(AssertionError, match="obliterate: 4 ARGV given, its header lists 5"):
        check_call("obliterate", ["active"], [1, 2, 3, 4])
    check_call("obliterate", ["active", "wait", "delayed"], [1, 2, 3, 4, 5])


def test_the_suite_checks_every_call() -> None:
    assert script("remove_job").checked
