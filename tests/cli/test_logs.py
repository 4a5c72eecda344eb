"""Logs an operator can use: ``--log-level`` and ``--log-format text|json``
(and their environment variables) on the long-running commands, a line per
step of a job's life with the same fields in text and JSON, and a start-up
line naming the Redis, the queues and the version."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor import Queue, __version__
from conveyor.cli.logs import JsonFormatter, TextFormatter, resolve
from conveyor.errors import InvalidArgument
from polling import wait_until

HANDLERS = """
import asyncio

async def handle(job):
    if job.data == "flaky" and job.attempt < 2:
        raise ConnectionError("upstream timed out")
    if job.data == "broken":
        raise ValueError("no such artist")
    await asyncio.sleep(0.01)
    return "ok"

handlers = {QUEUE: handle}
"""


def record(**extra: Any) -> logging.LogRecord:
    made = logging.LogRecord(
        "conveyor.engine.dispatch", logging.INFO, __file__, 1, "job %s done", ("7",), None
    )
    made.created = 1_780_000_000.25
    made.msecs = 250
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_text_and_json_carry_the_same_fields() -> None:
    fields = {"event": "completed", "queue": "emails", "job_id": "7", "attempt": 1, "duration_ms": 12.5}
    text = TextFormatter().format(record(**fields))
    assert text == (
        "2026-05-28T20:26:40.250Z INFO conveyor.engine.dispatch: job 7 done "
        "event=completed queue=emails job_id=7 attempt=1 duration_ms=12.5"
    )
    parsed = json.loads(JsonFormatter().format(record(**fields)))
    assert parsed == {
        "time": "2026-05-28T20:26:40.250Z",
        "level": "INFO",
        "logger": "conveyor.engine.dispatch",
        "message": "job 7 done",
        **fields,
    }
    # a value with spaces stays one field in text
    assert 'error="no such artist"' in TextFormatter().format(record(error="no such artist"))


def test_levels_and_formats_come_from_the_flags_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_LOG_LEVEL", raising=False)
    monkeypatch.delenv("CONVEYOR_LOG_FORMAT", raising=False)
    assert resolve(None, None) == ("info", "text")
    monkeypatch.setenv("CONVEYOR_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("CONVEYOR_LOG_FORMAT", "json")
    assert resolve(None, None) == ("warning", "json")
    assert resolve("debug", "text") == ("debug", "text")
    for level, fmt in (("loud", None), (None, "xml")):
        with pytest.raises(InvalidArgument):
            resolve(level, fmt)


def run_worker(tmp_path: Path, redis_url: str, queue: str, *args: str, **env: str) -> subprocess.Popen[str]:
    (tmp_path / "logged_handlers.py").write_text(HANDLERS.replace("QUEUE", repr(queue)))
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "logged_handlers:handlers", *args],
        cwd=tmp_path,
        env={**os.environ, "REDIS_URL": redis_url, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def work_then_stop(proc: subprocess.Popen[str], queue: Queue, *data: str) -> str:
    """Adds a job per item of ``data`` (3 attempts, no backoff), waits until
    none is left waiting, running or delayed, then stops the worker; its stderr."""
    for item in data:
        await queue.add(item, item, attempts=3, backoff=0)

    async def settled() -> bool:
        counts = await queue.counts()
        return sum(counts[state] for state in counts if state.value in ("waiting", "active", "delayed")) == 0

    await wait_until(settled, within=30)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


async def test_json_lines_tell_each_step_of_each_job(tmp_path: Path, redis_url: str, queue: Queue) -> None:
    proc = run_worker(tmp_path, redis_url, queue.name, "--log-format", "json")
    err = await work_then_stop(proc, queue, "fine", "flaky", "broken")
    lines = [json.loads(line) for line in err.splitlines()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)

    started = next(line for line in lines if line.get("event") == "process_started")
    assert started["version"] == __version__ and started["queues"] == [queue.name]
    assert started["loop"] == "uvloop"  # installed with Conveyor: workers run on it
    assert (
        started["redis"] == redis_url.removeprefix("redis://").split("/")[0] or "cluster" in started["redis"]
    )
    assert any(line.get("event") == "worker_started" and line["queue"] == queue.name for line in lines)

    def steps(name: str) -> list[tuple[str, int]]:
        return [
            (line["event"], line["attempt"])
            for line in lines
            if line.get("job_name") == name and line.get("queue") == queue.name
        ]

    assert steps("fine") == [("started", 1), ("completed", 1)]
    assert steps("flaky") == [("started", 1), ("retrying", 1), ("started", 2), ("completed", 2)]
    assert steps("broken") == [
        ("started", 1),
        ("retrying", 1),
        ("started", 2),
        ("retrying", 2),
        ("started", 3),
        ("failed", 3),
    ]
    completed = [line for line in lines if line.get("event") == "completed"]
    assert all(line["level"] == "INFO" and line["duration_ms"] >= 0 and line["job_id"] for line in completed)
    failed = next(line for line in lines if line.get("event") == "failed")
    assert failed["level"] == "WARNING" and "no such artist" in failed["message"]


async def test_text_lines_and_the_level_from_the_environment(
    tmp_path: Path, redis_url: str, queue: Queue
) -> None:
    proc = run_worker(
        tmp_path, redis_url, queue.name, CONVEYOR_LOG_LEVEL="warning", CONVEYOR_LOG_FORMAT="text"
    )
    err = await work_then_stop(proc, queue, "fine", "broken")
    # at warning, only the job that failed for good is told
    (line,) = err.splitlines()
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z WARNING conveyor\.worker: job \S+ \(broken\) failed", line)
    assert f"event=failed queue={queue.name}" in line and "job_name=broken attempt=3" in line


async def test_a_worker_runs_on_asyncios_loop_when_uvloop_is_switched_off(
    tmp_path: Path, redis_url: str, queue: Queue
) -> None:
    proc = run_worker(tmp_path, redis_url, queue.name, "--log-format", "json", CONVEYOR_UVLOOP="off")
    err = await work_then_stop(proc, queue, "fine")
    started = next(
        line for line in map(json.loads, err.splitlines()) if line.get("event") == "process_started"
    )
    assert started["loop"] == "asyncio"


def test_a_bad_log_level_is_refused_in_one_line(tmp_path: Path, redis_url: str) -> None:
    proc = run_worker(tmp_path, redis_url, "q", "--log-level", "loud")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip() == "error: log level must be one of debug, info, warning, error, not 'loud'"
