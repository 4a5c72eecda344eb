"""Distribution service benchmark: sustained dispatch load through the API.

    python bench/distribution_load.py [--rate 50] [--seconds 30] [--latency-ms 50] [--workers 1]

Runs, each in its own process as in production: a private redis-server
(AOF everysec), the service's API (``distribution api``), ``--workers``
worker processes (``distribution worker``, 5 jobs at a time each), and the
fake networks (``distribution fake``) over real HTTP with ``--latency-ms``
per answer. SQLite (WAL) by default, ``--db URL`` for PostgreSQL. This
process only sends requests, so that its own event loop does not delay
what it measures.

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

from conveyor.testing import RedisServer, free_port
from distribution.models import Dispatch
from distribution.store import Store
from lean import LeanClient, pct, wait_http

TOKEN = "bench-token"
HEADERS = {"authorization": f"Bearer {TOKEN}"}


async def sent(store: Store) -> int:
    async with store.sessions() as session:
        query = select(func.count()).select_from(Dispatch).where(Dispatch.status == "sent")
        return int((await session.execute(query)).scalar_one())


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="distribution-bench-"))
    db = args.db or f"sqlite:///{tmp / 'd.db'}"
    port, fake_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    with RedisServer(appendonly=True) as redis_server:
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": db,
            "DISTRIBUTION_NETWORK_URL": fake_url,
            "DISTRIBUTION_API_TOKEN": TOKEN,
        }
        log = (tmp / "services.log").open("ab")  # the services' output

        async def start(*command: str) -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "distribution.cli",
                *command,
                env=env,
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        fake = await start("fake", "--port", str(fake_port), "--latency-ms", str(args.latency_ms))
        api = await start("api", "--port", str(port))
        base = f"http://127.0.0.1:{port}"
        await wait_http(f"{fake_url}/_fake/counters", HEADERS)
        await wait_http(f"{base}/api/queue/health", HEADERS)  # the API creates the schema
        # the job journal (a log line per state change) in the first worker only, as the README says
        workers = [await start("worker", *(["--no-journal"] if n else [])) for n in range(args.workers)]
        store = Store(db)
        try:
            await load(args, base, fake_url, store, tmp / "services.log")
        finally:
            for process in [*workers, api, fake]:
                process.send_signal(signal.SIGTERM)
            for process in [*workers, api, fake]:
                await asyncio.wait_for(process.wait(), 60)
            await store.aclose()
            log.close()


async def load(args: argparse.Namespace, base: str, fake_url: str, store: Store, log_path: Path) -> None:
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
        accepted: list[int] = []
        done = asyncio.Event()

        lean = LeanClient("127.0.0.1", int(base.rsplit(":", 1)[1]), headers)

        async def one(i: int, due: float) -> None:
            # Latency from when the request was due, so that a late send
            # counts against the service, not for it.
            nonlocal errors
            try:
                status, _ = await lean.request(
                    "POST", f"/api/posts/{post}/dispatch", {"connectionIds": [ids[i % 3]]}
                )
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                print(f"dispatch {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
                errors += 1
                return
            dispatch_ms.append((time.perf_counter() - due) * 1000)
            if status == 202:
                accepted.append(i)
            else:
                errors += 1

        async def poll_health() -> None:
            nonlocal errors
            while not done.is_set():
                began = time.perf_counter()
                try:
                    status, _ = await lean.request("GET", "/api/queue/health")
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    print(f"health: {type(exc).__name__}: {exc}", file=sys.stderr)
                    errors += 1
                    continue
                health_ms.append((time.perf_counter() - began) * 1000)
                errors += status != 200
                await asyncio.sleep(0.1)

        total = int(args.rate * args.seconds)
        poller = asyncio.create_task(poll_health())
        started = time.perf_counter()
        tasks = []
        for i in range(total):
            due = started + i / args.rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        load_end = time.perf_counter()
        sent_during = await sent(store)
        while (n := await sent(store)) < len(accepted):
            if time.perf_counter() - load_end > 120:
                break
            await asyncio.sleep(0.1)
        drained = time.perf_counter()
        done.set()
        await poller
        lean.close()
        posted = len((await http.get(f"{fake_url}/_fake/posts")).json())

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
    print(f"| posts on the fake networks | {posted} |")
    if errors:
        print(f"\nThe API's and the workers' output: {log_path}")


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
