"""What the archive of finished jobs costs the workers, and how fast it
writes: drain rate of no-op jobs (one worker, concurrency 100) with no
archive, with the archive following in the same process (SQLite, and
PostgreSQL when one is reachable), and with the archive's tables
locked for the whole drain (its writes hang, as on a database that stopped
answering); then how long the
archive took to have every run written after the drain ended, and its
rows per second. Runs are interleaved and repeated; medians are reported
with every run.

    python bench/archive.py [--jobs 20000] [--repeats 3] [--pg postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from conveyor import JobContext, Queue, Worker, connect
from conveyor.archive import JobArchive, archive_tables
from conveyor.testing import RedisServer

try:
    import uvloop

    run = uvloop.run
except ImportError:  # pragma: no cover
    run = asyncio.run  # type: ignore[assignment]


@dataclass
class Outcome:
    drain: float  # jobs/s
    caught_up: float | None = None  # seconds from the drain's end to the last row written
    rows_per_s: float | None = None


async def noop(job: JobContext) -> None:
    return None


@asynccontextmanager
async def sqlite_db(folder: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{folder / f'{uuid.uuid4().hex}.db'}")
    yield engine
    await engine.dispose()


@asynccontextmanager
async def pg_db(admin_url: str) -> AsyncIterator[AsyncEngine]:
    name = f"bench_archive_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(f"{base}/{name}")
    try:
        yield engine
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def one_run(url: str, n: int, engine: AsyncEngine | None, outage: bool = False) -> Outcome:
    redis = connect(url)
    queue = Queue(f"bench-archive-{uuid.uuid4().hex[:6]}", redis)
    await queue.set_events_max(1_000_000)  # the outage case must keep every event until it is read
    for i in range(0, n, 10_000):
        await queue.add_bulk([("noop", j) for j in range(i, min(n, i + 10_000))])
    worker = Worker(queue, noop, concurrency=100)
    if engine is None:
        start = time.perf_counter()
        await worker.run(burst=True)
        drain = n / (time.perf_counter() - start)
        await queue.obliterate()
        await redis.aclose()
        return Outcome(drain)
    tables = archive_tables()
    async with engine.begin() as conn:
        await conn.run_sync(tables.jobs.metadata.create_all)
    archive = JobArchive(engine, [queue], tables=tables, retry_max=0.5)
    async with engine.connect() as blocker:
        if outage:  # every write of the archive hangs while the jobs drain
            await blocker.execute(text("LOCK TABLE conveyor_archive_cursors IN ACCESS EXCLUSIVE MODE"))
        begun = time.perf_counter()
        async with archive.running():
            await asyncio.sleep(0.2)  # the archive has its place and is following
            start = time.perf_counter()
            await worker.run(burst=True)
            ended = time.perf_counter()
            if outage:
                await blocker.rollback()  # the database is back
            while True:  # polled: the archive's progress is a counter
                if archive.stats.jobs >= n:
                    break
                await asyncio.sleep(0.01)
            done = time.perf_counter()
    await queue.obliterate()
    await redis.aclose()
    return Outcome(n / (ended - start), done - ended, n / (done - begun))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    async def pg_reachable() -> bool:
        try:
            conn = await asyncpg.connect(args.pg, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    has_pg = run(pg_reachable())
    cases = ["no archive", "archive to SQLite"]
    if has_pg:
        cases += ["archive to PostgreSQL", "archive to PostgreSQL, locked during the drain"]
    results: dict[str, list[Outcome]] = {c: [] for c in cases}

    async def case(url: str, name: str, folder: Path) -> Outcome:
        if name == "no archive":
            return await one_run(url, args.jobs, None)
        if name == "archive to SQLite":
            async with sqlite_db(folder) as engine:
                return await one_run(url, args.jobs, engine)
        async with pg_db(args.pg) as engine:
            return await one_run(url, args.jobs, engine, outage="locked" in name)

    with RedisServer() as server, tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for name in cases:
                results[name].append(run(case(server.url, name, Path(folder))))

    print(
        f"\n{args.jobs:,} no-op jobs, one worker (concurrency 100); median of {args.repeats}, all runs listed"
    )
    print(f"{'case':<46} {'drain jobs/s':>13} {'written after':>14} {'rows/s':>8}  runs (jobs/s)")
    for name, outs in results.items():
        drains = [o.drain for o in outs]
        caught = [o.caught_up for o in outs if o.caught_up is not None]
        rows = [o.rows_per_s for o in outs if o.rows_per_s is not None]
        after = f"{statistics.median(caught):.2f} s" if caught else "-"
        rate = f"{statistics.median(rows):,.0f}" if rows else "-"
        listed = ", ".join(f"{d:,.0f}" for d in drains)
        print(f"{name:<46} {statistics.median(drains):>13,.0f} {after:>14} {rate:>8}  {listed}")
    if not has_pg:
        print("(PostgreSQL not reachable: its cases were skipped)")


if __name__ == "__main__":
    main()
