"""Soak benchmark: a steady stream of jobs for minutes on end, with the
default retention (the newest 1,000 completed jobs kept), watching that
nothing grows.

    python bench/soak.py [--minutes 10] [--rate 2000] [--every 30] [--quick]

Runs against a private redis-server on a free port. A producer process
adds ``--rate`` jobs per second (bulks of 100 on a fixed schedule); two
worker processes (concurrency 50) run them. Every ``--every`` seconds it
samples Redis's used memory, each process's resident memory (RSS), the
waiting backlog, the event stream's length and the jobs completed so far,
and prints a row; at the end, the growth of each over the second half of
the run (per minute, by least squares), which is what "flat" is judged on.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time

from conveyor import JobContext, JobState, Queue, Worker, connect
from conveyor.engine.signals import install_signal_handlers
from conveyor.testing import RedisServer

QUEUE = "soak"


def _produce(url: str, rate: int, seconds: float) -> None:
    async def main() -> None:
        redis = connect(url)
        queue = Queue(QUEUE, redis)
        batch = 100
        began = time.monotonic()
        sent = 0
        while time.monotonic() - began < seconds:
            await queue.add_bulk([("work", {"n": sent + i, "body": "x" * 200}) for i in range(batch)])
            sent += batch
            ahead = began + sent / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await redis.aclose()

    asyncio.run(main())


def _work(url: str) -> None:
    async def main() -> None:
        redis = connect(url)

        async def handler(job: JobContext) -> dict[str, int]:
            return {"n": job.data["n"], "size": len(job.data["body"])}

        worker = Worker(Queue(QUEUE, redis), handler, concurrency=50)
        install_signal_handlers(worker)  # SIGTERM closes it gracefully
        await worker.run()
        await redis.aclose()

    asyncio.run(main())


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def slope_per_minute(times: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times`` (s), per minute."""
    if len(times) < 2:
        return float("nan")
    return float(statistics.linear_regression(times, values).slope * 60)


async def sample(url: str, seconds: float, every: float, pids: dict[str, int]) -> list[dict[str, float]]:
    redis = connect(url)
    queue = Queue(QUEUE, redis)
    rows: list[dict[str, float]] = []
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        await asyncio.sleep(min(every, max(0.0, seconds - elapsed)))
        counts = await queue.counts()
        totals = await redis.hget(queue.keys.stats, "completed")
        row = {
            "t": time.monotonic() - began,
            "redis_mb": int((await redis.info("memory"))["used_memory"]) / 2**20,
            "waiting": counts[JobState.WAITING],
            "kept": counts[JobState.COMPLETED],
            "events": await redis.xlen(queue.keys.events),
            "completed": int(totals or 0),
        }
        for name, pid in pids.items():
            row[name] = rss_mb(pid)
        rows.append(row)
        print(_row(rows[-1], pids), flush=True)
    await redis.aclose()
    return rows


def _row(r: dict[str, float], pids: dict[str, int]) -> str:
    rss = " | ".join(f"{r[name]:.1f}" for name in pids)
    return (
        f"| {r['t'] / 60:.1f} | {r['completed']:,.0f} | {r['waiting']:,.0f} | {r['kept']:,.0f}"
        f" | {r['events']:,.0f} | {r['redis_mb']:.1f} | {rss} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--every", type=float, default=30)
    parser.add_argument("--quick", action="store_true", help="one minute, sampled every 10 s")
    args = parser.parse_args()
    minutes, every = (1.0, 10.0) if args.quick else (args.minutes, args.every)
    seconds = minutes * 60
    ctx = mp.get_context("spawn")
    with RedisServer() as server:
        workers = [ctx.Process(target=_work, args=(server.url,)) for _ in range(2)]
        for w in workers:
            w.start()
        producer = ctx.Process(target=_produce, args=(server.url, args.rate, seconds))
        producer.start()
        pids = {"worker 1 MB": workers[0].pid, "worker 2 MB": workers[1].pid, "producer MB": producer.pid}
        assert all(pids.values())
        print(f"soak: {args.rate:,} jobs/s for {minutes:g} min, redis on port {server.port}\n")
        names = " | ".join(f"RSS {name}" for name in pids)
        print(f"| minute | completed | waiting | completed kept | event stream | Redis MB | {names} |")
        print("|---" * (6 + len(pids)) + "|", flush=True)
        rows = asyncio.run(sample(server.url, seconds, every, {k: v for k, v in pids.items() if v}))
        producer.join(timeout=30)
        for w in workers:
            w.terminate()  # SIGTERM: a graceful close
            w.join(timeout=30)
    half = [r for r in rows if r["t"] >= seconds / 2]
    times = [r["t"] for r in half]
    print("\ngrowth over the second half, per minute (least squares):")
    for key, unit in [
        ("redis_mb", "MB"),
        *((name, "MB") for name in pids),
        ("waiting", "jobs"),
        ("events", "entries"),
    ]:
        print(f"- {key}: {slope_per_minute(times, [r[key] for r in half]):+.3f} {unit}/min")
    done = rows[-1]["completed"] if rows else 0
    print(f"- throughput: {done / seconds:,.0f} jobs/s completed on average")


if __name__ == "__main__":
    main()
