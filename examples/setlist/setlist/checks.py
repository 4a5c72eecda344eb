"""``setlist check``: is this environment ready to run the app? Each
variable, Redis, the database and its migrations, and each upstream API
with its credentials, as a list of findings (seed 002's environment
validation).

A finding is ``ok``, ``warn`` (runs, but not as production should) or
``fail`` (the app would not work); the command exits 1 on any failure.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from conveyor import RedisSettings, connect
from setlist.adapters.clients import Upstreams
from setlist.adapters.http import UpstreamError
from setlist.config import FAKE, Settings
from setlist.db import alembic_config, database_url, make_engine

Level = Literal["ok", "warn", "fail"]
#: An artist setlist.fm is asked about (any well-formed MBID will do: an unknown one is an empty page).
PROBE_MBID = "b10bbbfc-cf9e-42e0-be17-e2c3e1d2600d"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    what: str
    detail: str


def variable_findings(settings: Settings) -> list[Finding]:
    """Which variables are set, and what an unset one means."""
    out = []
    for name in ("REDIS_URL", "DATABASE_URL"):
        if os.environ.get(name) or (name == "REDIS_URL" and os.environ.get("REDIS_HOST")):
            out.append(Finding("ok", name, "set"))
        else:
            out.append(Finding("warn", name, "unset: a local default is used"))
    upstreams = {
        "TICKETMASTER_API_KEY": settings.ticketmaster_url,
        "SPOTIFY_CLIENT_ID": settings.spotify_url,
        "SPOTIFY_CLIENT_SECRET": settings.spotify_url,
        "SETLISTFM_API_KEY": settings.setlistfm_url,
    }
    for name, url in upstreams.items():
        ours = f"SETLIST_{name.replace('_API_KEY', '_KEY')}"
        if os.environ.get(name) or os.environ.get(ours):
            out.append(Finding("ok", name, "set"))
        elif url.startswith(FAKE):
            out.append(Finding("warn", name, "unset: the bundled fake's, for the fake upstream"))
        else:
            out.append(Finding("fail", name, f"unset, but the upstream is {url}"))
    for name, value in (("ADMIN_TOKEN", settings.admin_token), ("CRON_SECRET", settings.cron_secret)):
        if value is not None and len(value.get_secret_value()) >= 16:
            out.append(Finding("ok", name, "set"))
        elif value is not None:
            out.append(Finding("warn", name, "set, but shorter than 16 characters"))
        else:
            what = (
                "a token is made at each start"
                if name == "ADMIN_TOKEN"
                else "the /api/cron routes answer 403"
            )
            out.append(Finding("warn", name, f"unset: {what}"))
    return out


async def redis_findings() -> list[Finding]:
    url = RedisSettings().resolved_url()
    try:
        async with connect(url) as redis:
            await redis.ping()
            try:
                policy = (await redis.config_get("maxmemory-policy")).get("maxmemory-policy")
            except Exception:  # managed Redis often disables CONFIG
                policy = None
    except Exception as exc:
        return [Finding("fail", "Redis", f"{url.split('@')[-1]}: {type(exc).__name__}: {exc}")]
    out = [Finding("ok", "Redis", f"{url.split('@')[-1]} answers")]
    if policy is None:
        out.append(Finding("warn", "Redis eviction", "maxmemory-policy unreadable (CONFIG is disabled)"))
    elif policy != "noeviction":
        out.append(Finding("fail", "Redis eviction", f"maxmemory-policy {policy}: jobs could be evicted"))
    return out


async def database_findings(url: str | None = None) -> list[Finding]:
    url = database_url(url)
    shown = url.split("@")[-1]
    engine = make_engine(url)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()

    def revision(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = await connection.run_sync(revision)
    except Exception as exc:
        return [Finding("fail", "database", f"{shown}: {type(exc).__name__}: {exc}")]
    finally:
        await engine.dispose()
    out = [Finding("ok", "database", f"{shown} answers")]
    if current == head:
        out.append(Finding("ok", "migrations", f"at the latest ({head})"))
    else:
        out.append(
            Finding(
                "fail", "migrations", f"at {current or 'none'}, the latest is {head}: run `setlist migrate`"
            )
        )
    return out


async def upstream_findings(settings: Settings, http: httpx.AsyncClient | None = None) -> list[Finding]:
    """One cheap call to each upstream, with its credentials."""
    async with contextlib.nullcontext(http) if http is not None else httpx.AsyncClient(timeout=5) as client:
        up = Upstreams.build(client, settings, retry_delay=0.05)
        calls: list[tuple[str, str, Callable[[], Awaitable[Any]]]] = [
            (
                "Ticketmaster",
                settings.ticketmaster_url,
                lambda: up.ticketmaster.search_attractions("a", size=1),
            ),
            ("Spotify", settings.spotify_url, lambda: up.spotify.search_artist("a")),
            ("setlist.fm", settings.setlistfm_url, lambda: up.setlistfm.setlists(PROBE_MBID)),
        ]
        out = []
        for name, url, call in calls:
            try:
                await call()
            except (UpstreamError, httpx.HTTPError) as exc:
                out.append(Finding("fail", name, f"{url}: {exc}"))
            else:
                out.append(Finding("ok", name, f"{url} answers, credentials accepted"))
        return out


async def findings(settings: Settings, http: httpx.AsyncClient | None = None) -> list[Finding]:
    return [
        *variable_findings(settings),
        *await redis_findings(),
        *await database_findings(),
        *await upstream_findings(settings, http),
    ]
