"""Setlist voting benchmark: live counts under load, one command.

    python bench/setlist_votes.py [--rate 1000] [--seconds 10] [--pages 100]

The app runs as it is deployed, on a private redis-server and SQLite:
``--api-processes`` API processes under uvicorn, and the workers (with the
fake upstream APIs) in a process of their own; one artist is imported.
``--pages`` pages are open on as many of its shows (a process
holding one server-sent-events stream each, and reading the show's
counts once it is open, as the page does); two voter processes send
``--rate`` votes a second between them, each from one of 2,000 visitors,
on one of 20 songs of one of the shows, up, down or taken back.

Prints the votes sent and answered, the delivery delay from a vote's send
to its update reaching the show's open page (p50, p95, p99, max), and
checks that no vote was lost or counted twice: every tally in Redis equals
the count of the visitors' last votes, every update reached its page, and
after the persist job the ``votes`` table holds exactly the last votes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from conveyor import Conveyor, connect
from conveyor.testing import RedisServer, serving
from setlist.api import create_api
from setlist.config import Settings
from setlist.db import migrate
from setlist.fake.fixtures import build_artists
from setlist.fake.server import FakeConfig, FakeState, create_fake
from setlist.models import Show, Vote
from setlist.pipeline import Pipeline
from setlist.progress import subject
from setlist.services import Services

VOTERS = 2000
SONGS = 20

try:
    import uvloop

    run = uvloop.run
except ImportError:  # pragma: no cover
    run = asyncio.run  # type: ignore[assignment]


def serve_app(redis_url: str, database: str, urls: Any, stop: Any) -> None:
    """One API process (its URL put on ``urls``), as ``setlist api`` runs it."""

    async def main() -> None:
        redis = connect(redis_url)
        app = Conveyor(redis)
        services = Services.create(redis, database_url=database)
        pipeline = Pipeline(app, services)
        async with serving(create_api(pipeline)) as api:
            urls.put(api)
            await asyncio.to_thread(stop.wait)
        await app.close()
        await services.aclose()
        await redis.aclose()

    run(main())


def serve_worker(redis_url: str, database: str, ready: Any, stop: Any) -> None:
    """The workers, in a process of their own as ``setlist worker`` runs
    them, with the fake upstream APIs the import calls."""

    async def main() -> None:
        redis = connect(redis_url)
        async with serving(create_fake(FakeState(build_artists(), FakeConfig(latency_ms=1)))) as fake:
            app = Conveyor(redis)
            services = Services.create(redis, settings=Settings.for_fake(fake), database_url=database)
            Pipeline(app, services)
            worker = asyncio.create_task(app.run_worker())
            ready.set()
            await asyncio.to_thread(stop.wait)
            await app.close()
            await worker
            await services.aclose()
        await redis.aclose()

    run(main())


def listen(apis: list[str], shows: list[str], out: str, ready: Any, stop: Any) -> None:
    """One open page per show: every update received, with its arrival time."""

    async def main() -> list[tuple[str, int, float]]:
        seen: list[tuple[str, int, float]] = []
        opened = 0

        async def page(client: httpx.AsyncClient, api: str, show: str) -> None:
            nonlocal opened
            async with client.stream("GET", f"{api}/api/shows/{show}/stream") as stream:
                # then the counts, as the page does once its stream is open
                (await client.get(f"{api}/api/shows/{show}")).raise_for_status()
                opened += 1
                if opened == len(shows):
                    ready.set()
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        seen.append((show, int(json.loads(line[5:])["seq"]), time.time()))

        limits = httpx.Limits(max_connections=len(shows) + 10)
        async with httpx.AsyncClient(timeout=None, limits=limits) as client:
            pages = [
                asyncio.create_task(page(client, apis[i % len(apis)], show)) for i, show in enumerate(shows)
            ]
            await asyncio.to_thread(stop.wait)
            await asyncio.sleep(1.0)  # the last updates on their way
            for p in pages:
                p.cancel()
            await asyncio.gather(*pages, return_exceptions=True)
        return seen

    Path(out).write_text(json.dumps(run(main())))


class RawPool:
    """Keep-alive HTTP/1.1 connections that POST JSON: a client light enough
    for one process to send a thousand requests a second (httpx spends about
    a millisecond of CPU on each)."""

    def __init__(self, host: str, port: int, idle: asyncio.Queue[tuple[Any, Any]]) -> None:
        self.host, self.port, self.idle = host, port, idle

    @classmethod
    async def open(cls, base: str, size: int) -> RawPool:
        host, port = base.removeprefix("http://").split(":")
        idle: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        for _ in range(size):
            idle.put_nowait(await asyncio.open_connection(host, int(port)))
        return cls(host, int(port), idle)

    async def post(self, path: str, body: bytes, cookie: str) -> tuple[int, Any]:
        reader, writer = await self.idle.get()
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Cookie: {cookie}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            answer = json.loads(await reader.readexactly(length))
        except BaseException:
            writer.close()
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
            raise
        self.idle.put_nowait((reader, writer))
        return status, answer

    async def aclose(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


def vote(
    api: str, shows: list[str], songs: list[str], rate: float, seconds: float, seed: int, out: str
) -> None:
    """Votes at ``rate`` a second: what was sent, answered and meant."""

    async def main() -> dict[str, Any]:
        rng = random.Random(seed)
        sent: list[tuple[str, int, float]] = []  # show, seq, when sent (changes only)
        last: dict[str, int] = {}  # "voter|show|song" -> last vote meant
        flying: set[str] = set()  # one vote of a visitor on a song at a time, as from one page
        errors = 0
        answered = 0
        pool = await RawPool.open(api, 64)
        try:

            async def one(key: str, show: str, song: str, direction: str) -> None:
                try:
                    await send(key.split("|")[0], show, song, direction)
                finally:
                    flying.discard(key)

            async def send(voter: str, show: str, song: str, direction: str) -> None:
                nonlocal errors, answered
                t0 = time.time()
                try:
                    status, body = await pool.post(
                        f"/api/shows/{show}/votes",
                        json.dumps({"songId": song, "direction": direction}).encode(),
                        f"setlist_voter={voter}",
                    )
                except OSError:
                    errors += 1
                    return
                if status != 200:
                    errors += 1
                    return
                answered += 1
                if body["changed"]:
                    sent.append((show, int(body["seq"]), t0))

            tasks = set()
            start = time.perf_counter()
            n = int(rate * seconds)
            for i in range(n):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                voter = f"bench-voter-{seed}-{rng.randrange(VOTERS):05d}"
                show, song = rng.choice(shows), rng.choice(songs)
                direction = rng.choice(("up", "up", "down", "none"))
                key = f"{voter}|{show}|{song}"
                while key in flying:  # that visitor's vote on that song is on its way: another one
                    voter = f"bench-voter-{seed}-{rng.randrange(VOTERS):05d}"
                    key = f"{voter}|{show}|{song}"
                flying.add(key)
                last[key] = {"up": 1, "down": -1, "none": 0}[direction]
                task = asyncio.create_task(one(key, show, song, direction))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if len(tasks) > 150:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.gather(*tasks)
            took = time.perf_counter() - start
        finally:
            await pool.aclose()
        return {"sent": sent, "last": last, "errors": errors, "answered": answered, "took": took, "n": n}

    Path(out).write_text(json.dumps(run(main())))


async def prepare(redis_url: str, database: str, api: str) -> tuple[list[str], list[str], Any]:
    """Imports the mid-size artist through the API; its shows and songs."""
    redis = connect(redis_url)
    app = Conveyor(redis)
    async with httpx.AsyncClient(timeout=60) as http:
        artist = build_artists()["midsize"]
        started = (
            await http.post(f"{api}/api/artists/import", json={"tmAttractionId": artist.attraction_id})
        ).json()
        async for status in app.progress.subscribe(subject(started["artistId"])):
            if status.finished:
                break
    services = Services.create(redis, database_url=database)
    async with services.store.sessions() as session:
        shows = list((await session.execute(select(Show.id).order_by(Show.local_date))).scalars())
    songs = [s.id for s in await services.store.songs(started["artistId"])][:SONGS]

    await services.aclose()
    await redis.aclose()
    return shows, songs, started["artistId"]


async def check(redis_url: str, database: str, api: str, last: dict[str, int]) -> dict[str, Any]:
    """Tallies and stored votes against the visitors' last votes."""
    expected: Counter[tuple[str, str, str]] = Counter()
    for key, value in last.items():
        _, show, song = key.split("|")
        if value:
            expected[(show, song, "up" if value == 1 else "down")] += 1
    redis = connect(redis_url)
    wrong_tallies = 0
    async with httpx.AsyncClient(timeout=60) as http:
        for show in {k.split("|")[1] for k in last}:
            body = (await http.get(f"{api}/api/shows/{show}")).json()
            for song in body["songs"]:
                if (song["up"], song["down"]) != (
                    expected[(show, song["id"], "up")],
                    expected[(show, song["id"], "down")],
                ):
                    wrong_tallies += 1
    services = Services.create(redis, database_url=database)
    await services.aclose()
    # the persist job writes a second after the last vote; the sweep each minute
    deadline = time.monotonic() + 60
    stored: dict[str, int] = {}
    while time.monotonic() < deadline:
        services = Services.create(redis, database_url=database)
        async with services.store.sessions() as session:
            rows = (await session.execute(select(Vote))).scalars().all()
            stored = {f"{v.voter}|{v.show_id}|{v.song_id}": v.value for v in rows}
        await services.aclose()
        if stored == {k: v for k, v in last.items() if v} and not await redis.hlen("setlist:votes:dirty"):
            break
        await asyncio.sleep(0.5)
    await redis.aclose()
    return {
        "wrong_tallies": wrong_tallies,
        "stored_match": stored == {k: v for k, v in last.items() if v},
        "stored": len(stored),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--api-processes", type=int, default=1, help="API processes (pages and votes spread)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    with RedisServer() as redis_server, tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'votes.db'}"
        run(migrate(database))
        urls, stop, working = ctx.Queue(), ctx.Event(), ctx.Event()
        servers = [
            ctx.Process(target=serve_app, args=(redis_server.url, database, urls, stop))
            for _ in range(args.api_processes)
        ]
        servers.append(ctx.Process(target=serve_worker, args=(redis_server.url, database, working, stop)))
        for server in servers:
            server.start()
        apis = [urls.get(timeout=60) for _ in range(args.api_processes)]
        working.wait(60)
        api = apis[0]
        shows, songs, _ = run(prepare(redis_server.url, database, api))
        shows = shows[: args.pages]
        heard = Path(tmp) / "heard.json"
        listening, stop_listening = ctx.Event(), ctx.Event()
        listener = ctx.Process(target=listen, args=(apis, shows, str(heard), listening, stop_listening))
        listener.start()
        listening.wait(60)
        outs = [Path(tmp) / f"votes-{i}.json" for i in range(2)]
        voters = [
            ctx.Process(
                target=vote,
                args=(apis[i % len(apis)], shows, songs, args.rate / 2, args.seconds, i, str(out)),
            )
            for i, out in enumerate(outs)
        ]
        for p in voters:
            p.start()
        for p in voters:
            p.join()
        stop_listening.set()
        listener.join()
        results = [json.loads(out.read_text()) for out in outs]
        last: dict[str, int] = {}
        for r in results:
            last.update(r["last"])
        verdict = run(check(redis_server.url, database, api, last))
        stop.set()
        for server in servers:
            server.join(30)
        received = {(show, seq): at for show, seq, at in json.loads(heard.read_text())}
        delays = []
        missing = 0
        for r in results:
            for show, seq, sent_at in r["sent"]:
                at = received.get((show, seq))
                if at is None:
                    missing += 1
                else:
                    delays.append((at - sent_at) * 1000)
    n = sum(r["n"] for r in results)
    took = max(r["took"] for r in results)
    delays.sort()

    def pct(p: float) -> float:
        return delays[min(len(delays) - 1, int(p * len(delays)))]

    print(f"\n{n:,} votes at {args.rate:,.0f}/s asked, over {len(shows)} shows with a page open on each,")
    print(f"{args.api_processes} API process(es)")
    answered, errors = sum(r["answered"] for r in results), sum(r["errors"] for r in results)
    print(f"{'votes answered / errors':<40} {answered:,} / {errors}")
    print(f"{'achieved rate':<40} {n / took:,.0f} votes/s")
    print(f"{'updates (votes that changed a tally)':<40} {len(delays) + missing:,}, {missing} not received")
    if delays:
        p50, p95, p99 = statistics.median(delays), pct(0.95), pct(0.99)
        label = "vote to open page p50 / p95 / p99 / max"
        print(f"{label:<40} {p50:.1f} / {p95:.1f} / {p99:.1f} / {delays[-1]:.1f} ms")
    print(f"{'tallies differing from the last votes':<40} {verdict['wrong_tallies']}")
    print(f"{'votes table equals the last votes':<40} {verdict['stored_match']} ({verdict['stored']:,} rows)")


if __name__ == "__main__":
    main()
