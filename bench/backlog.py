"""Backlog benchmark: one queue grown to a million waiting jobs, measured
at every step on the way.

    python bench/backlog.py [--jobs 1000000] [--steps 4] [--quick]

Runs against a private redis-server on a free port (loopback). At each
backlog size (0, then each step up to ``--jobs``) it measures:
- adding one job at a time (awaiting each): p50 and p99 latency;
- adding in bulk (chunks of 10,000): jobs/s over the step that led here;
- claiming: one worker (concurrency 100, no-op jobs) draining 10,000 jobs
  off the front of the backlog, which are then added back;
- Redis memory per waiting job (used_memory over the queue's own growth);
- the HTTP API through a real uvicorn server: ``GET /api/queues`` and a
  page of waiting jobs from the middle of the backlog (p50, p95 ms).
Flat means the same cost at a million as at ten thousand.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from conveyor import JobContext, Queue, Worker, connect
from conveyor.server import create_app
from conveyor.testing import RedisServer, serving

try:
    import uvloop

    run = uvloop.run
except ImportError:  # pragma: no cover
    run = asyncio.run  # type: ignore[assignment]

CHUNK = 10_000
PAYLOAD = {"user": 12345, "template": "welcome", "locale": "en"}


def quantiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[94], cuts[98]


async def grow(queue: Queue, start: int, stop: int) -> float:
    """Adds jobs ``start``..``stop`` in bulk; returns jobs/s."""
    began = time.perf_counter()
    for i in range(start, stop, CHUNK):
        await queue.add_bulk([("email", {**PAYLOAD, "n": j}) for j in range(i, min(stop, i + CHUNK))])
    return (stop - start) / (time.perf_counter() - began)


async def single_adds(queue: Queue, n: int) -> tuple[float, float]:
    """Adds ``n`` jobs one at a time; p50 and p99 in ms."""
    samples = []
    for i in range(n):
        began = time.perf_counter()
        await queue.add("email", {**PAYLOAD, "n": -i})
        samples.append((time.perf_counter() - began) * 1000)
    p50, _, p99 = quantiles(samples)
    return p50, p99


async def claims(queue: Queue, n: int) -> float:
    """One worker takes ``n`` jobs off the front; returns jobs/s. The
    jobs are added back, so the backlog keeps its size."""
    done = 0
    finished = asyncio.Event()

    async def noop(job: JobContext) -> None:
        nonlocal done
        done += 1
        if done >= n:
            finished.set()

    worker = Worker(queue, noop, concurrency=100)
    began = time.perf_counter()
    task = asyncio.create_task(worker.run())
    await finished.wait()
    elapsed = time.perf_counter() - began
    await worker.close()
    await task
    await queue.clean("completed", grace=0, limit=n * 2)
    return done / elapsed


async def api(client: httpx.AsyncClient, path: str, requests: int) -> tuple[float, float]:
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        answer = await client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, answer.text[:200]
    p50, p95, _ = quantiles(samples)
    return p50, p95


async def bench(
    url: str, total: int, steps: int, singles: int, claim: int, requests: int
) -> list[dict[str, float]]:
    redis = connect(url)
    queue = Queue("backlog", redis)
    for other in range(19):  # the API lists 20 queues, as a deployment would
        await Queue(f"other-{other}", redis).add_bulk([("job", i) for i in range(100)])
    base = int((await redis.info("memory"))["used_memory"])
    sizes = [0, 10_000] + [total * (s + 1) // steps for s in range(steps)]
    rows: list[dict[str, float]] = []
    size = 0
    async with serving(create_app(redis)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        for target in sizes:
            rate = await grow(queue, size, target) if target > size else float("nan")
            size = target
            memory = int((await redis.info("memory"))["used_memory"]) - base
            p50, p99 = await single_adds(queue, singles)
            claimed = await claims(queue, claim) if size >= claim else float("nan")
            if size >= claim:
                await grow(queue, 0, claim)  # the claimed jobs come back: size + singles again
            list_p50, list_p95 = await api(client, "/api/queues", requests)
            middle = max(0, size // 2)
            page_p50, page_p95 = await api(
                client, f"/api/queues/backlog/jobs?state=waiting&start={middle}&count=50", requests
            )
            rows.append(
                {
                    "backlog": size,
                    "bulk_rate": rate,
                    "add_p50": p50,
                    "add_p99": p99,
                    "claim_rate": claimed,
                    "bytes_per_job": memory / size if size else float("nan"),
                    "list_p50": list_p50,
                    "list_p95": list_p95,
                    "page_p50": page_p50,
                    "page_p95": page_p95,
                }
            )
            print(_row(rows[-1]), flush=True)
            size += singles
    await redis.aclose()
    return rows


HEADER = (
    "| waiting jobs | bulk add (jobs/s) | single add p50 / p99 (ms) | claim (jobs/s) | memory per job"
    " | GET /api/queues p50 / p95 (ms) | page mid-backlog p50 / p95 (ms) |\n|---|---|---|---|---|---|---|"
)


def _row(r: dict[str, float]) -> str:
    def num(v: float, fmt: str) -> str:
        return "-" if v != v else format(v, fmt)

    return (
        f"| {int(r['backlog']):,} | {num(r['bulk_rate'], ',.0f')} | {r['add_p50']:.2f} / {r['add_p99']:.2f}"
        f" | {num(r['claim_rate'], ',.0f')} | {num(r['bytes_per_job'], ',.0f')} B"
        f" | {r['list_p50']:.1f} / {r['list_p95']:.1f} | {r['page_p50']:.1f} / {r['page_p95']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    total, singles, claim, requests = (args.jobs, 1000, 10_000, 200)
    if args.quick:
        total, singles, claim, requests = (40_000, 200, 2_000, 40)
    with RedisServer() as server:
        print(f"backlog of {total:,} jobs in {args.steps} steps, redis on port {server.port}\n")
        print(HEADER, flush=True)
        run(bench(server.url, total, args.steps, singles, claim, requests))


if __name__ == "__main__":
    main()
