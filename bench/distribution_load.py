"""Distribution service benchmark: sustained dispatch load through the API.

    python bench/distribution_load.py [--rate 50] [--seconds 30] [--latency-ms 50] [--workers 1]

Runs, each in its own process as in production: a private redis-server
(AOF everysec), the service's API (``distribution api``), ``--workers``
worker processes (``distribution worker``, 5 jobs at a time each), and the
fake networks over real HTTP with ``--latency-ms`` per answer. SQLite (WAL)
by default, ``--db URL`` for PostgreSQL.

This process sends ``POST /api/posts/{id}/dispatch`` (one account each, so
one dispatch job each) at ``--rate`` per second for ``--seconds``, and
``GET /api/queue/health`` ten times a second meanwhile. It reports the API
latency of both, and the dispatch throughput: jobs sent to the networks per
second while the load ran, and the time to drain.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from conveyor.testing import RedisServer, free_port, serving
from distribution.fake import FakeNetworks, create_fake
from distribution.models import Dispatch
from distribution.store import Store

TOKEN = "bench-token"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def wait_http(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url, headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer")
            await asyncio.sleep(0.1)


async def sent(store: Store) -> int:
    async with store.sessions() as session:
        query = select(func.count()).select_from(Dispatch).where(Dispatch.status == "sent")
        return int((await session.execute(query)).scalar_one())


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="distribution-bench-"))
    db = args.db or f"sqlite:///{tmp / 'd.db'}"
    networks = FakeNetworks(latency_ms=args.latency_ms)
    port = free_port()
    with RedisServer(appendonly=True) as redis_server:
        async with serving(create_fake(networks)) as fake_url:
            env = {
                **os.environ,
                "REDIS_URL": redis_server.url,
                "DATABASE_URL": db,
                "DISTRIBUTION_NETWORK_URL": fake_url,
                "DISTRIBUTION_API_TOKEN": TOKEN,
            }

            async def start(*command: str) -> asyncio.subprocess.Process:
                return await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "distribution.cli",
                    *command,
                    env=env,
                    cwd=tmp,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )

            api = await start("api", "--port", str(port))
            base = f"http://127.0.0.1:{port}"
            await wait_http(f"{base}/api/queue/health")  # the API creates the schema
            workers = [await start("worker") for _ in range(args.workers)]
            store = Store(db)
            try:
                await load(args, base, store, networks)
            finally:
                for process in [*workers, api]:
                    process.send_signal(signal.SIGTERM)
                for process in [*workers, api]:
                    await asyncio.wait_for(process.wait(), 60)
                await store.aclose()


async def load(args: argparse.Namespace, base: str, store: Store, networks: FakeNetworks) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:
        ids = [
            (await http.post("/api/connections", json={"network": n, "account": "@bench"})).json()["id"]
            for n in ("mastodon", "bluesky", "linkedin")
        ]
        post = (await http.post("/api/posts", json={"body": "Benchmark post"})).json()["id"]
        dispatch_ms: list[float] = []
        health_ms: list[float] = []
        errors = 0
        done = asyncio.Event()

        async def one(i: int) -> None:
            nonlocal errors
            began = time.perf_counter()
            response = await http.post(f"/api/posts/{post}/dispatch", json={"connectionIds": [ids[i % 3]]})
            dispatch_ms.append((time.perf_counter() - began) * 1000)
            errors += response.status_code != 202

        async def poll_health() -> None:
            nonlocal errors
            while not done.is_set():
                began = time.perf_counter()
                response = await http.get("/api/queue/health")
                health_ms.append((time.perf_counter() - began) * 1000)
                errors += response.status_code != 200
                await asyncio.sleep(0.1)

        total = int(args.rate * args.seconds)
        poller = asyncio.create_task(poll_health())
        started = time.perf_counter()
        tasks = []
        for i in range(total):
            await asyncio.sleep(max(0.0, started + i / args.rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        load_end = time.perf_counter()
        sent_during = await sent(store)
        while (n := await sent(store)) < total:
            if time.perf_counter() - load_end > 120:
                break
            await asyncio.sleep(0.1)
        drained = time.perf_counter()
        done.set()
        await poller

    print(
        f"\n## Distribution: {args.rate:g} dispatches/s for {args.seconds:g} s, "
        f"{args.latency_ms:g} ms network"
    )
    print(
        f"({args.workers} worker process(es), 5 jobs at a time each; "
        f"{'PostgreSQL' if args.db else 'SQLite'})\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| dispatch requests sent | {total} ({errors} errors) |")
    print(
        f"| POST dispatch latency p50 / p95 / max | {pct(dispatch_ms, 0.5):.1f} / "
        f"{pct(dispatch_ms, 0.95):.1f} / {max(dispatch_ms):.1f} ms |"
    )
    print(
        f"| GET /api/queue/health latency p50 / p95 | {pct(health_ms, 0.5):.1f} / "
        f"{pct(health_ms, 0.95):.1f} ms "
        f"({len(health_ms)} calls) |"
    )
    print(
        f"| posts sent while the load ran | {sent_during} in {load_end - started:.1f} s "
        f"({sent_during / (load_end - started):.1f}/s) |"
    )
    print(f"| all {n} sent after | {drained - started:.1f} s ({n / (drained - started):.1f}/s overall) |")
    print(f"| posts on the fake networks | {len(networks.posts)} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
