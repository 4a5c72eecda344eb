"""``conveyor worker --processes N``: N real worker processes under a
supervisor. Every job completes once when a child is SIGKILLed midway, a
child that dies at start is started again after growing delays, the
children stop with the supervisor's SIGTERM, and stop by themselves when
the supervisor is killed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue
from conveyor.cli.supervisor import Restarts, Supervisor, describe_exit, process_count
from conveyor.errors import InvalidArgument
from faults.processes import completions, ledger
from polling import wait_until

APP = """
import asyncio
import os
import uuid

from conveyor import Conveyor

if os.environ.get("CONVEYOR_WORKER_INDEX") and os.environ.get("CRASH_AT_START"):
    raise SystemExit(3)

app = Conveyor()
lock = float(os.environ.get("LOCK_DURATION", "1.0"))
work = app.queue(os.environ["QUEUE"], concurrency=4, lock_duration=lock, shutdown_grace=5)


@work.task
async def step(ctx, n: int) -> int:
    await ctx.app.redis.hset(f"ledger:{ctx.queue}", f"{ctx.id} {uuid.uuid4().hex}", 1)
    await asyncio.sleep(0.05 if n >= 0 else 60)
    return n
"""

Start = Callable[..., "Supervised"]
STARTED = re.compile(r"worker process (\d+) started \(pid (\d+)\)")


class Supervised:
    """A ``conveyor worker --processes`` run, its output read line by line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []

    def wait_for(self, pattern: str, within: float = 30) -> re.Match[str]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"exited before {pattern!r}:\n{''.join(self.lines)}")
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no {pattern!r} within {within} s:\n{''.join(self.lines)}")

    def children(self, count: int) -> dict[int, int]:
        """The pids of the first ``count`` children, by number."""
        pids: dict[int, int] = {}
        while len(pids) < count:
            found = self.wait_for(STARTED.pattern)
            pids[int(found.group(1))] = int(found.group(2))
        return pids


@pytest.fixture
def supervise(tmp_path: Path, redis_url: str, queue_name: str) -> Iterator[Start]:
    (tmp_path / "supervised_app.py").write_text(APP)
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, **env: str) -> Supervised:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "supervised_app:app", *args],
            cwd=tmp_path,
            env={**os.environ, "REDIS_URL": redis_url, "QUEUE": queue_name, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        return Supervised(proc)

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
async def test_every_job_completes_once_when_a_child_is_killed_midway(
    supervise: Start, redis: aredis.Redis, queue: Queue
) -> None:
    jobs = [job.id for job in await queue.add_bulk([("step", {"n": i}) for i in range(200)])]
    run = supervise("--processes", "2")
    pids = run.children(2)
    assert len(set(pids.values())) == 2

    async def both_registered() -> bool:
        alive = {w.pid for w in await queue.workers() if w.alive}
        return set(pids.values()) <= alive

    await wait_until(both_registered, within=20)

    async def some_done() -> bool:
        return (await queue.counts())[JobState.COMPLETED] >= 30

    await wait_until(some_done, within=30)
    os.kill(pids[0], signal.SIGKILL)
    run.wait_for(rf"worker process 0 \(pid {pids[0]}\) was killed by SIGKILL .* again in 0.5 s")
    again = run.wait_for(STARTED.pattern)
    assert again.group(1) == "0" and int(again.group(2)) != pids[0]

    async def all_done() -> bool:
        return (await queue.counts())[JobState.COMPLETED] == len(jobs)

    await wait_until(all_done, within=60)
    ran = await ledger(redis, queue.name)
    assert set(ran) == set(jobs)  # none lost
    accepted = await completions(redis, queue.name)
    assert set(accepted) == set(jobs) and set(accepted.values()) == {1}  # each completed once

    run.proc.send_signal(signal.SIGTERM)
    out, _ = run.proc.communicate(timeout=30)
    assert run.proc.returncode == 0, out
    assert "all worker processes stopped" in out
    assert gone(int(again.group(2))) and gone(pids[1])


@pytest.mark.slow
async def test_a_child_that_dies_at_start_is_started_again_after_growing_delays(
    supervise: Start,
) -> None:
    run = supervise("--processes", "1", CRASH_AT_START="1")
    delays = [
        float(
            run.wait_for(r"worker process 0 \(pid \d+\) exited with code 3 .* again in ([\d.]+) s").group(1)
        )
        for _ in range(3)
    ]
    assert delays == [0.5, 1.0, 2.0]
    run.proc.send_signal(signal.SIGTERM)  # while it waits to start the child again
    out, _ = run.proc.communicate(timeout=15)
    assert run.proc.returncode == 0, out


@pytest.mark.slow
async def test_children_stop_by_themselves_when_the_supervisor_is_killed(
    supervise: Start,
) -> None:
    run = supervise("--processes", "2")
    pids = run.children(2)
    run.wait_for("working")  # a child is up
    run.proc.kill()
    run.proc.wait()

    async def both_gone() -> bool:
        return all(gone(pid) for pid in pids.values())

    await wait_until(both_gone, within=20)


@pytest.mark.slow
async def test_a_second_signal_hands_running_jobs_back_at_once(supervise: Start, queue: Queue) -> None:
    long = await queue.add("step", {"n": -1})  # runs for a minute, past the 5 s grace
    # a lease far longer than the test: only the hand back can bring it to waiting,
    # and a busy machine cannot make the lease lapse (it would stay active)
    run = supervise("--processes", "2", LOCK_DURATION="60")
    run.children(2)

    async def running() -> bool:
        return await queue.get_state(long.id) is JobState.ACTIVE

    await wait_until(running, within=20)
    run.proc.send_signal(signal.SIGINT)
    run.wait_for("stopping 2 worker process")
    run.proc.send_signal(signal.SIGINT)
    out, _ = run.proc.communicate(timeout=30)
    assert run.proc.returncode == 0, out
    state = await queue.get_state(long.id)
    assert state is JobState.WAITING, out  # handed back, not left to its lease


def test_bad_process_counts_are_refused_before_anything_starts(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "supervised_app.py").write_text(APP)
    for bad in ("0", "-1", "two", ""):
        done = subprocess.run(
            [sys.executable, "-m", "conveyor", "worker", "supervised_app:app", "--processes", bad],
            cwd=tmp_path,
            env={**os.environ, "REDIS_URL": redis_url, "QUEUE": "unused"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1 and "--processes takes a count" in done.stderr, done.stderr
    with pytest.raises(InvalidArgument):
        process_count("0")
    assert process_count("auto") == len(os.sched_getaffinity(0))
    assert process_count("3") == 3


def test_restart_delays_double_while_a_child_dies_young_and_are_capped() -> None:
    restarts = Restarts(first=0.5, most=4.0)
    assert [restarts.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


async def test_a_child_that_ignores_the_stop_is_killed_after_stop_within(tmp_path: Path) -> None:
    ready = tmp_path / "ignoring"
    stubborn = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
    )
    said: list[str] = []
    supervisor = Supervisor([[sys.executable, "-c", stubborn, str(ready)]], stop_within=0.5, say=said.append)
    running = asyncio.create_task(supervisor.run())

    async def ignoring() -> bool:
        return ready.exists()

    await wait_until(ignoring, within=10)
    await supervisor.close()
    await asyncio.wait_for(running, 20)
    assert supervisor.children == {}
    assert any("did not stop within 0.5 s; killing it" in line for line in said), said
