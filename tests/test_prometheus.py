"""A worker's own Prometheus metrics: runs started, completed, retried and
failed for good per queue and task, run times, runs in flight; served by
``conveyor worker --metrics-port`` for an app and for plain handlers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conveyor import JobContext, Queue, Worker, connect
from conveyor.prometheus import WorkerMetrics
from conveyor.testing.servers import free_port
from faults.processes import stop_gracefully
from polling import wait_until

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


async def test_runs_are_counted_by_outcome_queue_and_task(queue: Queue) -> None:
    metrics = WorkerMetrics()
    await queue.add("ok", {})
    await queue.add("ok", {})
    await queue.add("flaky", {}, attempts=2, backoff=0)
    await queue.add("broken", {})
    tries: dict[str, int] = {}
    inside: list[float | None] = []

    async def handler(job: JobContext) -> str:
        inside.append(
            metrics.registry.get_sample_value("conveyor_worker_jobs_in_flight", {"queue": queue.name})
        )
        tries[job.id] = tries.get(job.id, 0) + 1
        if job.name == "broken" or (job.name == "flaky" and tries[job.id] == 1):
            raise RuntimeError("no")
        return "done"

    await Worker(queue, handler, middleware=[metrics], concurrency=1).run(burst=True)

    def value(name: str, task: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"queue": queue.name, "task": task})

    assert value("conveyor_worker_jobs_started_total", "ok") == 2
    assert value("conveyor_worker_jobs_completed_total", "ok") == 2
    assert value("conveyor_worker_jobs_started_total", "flaky") == 2
    assert value("conveyor_worker_jobs_retried_total", "flaky") == 1
    assert value("conveyor_worker_jobs_completed_total", "flaky") == 1
    assert value("conveyor_worker_jobs_failed_total", "broken") == 1
    assert value("conveyor_worker_jobs_completed_total", "broken") is None
    assert value("conveyor_worker_job_duration_seconds_count", "flaky") == 2
    assert inside == [1.0] * 5  # one at a time, counted while it ran
    assert metrics.registry.get_sample_value("conveyor_worker_jobs_in_flight", {"queue": queue.name}) == 0


APP = """
from conveyor import Conveyor, TaskContext

app = Conveyor()
work = app.queue("QUEUE")

@work.task
async def double(ctx: TaskContext, n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return 2 * n

async def handler(job):
    return job.data
"""


def start_worker(cwd: Path, redis_url: str, args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CONVEYOR, *args],
        cwd=cwd,
        env={**os.environ, "REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


@pytest.mark.parametrize("target", ["metered:app", "metered:handler"])
async def test_the_worker_command_serves_its_metrics(
    tmp_path: Path, redis_url: str, queue_name: str, target: str
) -> None:
    (tmp_path / "metered.py").write_text(APP.replace("QUEUE", queue_name))
    port = free_port()
    args = ["worker", target, "--metrics-port", str(port)]
    if target.endswith("handler"):
        args += ["--queues", queue_name]
    proc = start_worker(tmp_path, redis_url, args)
    try:
        async with connect(redis_url) as redis:
            queue = Queue(queue_name, redis)
            done = await queue.add("double", {"n": 2})
            await queue.add("double", {"n": -1})
            await queue.wait_until_finished(done.id, timeout=20)

            async def counted() -> bool:
                try:
                    text = await asyncio.to_thread(scrape, port)
                except httpx.HTTPError:
                    return False
                return f'conveyor_worker_jobs_started_total{{queue="{queue_name}",task="double"}} 2.0' in text

            await wait_until(counted, within=20)
            text = await asyncio.to_thread(scrape, port)
            labels = f'queue="{queue_name}",task="double"'
            assert f"conveyor_worker_jobs_completed_total{{{labels}}} 2.0" in text or (
                f"conveyor_worker_jobs_completed_total{{{labels}}} 1.0" in text
                and f"conveyor_worker_jobs_failed_total{{{labels}}} 1.0" in text
            )
            assert f'conveyor_worker_jobs_in_flight{{queue="{queue_name}"}} 0.0' in text
    finally:
        stop_gracefully(proc, timeout=20)


def test_a_taken_metrics_port_is_a_clear_error(tmp_path: Path, redis_url: str, queue_name: str) -> None:
    (tmp_path / "metered.py").write_text(APP.replace("QUEUE", queue_name))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # one process; and under a supervisor, refused before any child starts (no restart loop)
        for extra in ([], ["--processes", "2"]):
            done = subprocess.run(
                [CONVEYOR, "worker", "metered:app", "--metrics-port", str(port), *extra],
                cwd=tmp_path,
                env={**os.environ, "REDIS_URL": redis_url},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 1 and f"cannot serve metrics on port {port}" in done.stderr, done.stderr
            assert "worker process 0 started" not in done.stdout + done.stderr
