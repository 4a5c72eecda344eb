"""Fixtures of the setlist app's tests: the fake upstream APIs in process."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aredis
from setlist_env import FAST, Env
from upstream import Upstream

from conveyor import Conveyor, connect
from conveyor.testing import RedisServer
from setlist.adapters.setlistfm import SetlistFmClient
from setlist.adapters.spotify import SpotifyClient
from setlist.adapters.ticketmaster import TicketmasterClient
from setlist.api import create_api
from setlist.config import Settings
from setlist.db import migrate
from setlist.fake.fixtures import build_artists
from setlist.fake.server import API_KEY, CLIENT_ID, CLIENT_SECRET, SETLISTFM_KEY, FakeState, create_fake
from setlist.pipeline import Pipeline
from setlist.services import Services

ARTISTS = build_artists()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = FakeState(ARTISTS)
    app = create_fake(state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake") as http:
        yield Upstream(
            state,
            http,
            TicketmasterClient(http, "http://fake/ticketmaster/discovery/v2", API_KEY),
            SpotifyClient(
                http, "http://fake/spotify-api/v1", "http://fake/spotify-accounts", CLIENT_ID, CLIENT_SECRET
            ),
            SetlistFmClient(http, "http://fake/setlistfm/rest/1.0", SETLISTFM_KEY, backoff=0.01),
        )


# -- databases: SQLite in a temporary file, and a fresh PostgreSQL database ----

PG_ADMIN = os.environ.get("SETLIST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _pg_available() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database of each kind. PostgreSQL tests need a
    server (``SETLIST_TEST_PG``, by default the local one); under CI a
    missing server is an error, elsewhere the test is skipped."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'setlist.db'}"
        await migrate(url)
        yield url
        return
    if not await _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}")
        pytest.skip("PostgreSQL is not reachable")
    name = f"setlist_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    try:
        await migrate(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# -- Redis and the whole pipeline ---------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    """A client on an emptied server: the app's queue names are fixed."""
    async with connect(redis_server.url) as client:
        await client.flushdb()
        yield client


@pytest.fixture
async def env(
    request: pytest.FixtureRequest, redis: aredis.Redis, upstream: Upstream, database_url: str
) -> AsyncIterator[Env]:
    """The app on the fake upstreams, with the fast test settings and those
    of the test's ``@pytest.mark.settings(...)``."""
    app = Conveyor(redis)
    marker = request.node.get_closest_marker("settings")
    services = Services.create(
        redis,
        settings=Settings.for_fake("http://fake", **{**FAST, **(marker.kwargs if marker else {})}),
        database_url=database_url,
        http=upstream.http,
    )
    try:
        yield Env(app, services, Pipeline(app, services), upstream)
    finally:
        await services.aclose()


@pytest.fixture
async def admin(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app's API with an admin token (``ADMIN``) and a cron secret (``CRON``)."""
    api = create_api(env.pipeline, admin_token="adm1n", cron_secret="cr0n")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://setlist") as http:
        yield http
