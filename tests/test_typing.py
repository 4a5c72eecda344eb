"""The types a user's checker sees: ``mypy --strict`` and pyright, run on a
small typed app outside the package, catch a wrong argument, an unknown
keyword, a misspelled job option and a task without its context, and
reveal a typed task's job as ``Job[Report]`` and its result as
``Report``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

USER_APP = """\
from datetime import datetime
from typing import reveal_type

from pydantic import BaseModel

from conveyor import Conveyor, SyncTaskContext, TaskContext

app = Conveyor()
imports = app.queue("imports")


class Report(BaseModel):
    artist: str
    shows: int


@imports.task(attempts=5)
async def import_artist(ctx: TaskContext, artist: str, limit: int = 10) -> Report:
    return Report(artist=artist, shows=limit)


@imports.task
async def stamp(ctx: TaskContext) -> datetime:
    return datetime.now()


@imports.task(executor="process")
def crunch(ctx: SyncTaskContext, artist: str) -> Report:
    ctx.progress("crunching", 50)
    return Report(artist=artist, shows=1)


async def main() -> None:
    job = await import_artist.enqueue("Low", limit=3)
    reveal_type(job)  # job
    report = await job.wait_until_finished(timeout=5)
    reveal_type(report)  # result
    reveal_type(await (await stamp.with_options(priority=1).enqueue()).wait_until_finished())  # datetime
    await import_artist.enqueue(5)  # wrong type
    await import_artist.enqueue("Low", limt=3)  # unknown keyword
    await import_artist.with_options(priorty=1).enqueue("Low")  # misspelled option
    reveal_type(await (await crunch.enqueue("Low")).wait_until_finished())  # sync result
    await crunch.enqueue(artist=5)  # sync wrong type


@imports.task(atempts=3)  # misspelled declaration
async def other(ctx: TaskContext) -> None: ...


@imports.task  # no context
async def no_context(n: int) -> int:
    return n
"""


def line_of(marker: str) -> int:
    """The line of USER_APP that ends with ``# marker``."""
    for number, line in enumerate(USER_APP.splitlines(), start=1):
        if line.endswith(f"# {marker}"):
            return number
    raise AssertionError(marker)


def error_lines() -> set[int]:
    """The lines a checker must report errors on, and no others."""
    return {
        line_of(m)
        for m in (
            "wrong type",
            "unknown keyword",
            "misspelled option",
            "misspelled declaration",
            "no context",
            "sync wrong type",
        )
    }


def check(tmp_path: Path, command: list[str]) -> list[str]:
    (tmp_path / "user_app.py").write_text(USER_APP)
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr  # 1: errors found, not a crash
    return done.stdout.splitlines()


@pytest.mark.single_node("its own private Redis, or none: the cluster pass adds nothing")
def test_mypy_strict_checks_a_users_tasks(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--hide-error-context",
            "--no-error-summary",
            "--show-error-codes",
            "user_app.py",
        ],
    )
    found = {
        (int(m[1]), m[2], m[3]) for line in out if (m := re.match(r"user_app\.py:(\d+): (\w+): (.*)", line))
    }
    expected = {
        (line_of("job"), "note", 'Revealed type is "conveyor.engine.job.Job[user_app.Report]"'),
        (line_of("result"), "note", 'Revealed type is "user_app.Report"'),
        (line_of("datetime"), "note", 'Revealed type is "datetime.datetime"'),
        (line_of("sync result"), "note", 'Revealed type is "user_app.Report"'),
        (
            line_of("wrong type"),
            "error",
            'Argument 1 to "enqueue" of "BaseTask" has incompatible type "int"; expected "str"  [arg-type]',
        ),
        (
            line_of("unknown keyword"),
            "error",
            'Unexpected keyword argument "limt" for "enqueue" of "BaseTask"; '
            'did you mean "limit"?  [call-arg]',
        ),
        (
            line_of("misspelled option"),
            "error",
            'Unexpected keyword argument "priorty" for "with_options" of "BaseTask"; '
            'did you mean "priority"?  [call-arg]',
        ),
        (
            line_of("misspelled declaration"),
            "error",
            'Unexpected keyword argument "atempts" for overloaded function "task" of "TaskQueue"; '
            'did you mean "attempts"?  [call-overload]',
        ),
    }
    assert expected <= found, "\n".join(out)
    no_context = [text for line, kind, text in found if line == line_of("no context") and kind == "error"]
    assert no_context and 'expected "Callable[[TaskContext], Awaitable[int]]"' in no_context[0], out
    # the misspelled declaration also leaves its function untyped; nothing else is reported
    assert {line for line, kind, _ in found if kind == "error"} == error_lines(), "\n".join(out)


@pytest.mark.single_node("its own private Redis, or none: the cluster pass adds nothing")
def test_pyright_checks_a_users_tasks(tmp_path: Path) -> None:
    pyright = Path(sys.executable).parent / "pyright"
    if not pyright.exists():
        pytest.skip("pyright is not installed (it comes with the dev extra)")
    out = check(tmp_path, [str(pyright), "--pythonpath", sys.executable, "user_app.py"])
    found = {
        (int(m[1]), m[2], m[3])
        for line in out
        if (m := re.match(r"\s+\S+user_app\.py:(\d+):\d+ - (\w+): (.*)", line))
    }
    expected = {
        (line_of("job"), "information", 'Type of "job" is "Job[Report]"'),
        (line_of("result"), "information", 'Type of "report" is "Report"'),
        (
            line_of("sync result"),
            "information",
            'Type of "await (await crunch.enqueue("Low")).wait_until_finished()" is "Report"',
        ),
        (
            line_of("wrong type"),
            "error",
            'Argument of type "Literal[5]" cannot be assigned to parameter "artist" '
            'of type "str" in function "enqueue"',
        ),
        (line_of("unknown keyword"), "error", 'No parameter named "limt" (reportCallIssue)'),
        (line_of("misspelled option"), "error", 'No parameter named "priorty" (reportCallIssue)'),
        (line_of("misspelled declaration"), "error", 'No overloads for "task" match the provided arguments'),
    }
    assert expected <= found, "\n".join(out)
    stamp = [text for line, _, text in found if line == line_of("datetime")]
    assert stamp and stamp[0].endswith('is "datetime"'), out
    assert {line for line, kind, _ in found if kind == "error"} == error_lines(), "\n".join(out)
