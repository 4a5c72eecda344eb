"""The ``conveyor`` command through its real entry point, against the test
Redis: inspection with --json, admin actions, check, scheduler and serve."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from conveyor import Discard, JobContext, JobState, Queue, Worker
from conveyor.testing import RedisServer, free_port
from faults.processes import wait_until

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": url, "COLUMNS": "200"}
    done = subprocess.run([CONVEYOR, *args], capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def start(url: str, *args: str) -> subprocess.Popen[bytes]:
    """Starts a long-running command (its output discarded)."""
    env = {**os.environ, "REDIS_URL": url}
    return subprocess.Popen([CONVEYOR, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def as_json(url: str, *args: str) -> Any:
    return json.loads(cli(url, *args, "--json").stdout)


async def test_inspection_commands_print_json_for_scripts(redis_server: RedisServer, queue: Queue) -> None:
    jobs = await queue.add_bulk([("email", {"n": i}) for i in range(3)])
    listed = {q["name"]: q for q in as_json(redis_server.url, "queues")}
    assert listed[queue.name]["counts"]["waiting"] == 3
    page = as_json(redis_server.url, "jobs", queue.name, "--state", "waiting", "--count", "2")
    assert [j["id"] for j in page] == [j.id for j in jobs[:2]]
    one = as_json(redis_server.url, "job", queue.name, jobs[2].id)
    assert one["data"] == {"n": 2} and one["state"] == "waiting" and one["logs"] == []
    table = cli(redis_server.url, "queues").stdout
    assert queue.name in table


async def test_admin_commands_change_the_queue(redis_server: RedisServer, queue: Queue) -> None:
    async def refuse(job: JobContext) -> None:
        raise Discard(f"bad input {job.data}")

    await queue.add_bulk([("j", i) for i in range(4)])
    await Worker(queue, refuse).run(burst=True)
    url = redis_server.url
    cli(url, "pause", queue.name)
    assert await queue.is_paused()
    cli(url, "resume", queue.name)
    assert not await queue.is_paused()
    letters = as_json(url, "dlq", "list", queue.name, "--search", "bad input 2")
    assert [j["data"] for j in letters] == [2]
    assert "4 jobs replayed" in cli(url, "dlq", "replay", queue.name).stdout
    assert (await queue.counts())[JobState.WAITING] == 4
    await Worker(queue, refuse).run(burst=True)
    assert "4 jobs removed" in cli(url, "dlq", "purge", queue.name).stdout
    assert (await queue.counts())[JobState.FAILED] == 0


async def test_an_unknown_queue_is_a_clear_error(redis_server: RedisServer) -> None:
    done = cli(redis_server.url, "jobs", "no-such-queue", check=False)
    assert done.returncode == 1 and "unknown queue 'no-such-queue'" in done.stderr


def test_check_reports_and_fails_without_redis(redis_server: RedisServer) -> None:
    ok = cli(redis_server.url, "check")
    assert "Redis answers in" in ok.stdout and "maxmemory-policy" in ok.stdout
    gone = cli(f"redis://127.0.0.1:{free_port()}", "check", check=False)
    assert gone.returncode == 1 and "fail" in gone.stdout


async def test_the_scheduler_command_fires_schedules_until_sigterm(
    redis_server: RedisServer, queue: Queue
) -> None:
    await queue.upsert_schedule("fast", "tick", every=0.05, missed="all")
    proc = start(redis_server.url, "scheduler", queue.name, "--poll", "0.02")
    try:

        async def ticked() -> bool:
            return (await queue.counts())[JobState.WAITING] >= 3

        await wait_until(ticked, within=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


async def test_the_serve_command_answers_health_and_stops_on_sigterm(redis_server: RedisServer) -> None:
    port = free_port()
    proc = start(redis_server.url, "serve", "--port", str(port))
    try:
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    health = await client.get(f"http://127.0.0.1:{port}/health")
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the server did not come up"
                    await asyncio.sleep(0.1)
        assert health.status_code == 200 and health.json()["redis"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal so the exit status tells why it stopped
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
