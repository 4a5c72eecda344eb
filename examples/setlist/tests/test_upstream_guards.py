"""What protects the upstreams: a circuit breaker per upstream shared by
every worker, album track listings read ``album_parallelism`` at a time
(seed 001's pLimit(10)), and the fake enforcing each upstream's rate."""

from __future__ import annotations

import httpx
import pytest
from setlist_env import Env
from sqlalchemy import select
from upstream import Upstream

from conveyor import CircuitBreaker, JobState
from setlist.fake.server import FakeConfig, Fault
from setlist.models import SyncProgress
from setlist.queues import QueueName

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ATTRACTION = "ticketmaster GET /discovery/v2/attractions/{id}.json"


@SQLITE
@pytest.mark.settings(breaker_failures=1, breaker_cooldown=0.5)
async def test_an_open_breaker_holds_the_import_instead_of_failing_it(env: Env) -> None:
    # Ticketmaster fails one whole call (its four tries): the breaker opens
    env.upstream.state.config = FakeConfig(
        faults=[Fault(service="ticketmaster", route="/attractions/{id}.json", kind="server_error", times=4)]
    )
    artist_id = await env.import_artist("midsize")

    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.import_status == "complete"
    imports = env.app.queues[QueueName.ARTIST_IMPORT].queue
    (bootstrap,) = [j for j in await imports.get_jobs(JobState.COMPLETED) if j.name == "bootstrap"]
    # one attempt failed; while the breaker was open the job waited without
    # using one, and no request went out until the probe, which succeeded
    assert bootstrap.attempts_made == 1
    assert env.upstream.state.counters[ATTRACTION] == 5
    async with env.services.store.sessions() as session:
        identity = (await session.scalars(select(SyncProgress).where(SyncProgress.phase == "identity"))).one()
    assert (identity.status, identity.attempts) == ("completed", 2)
    breaker = CircuitBreaker(env.services.redis, "setlist-ticketmaster")
    assert (await breaker.state()).state == "closed"


@SQLITE
@pytest.mark.settings(breaker_failures=1, breaker_cooldown=30)
async def test_a_search_while_ticketmaster_is_down_answers_503_without_calling_it(
    env: Env, admin: httpx.AsyncClient
) -> None:
    env.upstream.state.config = FakeConfig(
        faults=[Fault(service="ticketmaster", route="/attractions.json", kind="server_error", times=100)]
    )
    route = "ticketmaster GET /discovery/v2/attractions.json"
    first = await admin.get("/api/search", params={"q": "velvet"})
    assert first.status_code == 502 and env.upstream.state.counters[route] == 4
    second = await admin.get("/api/search", params={"q": "velvet"})
    assert second.status_code == 503 and 1 <= int(second.headers["retry-after"]) <= 30
    assert env.upstream.state.counters[route] == 4  # not asked while the breaker is open


@SQLITE
@pytest.mark.settings(album_parallelism=3)
async def test_album_tracks_are_read_a_few_albums_at_a_time(env: Env) -> None:
    env.upstream.state.config = FakeConfig(latency_ms=20)
    artist_id = await env.import_artist("midsize")
    peak = env.upstream.state.counters["peak spotify /v1/albums/{id}/tracks"]
    assert 2 <= peak <= 3
    counts = await env.services.store.counts(artist_id)
    assert counts.songs == len(env.upstream.artist("midsize").studio_songs)


async def test_the_fake_enforces_each_upstreams_rate(upstream: Upstream) -> None:
    upstream.state.config = FakeConfig(enforce_limits=True, rates={"spotify": 2})
    answers = [(await upstream.http.get("/spotify-api/v1/artists/x")).status_code for _ in range(3)]
    assert 429 not in answers[:2] and answers[2] == 429
    throttled = await upstream.http.get("/spotify-api/v1/artists/x")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
