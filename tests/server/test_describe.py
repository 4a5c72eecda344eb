"""A job as people read it: options in public names and words with units,
the attempt out of those allowed, and the error that is the outcome."""

from __future__ import annotations

import asyncio

import httpx

from conveyor import Exponential, Fixed, JobContext, JobState, Queue, Worker
from conveyor.server import create_app
from conveyor.server.describe import options_summary, readable_options, seconds
from conveyor.testing import serving


def test_options_read_in_public_names_and_words() -> None:
    wire = {
        "a": 3,
        "b": {"t": "exp", "s": 0.2, "f": 2, "m": 60, "j": 1},
        "t": 30,
        "rc": [1000, 86_400_000],
        "rf": [-1, 0],
        "kl": 50,
        "h": {"traceparent": "00-abc"},
    }
    readable = readable_options(wire)
    assert readable["backoff"] == {
        "kind": "exponential",
        "seconds": 0.2,
        "factor": 2,
        "max_seconds": 60,
        "jitter": True,
    }
    assert options_summary(readable) == [
        "attempts 3",
        "backoff exponential 0.2 s \N{MULTIPLICATION SIGN} 2, at most 1 min with jitter",
        "timeout 30 s",
        "keep 1,000 completed for 1 day",
        "keep every failed",
        "keep 50 log lines",
        "headers traceparent",
    ]
    fixed = readable_options({"b": Fixed(5).to_wire(), "rc": [0, 0]})
    assert options_summary(fixed) == ["attempts 1", "backoff fixed 5 s", "remove when completed"]
    assert [seconds(v) for v in (0.25, 90, 7200, 86_400, 604_800)] == [
        "0.25 s",
        "90 s",
        "2 h",
        "1 day",
        "7 days",
    ]


async def test_the_api_gives_the_attempt_the_outcome_error_and_the_options_summary(
    redis_url: str, queue: Queue
) -> None:
    async def handler(job: JobContext) -> str:
        if job.attempt == 1:
            raise RuntimeError("first try fails")
        return "ok"

    job = await queue.add("import", 1, attempts=4, backoff=Exponential(0.01))
    worker = Worker(queue, handler)
    task = asyncio.create_task(worker.run())
    try:
        await job.wait_until_finished(timeout=10)
    finally:
        await worker.close()
        await task

    async with serving(create_app(redis_url)) as url, httpx.AsyncClient(base_url=url) as client:
        got = (await client.get(f"/api/queues/{queue.name}/jobs/{job.id}")).json()
    assert got["state"] == JobState.COMPLETED.value
    assert got["attempt"] == "2 of 4"
    assert got["outcome_error"] is None and got["error"] is not None  # the earlier attempt's, kept
    assert got["history"][0]["error"].endswith("first try fails")
    assert got["options_summary"][:2] == [
        "attempts 4",
        "backoff exponential 0.01 s \N{MULTIPLICATION SIGN} 2",
    ]
