"""Engine benchmark: one command, prints a table.

    python bench/run.py [--jobs 100000] [--quick] [--only SECTIONS] [--compare bullmq,huey]

Runs against a private redis-server on a free port (loopback). Each
measurement is run three times, interleaved so drift hits all alike; the
table gives the median with every run listed. Sections:
drain (no-op async jobs, one worker process, concurrency 100: alone, with
Redis's CPU and script time per job, and under queue-wide limits set high,
a rate limit of 100,000/s and a global concurrency of 1,000, and spread
over 100 groups taking turns), enqueue (one by one, awaiting each, and in
bulk, with Redis's time per job), latency (enqueue-to-start at a steady
200 and 500 jobs/s, producer in another process: p50, p95, p99, max, a
histogram and Redis's time in scripts per job), progress (the progress bus's report-to-subscriber latency,
subscriber in another process), events (publish rates, a consumer group's
drain rate, publish-to-handler latency), api (the HTTP API's queue list
with 20 queues and a million jobs in Redis) and memory (Redis memory per
waiting job with a 100-byte payload, 100,000 jobs).

``--compare bullmq`` runs the drain, enqueue, latency and memory
measurements for Node BullMQ too (``bench/bullmq``: bullmq and ioredis
pinned, installed with npm on first use), each run right after
Conveyor's on the same Redis, and adds its column and the ratio.
``--compare huey`` does the same for huey's one-by-one adds and latency
(``bench/huey``: huey pinned, installed with pip on first use);
``--compare bullmq,huey`` runs both.
``--cluster`` runs the drain and enqueue sections on a private
three-primary Redis Cluster instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import statistics
import time
from collections.abc import Sequence
from typing import Any

from compare import PEERS, Table, histogram, summary
from conveyor import Event, EventBus, JobContext, Middleware, Queue, RateLimit, Worker, connect
from conveyor.collector import tune_collector
from conveyor.realtime.progress import ProgressBus
from conveyor.testing import RedisClusterNodes, RedisServer

try:
    import uvloop

    run = uvloop.run
except ImportError:  # pragma: no cover
    run = asyncio.run  # type: ignore[assignment]


async def bench_drain(
    url: str,
    n: int,
    limit: RateLimit | None = None,
    concurrency: int | None = None,
    groups: int = 0,
    middleware: Sequence[Middleware] = (),
) -> dict[str, Any]:
    """Drain rate and Redis usec per job; with ``limit`` or ``concurrency`` set as queue-wide
    limits, or the jobs spread over ``groups`` groups taking turns, or
    ``middleware`` around each run."""
    redis = connect(url)
    queue = Queue("bench-drain", redis)
    await queue.set_rate_limit(limit)
    await queue.set_concurrency(concurrency)
    for i in range(0, n, 10_000):
        chunk = range(i, min(n, i + 10_000))
        if groups:
            await queue.add_bulk([("noop", j, {"group": f"tenant-{j % groups}"}) for j in chunk])
        else:
            await queue.add_bulk([("noop", j) for j in chunk])

    async def noop(job: JobContext) -> None:
        return None

    worker = Worker(queue, noop, concurrency=100, middleware=middleware)
    before = await redis_usec(redis)
    start = time.perf_counter()
    await worker.run(burst=True)
    elapsed = time.perf_counter() - start
    used = per_job(before, await redis_usec(redis), n)
    assert worker.processed == n, worker.processed
    await queue.obliterate()
    await redis.aclose()
    return {"rate": n / elapsed, "redis": used}


async def redis_usec(redis: Any) -> dict[str, float]:
    """Redis's CPU (user + system) and its time in scripts so far, in usec."""
    cpu = await redis.info("cpu")
    stats = await redis.info("commandstats")
    scripts = sum(int(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "eval", "fcall"))
    return {"cpu": (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6, "scripts": scripts}


def per_job(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    return {k: (after[k] - before[k]) / n for k in before}


async def bench_enqueue_single(url: str, n: int, middleware: Sequence[Middleware] = ()) -> float:
    redis = connect(url)
    queue = Queue("bench-single", redis, middleware=middleware)
    start = time.perf_counter()
    for i in range(n):
        await queue.add("email", {"to": f"user{i}@example.com"})
    elapsed = time.perf_counter() - start
    await queue.obliterate()
    await redis.aclose()
    return n / elapsed


async def bench_enqueue_bulk(url: str, n: int) -> dict[str, Any]:
    redis = connect(url)
    queue = Queue("bench-bulk", redis)
    items = [("email", {"to": f"user{i}@example.com"}) for i in range(n)]
    await queue.register()
    before = await redis_usec(redis)
    start = time.perf_counter()
    for i in range(0, n, 10_000):
        await queue.add_bulk(items[i : i + 10_000])
    elapsed = time.perf_counter() - start
    used = per_job(before, await redis_usec(redis), n)
    await queue.obliterate()
    await redis.aclose()
    return {"rate": n / elapsed, "redis": used}


def _produce(url: str, rate: int, seconds: float) -> None:
    async def main() -> None:
        redis = connect(url)
        queue = Queue("bench-latency", redis)
        interval = 1 / rate
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            target = start + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await queue.add("tick", {"sent": time.time_ns()})
        await redis.aclose()

    run(main())


async def bench_latency(url: str, rate: int, seconds: float) -> dict[str, Any]:
    """Enqueue-to-start latencies (ms, ``samples``) of jobs added at a
    steady ``rate`` by another process, one idle worker taking them, and
    Redis's time per job meanwhile (``redis``: its add, claim and finish)."""
    redis = connect(url)
    queue = Queue("bench-latency", redis)
    samples: list[float] = []

    async def handler(job: JobContext) -> None:
        samples.append((time.time_ns() - job.data["sent"]) / 1e6)

    worker = Worker(queue, handler, concurrency=50)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)
    before = await redis_usec(redis)
    producer = mp.get_context("spawn").Process(target=_produce, args=(url, rate, seconds))
    producer.start()
    while producer.is_alive():  # noqa: ASYNC110 (a process, not an event)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    used = per_job(before, await redis_usec(redis), max(1, len(samples)))
    await worker.close()
    await task
    await redis.aclose()
    return {"samples": samples, "redis": used}


async def _start_listener(target: Any, url: str, n: int) -> tuple[Any, Any]:
    """Starts ``target(url, ready, out, n)`` in a spawned process and waits
    until it is ready; it puts the latencies it saw (ms) on ``out``."""
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=target, args=(url, ready, out, n))
    proc.start()
    await asyncio.to_thread(ready.wait)
    return proc, out


async def _latencies(proc: Any, out: Any) -> tuple[float, float, float]:
    """p50, p99 and max of the latencies the listener process reports."""
    lat = sorted(await asyncio.to_thread(out.get, True, 30))
    proc.join(10)
    return statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * len(lat)))], lat[-1]


def _subscribe(url: str, ready: Any, out: Any, n: int) -> None:
    async def main() -> None:
        redis = connect(url)
        bus = ProgressBus(redis, namespace="bench")
        ready.set()
        lat: list[float] = []
        async with contextlib.aclosing(bus.subscribe("import:1", current=False)) as updates:
            async for status in updates:
                lat.append((time.time_ns() - status.extra["sent"]) / 1e6)
                if len(lat) >= n:
                    break
        out.put(lat)
        await redis.aclose()

    run(main())


async def bench_progress(url: str, n: int, rate: int) -> tuple[float, float, float]:
    """Report-to-receive latency of the progress bus, subscriber in another process."""
    proc, out = await _start_listener(_subscribe, url, n)
    redis = connect(url)
    bus = ProgressBus(redis, namespace="bench")
    while (await redis.pubsub_numsub("conveyor:{progress/bench}:updates:import:1"))[0][1] == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    for i in range(n):
        await bus.report("import:1", "catalog", min(99, i * 100 / n), "working", sent=time.time_ns())
        await asyncio.sleep(1 / rate)
    result = await _latencies(proc, out)
    await redis.aclose()
    return result


async def bench_memory(url: str, n: int) -> float:
    redis = connect(url)
    queue = Queue("bench-memory", redis)
    payload = {"p": "x" * 92}  # 100 bytes of JSON
    before = int((await redis.info("memory"))["used_memory"])
    for i in range(0, n, 10_000):
        await queue.add_bulk([("job", payload)] * min(10_000, n - i))
    after = int((await redis.info("memory"))["used_memory"])
    await queue.obliterate()
    await redis.aclose()
    return (after - before) / n


async def bench_publish(url: str, n: int, bulk: bool) -> float:
    redis = connect(url)
    bus = EventBus(redis, "bench-publish", max_len=0)
    start = time.perf_counter()
    if bulk:
        for i in range(0, n, 1000):
            await bus.publish_many([("user.created", {"user": j}) for j in range(i, min(n, i + 1000))])
    else:
        for i in range(n):
            await bus.publish("user.created", {"user": i})
    elapsed = time.perf_counter() - start
    await redis.delete(bus.keys.stream)
    await redis.aclose()
    return n / elapsed


async def bench_consume(url: str, n: int, concurrency: int) -> float:
    redis = connect(url)
    bus = EventBus(redis, f"bench-consume-{concurrency}", max_len=0)
    await redis.delete(bus.keys.stream)
    for i in range(0, n, 1000):
        await bus.publish_many([("user.created", {"user": j}) for j in range(i, min(n, i + 1000))])

    @bus.on("user.created")
    async def noop(event: Event[Any]) -> None:
        return None

    consumer = bus.consumer("bench", concurrency=concurrency, prefetch=max(100, concurrency * 2))
    start = time.perf_counter()
    await consumer.run(burst=True)
    elapsed = time.perf_counter() - start
    assert consumer.processed == n, consumer.processed
    await redis.delete(bus.keys.stream)
    await redis.aclose()
    return n / elapsed


def _consume(url: str, ready: Any, out: Any, n: int) -> None:
    async def consume() -> None:
        redis = connect(url)
        bus = EventBus(redis, "bench-latency")
        lat: list[float] = []
        consumer = bus.consumer("bench", start="new", block=0.5)

        @bus.on("ping")
        async def record(event: Event[Any]) -> None:
            lat.append((time.time_ns() - event.data["sent"]) / 1e6)
            if len(lat) >= n:
                consumer.request_stop()

        await bus.create_group("bench", start="new")
        ready.set()
        await consumer.run()
        out.put(lat)
        await redis.aclose()

    run(consume())


async def bench_event_latency(url: str, n: int, rate: int) -> tuple[float, float, float]:
    """Publish-to-handler latency of the event bus, consumer in another process."""
    proc, out = await _start_listener(_consume, url, n)
    redis = connect(url)
    bus = EventBus(redis, "bench-latency")
    await asyncio.sleep(0.2)  # let the consumer block on its first read
    for _ in range(n):
        await bus.publish("ping", {"sent": time.time_ns()})
        await asyncio.sleep(1 / rate)
    result = await _latencies(proc, out)
    await redis.aclose()
    return result


async def bench_api(url: str, queues: int, jobs: int, requests: int) -> tuple[float, float, float, float]:
    """GET /api/queues through a real uvicorn server with ``jobs`` jobs
    spread over ``queues`` queues: (p50, p95, p99 ms, seconds to fill)."""
    import httpx
    import uvicorn

    from conveyor.server import create_app
    from conveyor.testing import free_port

    redis = connect(url)
    started = time.perf_counter()
    per_queue = jobs // queues
    for q in range(queues):
        queue = Queue(f"bench-api-{q}", redis)
        for i in range(0, per_queue, 10_000):
            await queue.add_bulk([("job", {"i": j}) for j in range(i, min(per_queue, i + 10_000))])
    filled = time.perf_counter() - started
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(redis), port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # up within ten seconds
        if server.started:
            break
        await asyncio.sleep(0.01)
    samples = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(requests):
            t0 = time.perf_counter()
            answer = await client.get("/api/queues")
            samples.append((time.perf_counter() - t0) * 1000)
            assert answer.status_code == 200 and len(answer.json()) >= queues
    server.should_exit = True
    await task
    for q in range(queues):
        await Queue(f"bench-api-{q}", redis).obliterate(force=True)
    await redis.aclose()
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[94], cuts[98], filled


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections: drain, enqueue, latency, progress, events, api, memory",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run drain and enqueue on a private three-primary Redis Cluster",
    )
    parser.add_argument(
        "--compare",
        default="",
        help="comma-separated peers to measure beside Conveyor: bullmq, huey",
    )
    args = parser.parse_args()
    names = list(filter(None, args.compare.split(",")))
    if unknown := set(names) - set(PEERS):
        parser.error(f"--compare: no peer named {', '.join(sorted(unknown))}")
    only = set(filter(None, args.only.split(",")))
    if args.cluster:
        only = (only or {"drain", "enqueue"}) & {"drain", "enqueue"}

    def want(section: str) -> bool:
        return not only or section in only

    n = 5_000 if args.quick else args.jobs
    tune_collector()  # as the conveyor commands (worker, up) do
    table = Table([PEERS[name]() for name in names])
    with RedisClusterNodes() if args.cluster else RedisServer() as server:
        url = server.url
        repeats = 1 if args.quick else 3
        if want("drain"):
            _drain_rows(table, url, n, repeats)
        if want("enqueue"):
            _enqueue_rows(table, url, n, repeats)
        if want("latency"):
            _latency_rows(table, url, repeats, 1.0 if args.quick else 4.0)
        if want("progress"):
            _progress_rows(table, url, args.quick)
        if want("events"):
            _event_rows(table, url, n, repeats, args.quick)
        if want("api"):
            jobs = 20_000 if args.quick else 1_000_000
            p50, p95, p99, filled = run(bench_api(url, 20, jobs, 50 if args.quick else 300))
            table.row(f"GET /api/queues, 20 queues, {jobs:,} jobs: p50", f"{p50:.1f} ms")
            table.row("  p95", f"{p95:.1f} ms", target="<= 300 ms")
            table.row("  p99", f"{p99:.1f} ms")
            table.row("  (time to add the jobs)", f"{filled:.1f} s")
        if want("memory"):
            mem = run(bench_memory(url, 100_000 if not args.quick else n))
            theirs = {
                p.name: p.run("memory", url, jobs=100_000 if not args.quick else n)["bytes"]
                for p in table.peers_for("memory")
            }
            table.row(
                "Redis memory per waiting job (100 B payload)",
                f"{mem:,.0f} B",
                {peer: (f"{b:,.0f} B", f"{b / mem:.1f}x less") for peer, b in theirs.items()},
                "<= 350 B",
            )
    table.print()


def _drain_rows(table: Table, url: str, n: int, repeats: int) -> None:
    plain: list[dict[str, Any]] = []
    theirs: dict[str, list[dict[str, Any]]] = {p.name: [] for p in table.peers_for("drain")}
    limited: list[float] = []
    capped: list[float] = []
    grouped: list[float] = []
    for _ in range(repeats):
        plain.append(run(bench_drain(url, n)))
        for p in table.peers_for("drain"):
            theirs[p.name].append(p.run("drain", url, jobs=n))
        limited.append(run(bench_drain(url, n, limit=RateLimit(100_000, per=1.0)))["rate"])
        capped.append(run(bench_drain(url, n, concurrency=1000))["rate"])
        grouped.append(run(bench_drain(url, n, groups=100))["rate"])
    rates = [r["rate"] for r in plain]
    their_rates = {peer: [r["rate"] for r in runs] for peer, runs in theirs.items()}
    table.rates("drain, no-op, concurrency 100", rates, their_rates, "jobs/s", ">= 1.25x")
    _redis_rows(table, "drain", plain, theirs)
    table.rates("drain, rate limit 100,000/s", limited, {}, "jobs/s", ">= 80% of unlimited")
    table.row(
        "  (limited / unlimited, medians)", f"{statistics.median(limited) / statistics.median(rates):.0%}"
    )
    table.rates("drain, global concurrency 1,000", capped, {}, "jobs/s", "")
    table.rates("drain, 100 groups taking turns", grouped, {}, "jobs/s", "")


def _redis_rows(
    table: Table, what: str, ours: list[dict[str, Any]], theirs: dict[str, list[dict[str, Any]]]
) -> None:
    """Redis's CPU and script time per job, medians of the runs."""
    for key, label in (("cpu", "Redis CPU"), ("scripts", "in scripts")):
        mine = statistics.median(r["redis"][key] for r in ours)
        other = {
            peer: statistics.median(r["redis"][key] for r in runs) for peer, runs in theirs.items() if runs
        }
        table.row(
            f"  {what}: {label} per job",
            f"{mine:.1f} us",
            {peer: (f"{o:.1f} us", f"{o / mine:.1f}x less" if mine else "") for peer, o in other.items()},
            "<= 15 us" if what == "drain" else "",
        )


def _enqueue_rows(table: Table, url: str, n: int, repeats: int) -> None:
    singles = min(n, 20_000)
    single: list[float] = []
    theirs: dict[str, list[float]] = {p.name: [] for p in table.peers_for("single")}
    bulk: list[dict[str, Any]] = []
    bulk_theirs: dict[str, list[dict[str, Any]]] = {p.name: [] for p in table.peers_for("bulk")}
    for _ in range(repeats):
        single.append(run(bench_enqueue_single(url, singles)))
        for p in table.peers_for("single"):
            theirs[p.name].append(p.run("single", url, jobs=singles)["rate"])
        bulk.append(run(bench_enqueue_bulk(url, n * 2)))
        for p in table.peers_for("bulk"):
            bulk_theirs[p.name].append(p.run("bulk", url, jobs=n * 2))
    table.rates("enqueue one by one (awaiting each)", single, theirs, "jobs/s", ">= 8,000")
    table.rates(
        "enqueue in bulk",
        [r["rate"] for r in bulk],
        {peer: [r["rate"] for r in runs] for peer, runs in bulk_theirs.items()},
        "jobs/s",
        ">= 60,000",
    )
    _redis_rows(table, "bulk add", bulk, bulk_theirs)


def _latency_rows(table: Table, url: str, repeats: int, seconds: float) -> None:
    for rate in (200, 500):
        ours: list[list[float]] = []
        scripts: list[float] = []
        theirs: dict[str, list[list[float]]] = {p.name: [] for p in table.peers_for("latency")}
        for _ in range(repeats):
            got = run(bench_latency(url, rate, seconds))
            ours.append(got["samples"])
            scripts.append(got["redis"]["scripts"])
            for p in table.peers_for("latency"):
                theirs[p.name].append(p.run("latency", url, rate=rate, seconds=seconds)["samples"])
        mine = [summary(s) for s in ours]
        other = {peer: [summary(s) for s in runs] for peer, runs in theirs.items()}
        for q in ("p50", "p95", "p99", "max"):
            m = statistics.median(r[q] for r in mine)
            o = {peer: statistics.median(r[q] for r in runs) for peer, runs in other.items()}
            table.row(
                f"enqueue-to-start {q} @ {rate} jobs/s" if q == "p50" else f"  {q}",
                f"{m:.2f} ms",
                {peer: (f"{v:.2f} ms", f"{v / m:.1f}x less") for peer, v in o.items()},
                {"p50": "<= 0.4 ms", "p99": "<= 0.7 ms"}.get(q, ""),
            )
        each = {
            peer: (", ".join(f"{r['p50']:.2f}/{r['p99']:.2f}" for r in runs), "")
            for peer, runs in other.items()
        }
        table.row("  (p50, p99 of each run)", ", ".join(f"{r['p50']:.2f}/{r['p99']:.2f}" for r in mine), each)
        # Redis runs a script slower at a low steady rate than in a drain
        # (its caches gone cold between jobs); add and claim lie on the path
        table.row("  Redis in scripts per job (add, claim, finish)", f"{statistics.median(scripts):.0f} us")
        table.notes.append(f"enqueue-to-start @ {rate}/s, Conveyor: {histogram(ours)}")
        for peer, runs in theirs.items():
            table.notes.append(f"enqueue-to-start @ {rate}/s, {peer}: {histogram(runs)}")


def _progress_rows(table: Table, url: str, quick: bool) -> None:
    p50, p99, worst = run(bench_progress(url, 200 if quick else 2000, 200))
    table.row("progress report-to-subscriber p50 (other process)", f"{p50:.2f} ms")
    table.row("progress report-to-subscriber p99 (other process)", f"{p99:.2f} ms", target="<= 200 ms")
    table.row("  (max)", f"{worst:.2f} ms")


def _event_rows(table: Table, url: str, n: int, repeats: int, quick: bool) -> None:
    pub = [run(bench_publish(url, min(n, 20_000), False)) for _ in range(repeats)]
    table.rates("event publish one by one (awaiting each)", pub, {}, "events/s", "")
    pub = [run(bench_publish(url, n, True)) for _ in range(repeats)]
    table.rates("event publish_many (1,000 per call)", pub, {}, "events/s", "")
    for conc in (1, 50):
        rate = [run(bench_consume(url, n, conc)) for _ in range(repeats)]
        table.rates(f"event group drain, no-op handler, concurrency {conc}", rate, {}, "events/s", "")
    p50, p99, worst = run(bench_event_latency(url, 200 if quick else 2000, 500))
    table.row("event publish-to-handler p50 (other process)", f"{p50:.2f} ms")
    table.row("event publish-to-handler p99 (other process)", f"{p99:.2f} ms")
    table.row("  (max)", f"{worst:.2f} ms")


if __name__ == "__main__":
    main()
