"""``setlist check`` (seed 002's environment validation): every variable,
Redis, the database and its migrations, each upstream with its
credentials; a clear report, and exit status 1 when something is wrong."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.testing import RedisServer, free_port, serving
from setlist.checks import database_findings, upstream_findings, variable_findings
from setlist.config import Settings
from setlist.fake.fixtures import build_artists
from setlist.fake.server import API_KEY, CLIENT_ID, CLIENT_SECRET, SETLISTFM_KEY, FakeState, create_fake

ENV_PREFIXES = (
    "REDIS_",
    "DATABASE_URL",
    "SETLIST_",
    "TICKETMASTER_",
    "SPOTIFY_",
    "SETLISTFM_",
    "ADMIN_",
    "CRON_",
    "QUEUE_",
)


@pytest.fixture
async def fake_base() -> AsyncIterator[str]:
    async with serving(create_fake(FakeState(build_artists()))) as base:
        yield base


def _environment(fake: str, redis_url: str, database_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        SETLIST_TICKETMASTER_URL=f"{fake}/ticketmaster/discovery/v2",
        SETLIST_SPOTIFY_URL=f"{fake}/spotify-api/v1",
        SETLIST_SPOTIFY_ACCOUNTS_URL=f"{fake}/spotify-accounts",
        SETLIST_SETLISTFM_URL=f"{fake}/setlistfm/rest/1.0",
        TICKETMASTER_API_KEY=API_KEY,
        SPOTIFY_CLIENT_ID=CLIENT_ID,
        SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
        SETLISTFM_API_KEY=SETLISTFM_KEY,
        ADMIN_TOKEN="a" * 24,
        CRON_SECRET="c" * 24,
        COLUMNS="200",
    )
    env.update(overrides)
    return env


async def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "setlist.cli", "check"]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=60
    )


async def test_a_ready_environment_passes(
    fake_base: str, redis_server: RedisServer, database_url: str
) -> None:
    done = await _check(_environment(fake_base, redis_server.url, database_url))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fail" not in done.stdout.replace("0 failed", "")
    for what in ("Redis", "database", "migrations", "Ticketmaster", "Spotify", "setlist.fm", "ADMIN_TOKEN"):
        assert f"ok    {what}" in done.stdout, what


async def test_each_problem_is_named_and_fails_the_check(
    fake_base: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    unmigrated = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    env = _environment(
        fake_base,
        f"redis://127.0.0.1:{free_port()}/0",  # nobody listens
        unmigrated,
        TICKETMASTER_API_KEY="wrong",
        SETLIST_SETLISTFM_URL=f"http://127.0.0.1:{free_port()}/rest/1.0",
    )
    done = await _check(env)
    assert done.returncode == 1
    failed = {line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.startswith("fail")}
    assert failed == {"Redis", "migrations", "Ticketmaster", "setlist.fm"}, done.stdout
    assert "wrong" not in done.stdout  # no key is printed
    assert "4 failed" in done.stdout


async def test_bad_settings_are_named_without_a_traceback(
    fake_base: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    env = _environment(
        fake_base, redis_server.url, database, SETLIST_TICKETMASTER_RATE="0", QUEUE_JOB_TIMEOUT="soon"
    )
    done = await _check(env)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    failed = [line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.startswith("fail")]
    assert sorted(failed) == ["SETLIST_QUEUE_JOB_TIMEOUT", "SETLIST_TICKETMASTER_RATE"], done.stdout
    env = _environment(fake_base, redis_server.url, database, QUEUE_CONCURRENCY_IMPORTS="5")
    done = await _check(env)
    assert done.returncode == 1 and "no queue named IMPORTS" in " ".join(done.stdout.split())


def test_unset_variables_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    on_fake = {f.what: f.level for f in variable_findings(Settings())}
    assert on_fake["TICKETMASTER_API_KEY"] == "warn" and on_fake["ADMIN_TOKEN"] == "warn"
    monkeypatch.setenv("SETLIST_TICKETMASTER_URL", "https://app.ticketmaster.com/discovery/v2")
    real = {f.what: f.level for f in variable_findings(Settings())}
    assert real["TICKETMASTER_API_KEY"] == "fail"  # the real API without a key
    monkeypatch.setenv("CRON_SECRET", "short")
    assert {f.what: f for f in variable_findings(Settings())}["CRON_SECRET"].level == "warn"


async def test_the_database_check_reads_the_migration(database_url: str) -> None:
    found = {f.what: f for f in await database_findings(database_url)}
    assert found["migrations"].level == "ok" and found["migrations"].detail.startswith("at the latest")


async def test_refused_spotify_credentials_fail(fake_base: str) -> None:
    settings = Settings.for_fake(fake_base, spotify_client_secret="nope")
    found = {f.what: f for f in await upstream_findings(settings)}
    assert found["Spotify"].level == "fail" and found["Ticketmaster"].level == "ok"
