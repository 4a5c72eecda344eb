"""Starting the test processes (a worker, an event consumer) and watching
their side effects: each process script prints ``ready`` once it runs and
counts every job or event it handles in a ledger hash."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def spawn(script: str, *args: str, output: bool = False) -> subprocess.Popen[str]:
    """Runs ``tests/faults/<script>`` with ``args`` and waits until it is
    ready; with ``output``, what it prints after that stays readable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    if not output:
        proc.stdout.close()
    assert ready == "ready"
    return proc


def spawn_worker(url: str, queue: str, sleep: float, concurrency: int, lock: float) -> subprocess.Popen[str]:
    return spawn("worker_proc.py", url, queue, str(sleep), str(concurrency), str(lock))


def spawn_consumer(
    url: str,
    stream: str,
    group: str,
    name: str,
    *,
    sleep: float = 0.0,
    max_deliveries: int = 5,
    burst: bool = False,
) -> subprocess.Popen[str]:
    mode = "burst" if burst else "run"
    return spawn("consumer_proc.py", url, stream, group, name, str(sleep), str(max_deliveries), mode)


def stop_gracefully(*procs: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM to every process, then each must exit 0 within ``timeout``."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(timeout=timeout) == 0


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def ledger(redis: aredis.Redis, name: str) -> dict[str, int]:
    """How many times each job or event id of queue or stream ``name`` ran."""
    raw = await redis.hgetall(f"ledger:{name}")
    return {k.decode(): int(v) for k, v in raw.items()}


async def starts(redis: aredis.Redis, name: str) -> list[tuple[float, int, str]]:
    """Every handler start of queue ``name``: (time, jobs of the queue
    running with it, job id), in the order recorded."""
    out = []
    for row in await redis.lrange(f"starts:{name}", 0, -1):
        at, running, job_id = row.decode().split(" ", 2)
        out.append((float(at), int(running), job_id))
    return out
