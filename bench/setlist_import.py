"""Setlist reference app benchmark: one command, prints tables.

    python bench/setlist_import.py [--latency-ms 50] [--crowd 100] [--db URL]

Serves the fake upstream APIs over real HTTP with ``--latency-ms`` added
to every answer and their rate limits enforced (Ticketmaster 5/s,
setlist.fm 2/s), serves the app's API under uvicorn, and runs the import
workers in this process on a private redis-server, SQLite by default.

1. The prolific artist (1,286 events, 53 releases, 64 setlists): phase 1
   (``POST /api/artists/import``) time, full import time and each phase's,
   upstream requests by service, and the delay from each progress report
   to its arrival over ``/api/artists/{id}/stream`` (SSE).
2. ``--crowd`` small artists (30 shows and two albums each) imported at
   once: time until all completed and requests by service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from conveyor import Conveyor, connect
from conveyor.testing import RedisServer, serving
from setlist.api import create_api
from setlist.config import Settings
from setlist.db import migrate
from setlist.fake.fixtures import build_artists
from setlist.fake.server import FakeConfig, FakeState, create_fake
from setlist.pipeline import Pipeline
from setlist.progress import subject
from setlist.services import Services


async def requests_by_service(http: httpx.AsyncClient, fake: str) -> dict[str, int]:
    counters = (await http.get(f"{fake}/_fake/counters")).json()
    await http.post(f"{fake}/_fake/reset")
    return {k: v for k, v in sorted(counters.items()) if " " not in k or k.endswith(("429", "faults"))}


async def wait_finished(app: Conveyor, artist_ids: list[str]) -> None:
    for artist_id in artist_ids:
        async for status in app.progress.subscribe(subject(artist_id)):
            if status.finished:
                if status.stage != "completed":
                    raise SystemExit(f"import of {artist_id} failed: {status.message}")
                break


async def main(latency_ms: float, crowd: int, db: str | None) -> None:
    artists = build_artists(crowd)
    with RedisServer() as redis_server, tempfile.TemporaryDirectory() as tmp:
        servers = contextlib.AsyncExitStack()
        database = db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        await migrate(database)
        redis = connect(redis_server.url)
        state = FakeState(artists, FakeConfig(latency_ms=latency_ms, enforce_limits=True))
        fake = await servers.enter_async_context(serving(create_fake(state)))
        app = Conveyor(redis)
        services = Services.create(redis, settings=Settings.for_fake(fake), database_url=database)
        pipeline = Pipeline(app, services)
        api = await servers.enter_async_context(serving(create_api(pipeline)))
        worker = asyncio.create_task(app.run_worker())
        http = httpx.AsyncClient(timeout=60)
        try:
            # 1. the prolific artist, followed over SSE
            prolific = artists["prolific"]
            t0 = time.perf_counter()
            response = await http.post(
                f"{api}/api/artists/import", json={"tmAttractionId": prolific.attraction_id}
            )
            phase1 = time.perf_counter() - t0
            artist_id = response.json()["artistId"]
            delays: list[float] = []

            async def follow() -> None:
                async with http.stream("GET", f"{api}/api/artists/{artist_id}/stream") as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data:"):
                            event = json.loads(line[5:])
                            sent = datetime.fromisoformat(event["at"]).timestamp()
                            delays.append((time.time() - sent) * 1000)

            follower = asyncio.create_task(follow())
            await wait_finished(app, [artist_id])
            total = time.perf_counter() - t0
            await asyncio.wait_for(follower, 10)
            job_id = response.json()["jobId"]
            phases: dict[str, float] = {}
            for queue, name in (
                ("artist-import", job_id),
                ("ticketmaster-sync", f"{job_id}-shows"),
                ("spotify-catalog", f"{job_id}-catalog"),
                ("artist-import", f"{job_id}-wrap"),
            ):
                # the import reports "completed" from inside the wrap-up job
                await app.queues[queue].queue.wait_until_finished(name, timeout=30)
                job = await app.queues[queue].queue.get_job(name)
                assert job is not None and job.started_at and job.finished_at
                phases[f"{job.name} job"] = (job.finished_at - job.started_at).total_seconds()
            counts = await services.store.counts(artist_id)
            upstream = await requests_by_service(http, fake)
            delays = delays[1:]  # the first event is the status as it stood when the stream opened
            kind = database.split(":")[0]
            print(f"\n## Prolific artist, {latency_ms:g} ms upstream latency, limits enforced ({kind})")
            print("| measure | value |\n|---|---|")
            print(f"| phase 1 (POST /api/artists/import) | {phase1 * 1000:.0f} ms |")
            print(f"| full import | {total:.2f} s |")
            for name, seconds in phases.items():
                print(f"| {name} (start to end) | {seconds:.2f} s |")
            stored = f"{counts.shows} shows, {counts.venues} venues, {counts.songs} songs"
            stored += f", {counts.setlists} setlists"
            print(f"| stored | {stored} |")
            print(f"| SSE events | {len(delays) + 1} |")
            if len(delays) > 1:
                q = statistics.quantiles(delays, n=20)
                spread = f"{statistics.median(delays):.1f} / {q[18]:.1f} / {max(delays):.1f} ms"
                print(f"| report → SSE client p50 / p95 / max | {spread} |")
            for key, value in upstream.items():
                print(f"| requests: {key} | {value} |")

            # 2. a crowd of artists at once
            if crowd:
                keys = [k for k in artists if k.endswith("crowd")]
                post_times: list[float] = []

                async def post(key: str) -> str:
                    began = time.perf_counter()
                    body = {"tmAttractionId": artists[key].attraction_id}
                    answer = await http.post(f"{api}/api/artists/import", json=body)
                    post_times.append((time.perf_counter() - began) * 1000)
                    return str(answer.json()["artistId"])

                t0 = time.perf_counter()
                ids = await asyncio.gather(*(post(k) for k in keys))
                posted = time.perf_counter() - t0
                await wait_finished(app, ids)
                total = time.perf_counter() - t0
                upstream = await requests_by_service(http, fake)
                shows = sum([(await services.store.counts(i)).shows for i in ids])
                print(
                    f"\n## {len(keys)} artists imported at once, {latency_ms:g} ms latency, limits enforced"
                )
                print("| measure | value |\n|---|---|")
                print(f"| {len(keys)} POSTs at once: all answered | {posted:.2f} s |")
                if len(post_times) > 1:
                    worst = statistics.quantiles(post_times, n=20)[18]
                    print(
                        f"| POST latency p50 / p95 | {statistics.median(post_times):.0f} / {worst:.0f} ms |"
                    )
                print(f"| all imports completed | {total:.2f} s |")
                print(f"| shows stored | {shows} (expected {sum(len(artists[k].shows) for k in keys)}) |")
                for key, value in upstream.items():
                    print(f"| requests: {key} | {value} |")
                tm, sf = upstream.get("ticketmaster", 0), upstream.get("setlistfm", 0)
                floors = f"Ticketmaster {tm / 5 * 1.1:.1f} s, setlist.fm {sf / 2 * 1.1:.1f} s"
                print(f"| floor set by the limits (5/s, 2/s, 10 % margin) | {floors} |")
        finally:
            await http.aclose()
            await app.close()
            await worker
            await servers.aclose()
            await services.aclose()
            await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--crowd", type=int, default=100)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms, args.crowd, args.db))
