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

``--versus-empty`` instead compares, run by run, draining 20,000 jobs,
adding 20,000 in bulk and 2,000 one at a time on an empty queue and on a
queue holding ``--jobs`` waiting jobs, then times the API's queue list and
the big queue's counts at that size.
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


async def api(client: httpx.AsyncClient, path: str, requests: int) -> tuple[float, float, float]:
    """p50, p95 and p99 of ``requests`` GETs of ``path``, in ms."""
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        answer = await client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, answer.text[:200]
    return quantiles(samples)


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
            list_p50, list_p95, _ = await api(client, "/api/queues", requests)
            middle = max(0, size // 2)
            page_p50, page_p95, _ = await api(
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


async def versus_empty(url: str, total: int, repeats: int, n: int, singles: int, requests: int) -> None:
    """The same work on an empty queue and on one holding ``total``
    waiting jobs, run by run: draining ``n`` jobs, adding ``n`` in bulk,
    adding ``singles`` one at a time; then the API at that size."""
    redis = connect(url)
    big = Queue("backlog", redis)
    began = time.perf_counter()
    await grow(big, 0, total)
    print(f"{total:,} jobs added in {time.perf_counter() - began:.1f} s\n", flush=True)
    runs: dict[str, list[float]] = {}

    def note(what: str, value: float) -> None:
        runs.setdefault(what, []).append(value)

    for r in range(repeats):
        for where in ("empty", "backlog"):
            queue = Queue(f"empty-{r}", redis) if where == "empty" else big
            if where == "empty":
                await grow(queue, 0, n)
            note(f"drain {n:,}|{where}", await claims(queue, n))
            note(f"bulk add {n:,}|{where}", await grow(queue, 0, n))
            began = time.perf_counter()
            await single_adds(queue, singles)
            note(f"add one by one|{where}", singles / (time.perf_counter() - began))
            if where == "empty":
                await queue.obliterate(force=True)
            else:  # back to its size
                await claims(queue, singles)
    print(f"| jobs/s, median of {repeats} (runs) | empty queue | {total:,} waiting | ratio |")
    print("|---|---|---|---|")
    for what in dict.fromkeys(k.split("|")[0] for k in runs):
        empty, full = runs[f"{what}|empty"], runs[f"{what}|backlog"]
        m0, m1 = statistics.median(empty), statistics.median(full)
        listed = lambda vs: ", ".join(f"{v:,.0f}" for v in vs)  # noqa: E731
        print(f"| {what} | {m0:,.0f} ({listed(empty)}) | {m1:,.0f} ({listed(full)}) | {m1 / m0:.0%} |")
    async with serving(create_app(redis)) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        print(f"\n| with {total:,} waiting | p50 | p95 | p99 |\n|---|---|---|---|")
        for path in ("/api/queues", "/api/queues/backlog"):
            p50, p95, p99 = await api(client, path, requests)
            print(f"| GET {path} | {p50:.1f} ms | {p95:.1f} ms | {p99:.1f} ms |")
    await big.obliterate(force=True)
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--versus-empty",
        action="store_true",
        help="drain and add on an empty queue and on one holding --jobs, run by run (3 runs)",
    )
    args = parser.parse_args()
    if args.versus_empty:
        with RedisServer() as server:
            total = 40_000 if args.quick else args.jobs
            run(versus_empty(server.url, total, 1 if args.quick else 3, 20_000, 2_000, 300))
        return
    total, singles, claim, requests = (args.jobs, 1000, 10_000, 200)
    if args.quick:
        total, singles, claim, requests = (40_000, 200, 2_000, 40)
    with RedisServer() as server:
        print(f"backlog of {total:,} jobs in {args.steps} steps, redis on port {server.port}\n")
        print(HEADER, flush=True)
        run(bench(server.url, total, args.steps, singles, claim, requests))


if __name__ == "__main__":
    main()
