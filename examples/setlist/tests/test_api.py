"""The HTTP API: phase 1 at once, status by polling and by server-sent
events, artist page data with its cache, trending, search; clear 4xx for
bad input, which writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from setlist_env import Env
from sqlalchemy import func, select

from conveyor import JobState, Priority
from conveyor.server import create_app
from conveyor.testing import serving
from setlist.api import create_api
from setlist.config import Settings
from setlist.models import Artist
from setlist.queues import QUEUES


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(env.pipeline)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://setlist") as http:
        yield http


async def artist_rows(env: Env) -> int:
    async with env.services.store.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Artist))).scalar_one())


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        {"tmAttractionId": "K8vZ 91"},
        {"tmAttractionId": "x" * 41},
        {"tmAttractionId": 42},
        {"tmAttractionId": "K8vZ917", "extra": 1},
    ],
)
async def test_a_bad_import_request_is_refused_and_writes_nothing(
    env: Env, client: httpx.AsyncClient, body: Any
) -> None:
    if isinstance(body, bytes):
        response = await client.post(
            "/api/artists/import", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = await client.post("/api/artists/import", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]
    assert await artist_rows(env) == 0


async def test_an_import_starts_at_once_and_its_page_fills_in(env: Env, client: httpx.AsyncClient) -> None:
    fake = env.upstream.artist("midsize")
    response = await client.post("/api/artists/import", json={"tmAttractionId": fake.attraction_id})
    assert response.status_code == 200
    started = response.json()
    assert started["slug"] == f"tm-{fake.attraction_id.lower()}" and started["started"]
    again = (await client.post("/api/artists/import", json={"tmAttractionId": fake.attraction_id})).json()
    assert (again["artistId"], again["started"]) == (started["artistId"], False)
    # before any worker ran: the placeholder and its queued status
    status = (await client.get(f"/api/artists/{started['artistId']}/status")).json()
    assert (status["stage"], status["finished"]) == ("initializing", False)

    await env.work_until_finished(started["artistId"])

    page = await client.get(f"/api/artists/{started['slug']}")  # the phase-1 slug still resolves
    assert page.status_code == 200 and page.headers["x-cache"] == "miss"
    body = page.json()
    assert body["artist"]["slug"] == "velvet-echo" and body["artist"]["importStatus"] == "complete"
    assert body["counts"]["shows"] == len(fake.shows) and len(body["shows"]) == 100
    assert body["counts"]["songs"] == len(body["songs"]) == len(fake.studio_songs)
    assert body["status"]["stage"] == "completed"
    assert (await client.get("/api/artists/velvet-echo")).headers["x-cache"] == "hit"
    status = (await client.get("/api/artists/velvet-echo/status")).json()
    assert (status["stage"], status["progress"], status["finished"]) == ("completed", 100, True)
    # the polling fallback still answers once the live status has expired
    await env.services.redis.delete(
        *[k async for k in env.services.redis.scan_iter("conveyor:{progress/progress}:*")]
    )
    status = (await client.get("/api/artists/velvet-echo/status")).json()
    assert (status["stage"], status["progress"]) == ("completed", 100)


async def test_an_attraction_id_in_other_letters_is_the_same_artist(
    env: Env, client: httpx.AsyncClient
) -> None:
    fake = env.upstream.artist("midsize")
    wrong = fake.attraction_id.swapcase()
    # first in letters Ticketmaster does not know: the import fails, its placeholder stays
    first = (await client.post("/api/artists/import", json={"tmAttractionId": wrong})).json()
    await env.work_until_finished(first["artistId"])
    assert (await client.get(f"/api/artists/{first['artistId']}/status")).json()["stage"] == "failed"
    # then as Ticketmaster writes it: the same artist, now imported under that spelling
    right = (await client.post("/api/artists/import", json={"tmAttractionId": fake.attraction_id})).json()
    assert (right["artistId"], right["started"]) == (first["artistId"], True)
    await env.work_until_finished(right["artistId"])
    for key in (f"tm-{fake.attraction_id}", f"tm-{wrong}", f"tm-{fake.attraction_id.lower()}"):
        page = await client.get(f"/api/artists/{key}")
        assert page.status_code == 200, key
        assert page.json()["artist"]["slug"] == "velvet-echo"
    # and in other letters again, once imported: the same artist, its stored id kept
    again = (
        await client.post("/api/artists/import", json={"tmAttractionId": fake.attraction_id.upper()})
    ).json()
    assert again["artistId"] == first["artistId"]
    assert await artist_rows(env) == 1
    stored = await env.services.store.artist(first["artistId"])
    assert stored is not None and stored.tm_attraction_id == fake.attraction_id


async def test_the_mounted_conveyor_api_takes_the_admin_token(env: Env) -> None:
    dashboard = create_app(env.app.redis, tasks=env.app, token="adm1n")
    api = create_api(env.pipeline, dashboard=dashboard)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://setlist") as http:
        for method, path in [
            ("GET", "/conveyor/api/queues"),
            ("POST", "/conveyor/api/queues/artist-import/pause"),
            ("POST", "/conveyor/api/queues/artist-import/jobs"),
            ("DELETE", "/conveyor/api/queues/artist-import"),
        ]:
            assert (await http.request(method, path, json={})).status_code == 401, path
        granted = await http.get("/conveyor/api/queues", headers={"authorization": "Bearer adm1n"})
        assert granted.status_code == 200
        assert (
            await http.post("/api/artists/import", json={})
        ).status_code == 400  # the public API stays public


def test_the_admin_token_is_read_by_the_seeds_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "from-env")
    assert Settings().admin_token is not None and Settings().admin_token.get_secret_value() == "from-env"  # type: ignore[union-attr]


async def test_unknown_artists_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/api/artists/nobody", "/api/artists/nobody/stream"):  # its status: test_ops
        response = await client.get(path)
        assert response.status_code == 404 and "nobody" in response.json()["detail"]


async def test_progress_streams_over_server_sent_events(env: Env) -> None:
    fake = env.upstream.artist("midsize")
    async with (
        serving(create_api(env.pipeline)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        started = (await http.post("/api/artists/import", json={"tmAttractionId": fake.attraction_id})).json()
        events: list[dict[str, Any]] = []
        named: list[str] = []

        async def read() -> None:
            async with http.stream("GET", f"/api/artists/{started['artistId']}/stream") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        events.append(json.loads(line[5:]))
                    named.extend([line] if line.startswith("event:") else [])

        reader = asyncio.create_task(read())
        await env.work_until_finished(started["artistId"])
        async with asyncio.timeout(10):
            await reader  # the stream ends after the final event
    stages = [e["stage"] for e in events]
    assert stages[0] == "initializing" and stages[-1] == "completed"
    # seed 000's stages
    assert {"syncing-identifiers", "importing-shows", "importing-songs", "creating-setlists"} <= set(stages)
    assert set(events[0]) == {"stage", "progress", "message", "at"}
    percents = [e["progress"] for e in events]
    assert percents == sorted(percents) and percents[-1] == 100
    assert named == []  # unnamed events: what the seed's EventSource.onmessage receives


async def test_search_reads_upstream_and_writes_nothing(env: Env, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search", params={"q": "velvet"})
    assert response.status_code == 200
    assert [r["name"] for r in response.json()["results"]] == ["Velvet Echo"]
    assert response.json()["results"][0]["artistId"] is None
    assert await artist_rows(env) == 0
    assert (await client.get("/api/search", params={"q": ""})).status_code == 422
    assert (await client.get("/api/search")).status_code == 422


async def test_trending_ranks_imported_artists_with_or_without_popularity(
    env: Env, client: httpx.AsyncClient
) -> None:
    for key in ("midsize", "sparse"):
        await env.import_artist(key)
    env.upstream.state.config.spotify_profile = "development"
    await env.import_artist("prolific")  # re-read in development mode: no popularity
    await env.pipeline.upkeep.compute_trending.enqueue()
    await env.app.run_worker(burst=True)

    ranked = (await client.get("/api/trending")).json()["artists"]
    assert [a["name"] for a in ranked] == ["Neon Harbor", "Velvet Echo", "Quiet Satellite"]
    assert all(a["trendingScore"] > 0 for a in ranked)
    assert ranked[0]["popularity"] is None


async def test_the_pages_are_served(env: Env, client: httpx.AsyncClient) -> None:
    artist_id = await env.import_artist("sparse")
    home = await client.get("/")
    assert home.status_code == 200 and "/static/trending.js" in home.text
    page = await client.get("/artists/quiet-satellite")
    assert page.status_code == 200 and "/static/artist.js" in page.text
    assert (await client.get("/artists/nobody")).status_code == 404
    assert (await client.get("/static/artist.js")).headers["content-type"].startswith("text/javascript")
    assert (await client.get("/static/..%2Fapi.py")).status_code == 404
    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.view_count == 1


async def test_the_schedules_are_declared(env: Env) -> None:
    await env.app.setup()
    schedules = {
        s.key: (name, s.cron) for name in QUEUES for s in await env.app.queues[name].queue.get_schedules()
    }
    assert schedules == {
        "setlist-trending": ("trending-calc", "0 * * * *"),
        "setlist-resync": ("scheduled-sync", "15 */6 * * *"),
        "setlist-deep-sync": ("scheduled-sync", "30 3 * * *"),
        "setlist-venue-sync": ("venue-sync", "45 2 * * *"),
        "setlist-setlist-sync": ("setlist-sync", "0 5 * * *"),
        "setlist-cleanup": ("cleanup", "0 4 * * 0"),
        "setlist-health": ("cleanup", "*/5 * * * *"),
        "setlist-votes-sweep": ("setlist-votes", "* * * * *"),
    }


async def test_the_deep_sync_restarts_trending_artists_once(env: Env) -> None:
    for key in ("midsize", "sparse"):
        await env.import_artist(key)
    scheduled = env.app.queues["scheduled-sync"].queue
    results = []
    for _ in range(2):  # the second run finds both imports under way
        job = await env.pipeline.syncs.deep_sync_trending.enqueue(top=5)
        await env.app.run_worker(["scheduled-sync"], burst=True)
        done = await scheduled.get_job(job.id)
        assert done is not None
        results.append(done.result)
    assert results == [{"started": 2}, {"started": 0}]
    # the re-imports wait at LOW priority: a user's import, added after them, runs first
    imports = env.app.queues["artist-import"].queue
    deep = await imports.get_jobs(JobState.WAITING)
    assert len(deep) == 2 and {j.priority for j in deep} == {Priority.LOW}
    _, _, users = await env.pipeline.start(env.upstream.artist("prolific").attraction_id)
    assert users is not None and users.priority == Priority.CRITICAL
    assert (await imports.get_jobs(JobState.WAITING, count=1))[0].id == users.id
