"""A worker process killed with SIGKILL in the middle of an import: the
import still completes (another worker takes the jobs over when their
locks run out), with every row once; running the import again changes no
row count."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from setlist_env import FAST, Env
from test_import import table_counts

from conveyor.testing import RedisServer, serving
from setlist.fake.server import FakeConfig, FakeState, create_fake
from setlist.progress import subject


def start_worker(redis_url: str, database_url: str, fake_base: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SETLIST_TICKETMASTER_URL": f"{fake_base}/ticketmaster/discovery/v2",
        "SETLIST_SPOTIFY_URL": f"{fake_base}/spotify-api/v1",
        "SETLIST_SPOTIFY_ACCOUNTS_URL": f"{fake_base}/spotify-accounts",
        "SETLIST_SETLISTFM_URL": f"{fake_base}/setlistfm/rest/1.0",
        "SETLIST_LOCK_DURATION": "1",
        **{f"SETLIST_{k.upper()}": str(v) for k, v in FAST.items()},
    }
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "setlist.cli", "worker", "--no-scheduler"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_worker_killed_mid_import_loses_nothing_and_duplicates_nothing(
    env: Env, redis_server: RedisServer, database_url: str, tmp_path: Path
) -> None:
    fake = env.upstream.artist("prolific")
    state = FakeState(env.upstream.state.artists, FakeConfig(latency_ms=15))
    async with serving(create_fake(state)) as fake_base:
        started = await env.pipeline.start(fake.attraction_id)
        assert started is not None
        artist_id = started[0]
        first = start_worker(redis_server.url, database_url, fake_base, tmp_path / "workers.log")
        second = None
        try:
            async with asyncio.timeout(60):
                async for status in env.app.progress.subscribe(subject(artist_id)):
                    if status.stage == "importing-shows" and status.extra.get("shows_done", 0) > 0.2:
                        break
            first.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.wait, 5) == -signal.SIGKILL
            second = start_worker(redis_server.url, database_url, fake_base, tmp_path / "workers.log")
            async with asyncio.timeout(60):
                async for status in env.app.progress.subscribe(subject(artist_id)):
                    if status.finished:
                        break
            assert status.stage == "completed", (tmp_path / "workers.log").read_text()
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    # waited off the loop: the fake it may be calling serves on this loop
                    await asyncio.to_thread(process.wait, 15)
    counts = await env.services.store.counts(artist_id)
    assert counts.shows == len(fake.shows)
    assert counts.songs == len(fake.studio_songs)
    before = await table_counts(env)
    await env.import_artist("prolific")
    assert await table_counts(env) == before
