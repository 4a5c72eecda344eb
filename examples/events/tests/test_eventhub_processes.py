"""The event processor and the dead-letter processor as processes of their
own, each on the three Redis roles, each answering its health check:
healthy while its Redis answers, unhealthy when one is down; ``eventhub
health`` exits by the answer, as a container's health check would use it.
The dead-letter processor handles a dead job on its own."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from conveyor.testing import RedisServer, free_port, start_command, stop_process

EVENTHUB = [sys.executable, "-m", "eventhub.cli"]


def _health(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EVENTHUB, "health", url, "--timeout", "5"], capture_output=True, text=True, timeout=60
    )


def _wait_healthy(url: str, within: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        try:
            answer = httpx.get(url, timeout=5)
            if answer.status_code == 200:
                return answer
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never healthy"
        time.sleep(0.1)


def test_each_process_answers_its_health_check(tmp_path: Path) -> None:
    with RedisServer() as master, RedisServer() as streams, RedisServer() as queue:
        env = {
            "REDIS_URL": master.url,
            "REDIS_STREAMS_URL": streams.url,
            "REDIS_QUEUE_URL": queue.url,
            "EVENTHUB_DLQ_INTERVAL": "0.2",
            "RETRY_DELAY": "0",
        }
        ports = {"processor": free_port(), "dlq": free_port()}
        processes = {
            name: start_command(
                [*EVENTHUB, name, "--health-port", str(port)],
                cwd=tmp_path,
                drop_env=("REDIS_", "EVENTHUB_", "RETRY_"),
                **env,
            )
            for name, port in ports.items()
        }
        try:
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}/health"
                body = _wait_healthy(url).json()
                assert body["process"] == name and body["redis"] == {
                    "master": "ok",
                    "streams": "ok",
                    "queue": "ok",
                }
                checked = _health(url)
                assert checked.returncode == 0, checked.stdout
            # A dead job in a job queue: the dead-letter processor's sweep finds it and settles it
            _dead_job(queue.url)
            deadline = time.monotonic() + 30
            with redis.Redis.from_url(master.url) as client:
                while client.llen("eventhub:alerts") == 0:
                    assert time.monotonic() < deadline, processes["dlq"][1].text
                    time.sleep(0.1)
            # The streams server goes: both say so, and the check fails
            streams.stop()
            for port in ports.values():
                url = f"http://127.0.0.1:{port}/health"
                answer = httpx.get(url, timeout=10)
                assert answer.status_code == 503 and answer.json()["redis"]["streams"] != "ok"
                assert _health(url).returncode == 1
            streams.start()
            for port in ports.values():
                _wait_healthy(f"http://127.0.0.1:{port}/health")
            for process, output in processes.values():
                assert stop_process(process) == 0, output.text
        finally:
            for process, output in processes.values():
                stop_process(process)
                output.close()
    assert _health(f"http://127.0.0.1:{ports['dlq']}/health").returncode == 1  # nobody answers


def _dead_job(url: str) -> None:
    """A job of ``async-processing`` that failed for good, as a worker leaves it."""
    script = f"""
import asyncio
from conveyor import Conveyor, connect

async def main():
    async with connect({url!r}) as client:
        app = Conveyor(client)
        queue = app.queue("async-processing")

        @queue.task(name="send_welcome", attempts=1)
        async def send_welcome(ctx, user_id: str, email: str) -> None:
            raise ValueError("no mailbox")

        await send_welcome.with_options(job_id="doomed").enqueue(user_id="u", email="e")
        await app.run_worker(burst=True)

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
