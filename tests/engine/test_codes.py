"""The scripts' negative replies: every code a script's header lists is in
the one table (conveyor.engine.codes), meaning what the table says."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from conveyor import JobIsActive, JobNotFound, StaleLease
from conveyor.engine.codes import Reply, job_error

#: The word a header uses for each code.
WORDS = {Reply.MISSING: "missing", Reply.SUPERSEDED: "superseded", Reply.ACTIVE: "active"}


def _headers() -> dict[str, str]:
    lua = resources.files("conveyor.engine") / "lua"
    out = {}
    for entry in lua.iterdir():
        if entry.name.endswith(".lua"):
            lines = entry.read_text().splitlines()
            out[entry.name] = "\n".join(line for line in lines if line.startswith("--"))
    return out


def test_every_negative_code_a_header_lists_is_in_the_table() -> None:
    found = 0
    for name, header in _headers().items():
        # "-1 missing", "-2 lock token superseded", "-4 if jobs are active";
        # a bare "-1" (no words: "or -1" for "none") is a value, not a code
        for code, words in re.findall(r"(-\d+) ([a-z][a-z ]*)", header):
            assert int(code) in Reply._value2member_map_, f"{name}: {code} {words}"
            assert WORDS[Reply(int(code))] in words, f"{name}: {code} {words}"
            found += 1
    assert found >= 6  # remove_job, obliterate, cancel_job, update_progress, finish_jobs


@pytest.mark.parametrize(
    ("code", "error"),
    [(Reply.MISSING, JobNotFound), (Reply.SUPERSEDED, StaleLease), (Reply.ACTIVE, JobIsActive)],
)
def test_each_code_about_a_job_becomes_its_error(code: Reply, error: type[Exception]) -> None:
    raised = job_error(code, "42")
    assert type(raised) is error and "42" in str(raised)


def test_a_reply_that_is_not_a_code_is_no_error() -> None:
    assert job_error(1, "42") is None and job_error(0, "42") is None
