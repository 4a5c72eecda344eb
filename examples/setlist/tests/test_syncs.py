"""The syncs that keep imported artists fresh, each on its seed queue: the
quick sync a user asks for, the Spotify profile, venue details and the
setlists of recent shows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from setlist_env import Env
from sqlalchemy import select, update

from conveyor import JobState
from setlist.models import Show, SyncJob, Venue
from setlist.queues import QueueName


async def finished(env: Env, queue: QueueName, job_id: str) -> object:
    """Works ``queue`` until it is empty; the job's result."""
    await env.app.run_worker([queue.value], burst=True)
    done = await env.app.queues[queue].queue.get_job(job_id)
    assert done is not None and done.state is JobState.COMPLETED, (done.state, done.error, done.attempts_made)
    return done.result


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_quick_sync_refreshes_an_imported_artists_shows_once_at_a_time(
    env: Env, admin: httpx.AsyncClient
) -> None:
    assert (await admin.post("/api/artists/nobody/quick-sync")).status_code == 404
    pending, _, _ = await env.pipeline.start(env.upstream.artist("midsize").attraction_id)
    refused = await admin.post(f"/api/artists/{pending}/quick-sync")
    assert refused.status_code == 409 and "import it first" in refused.json()["detail"]

    artist_id = await env.import_artist("sparse")
    first = await admin.post(f"/api/artists/{artist_id}/quick-sync")
    again = await admin.post(f"/api/artists/{artist_id}/quick-sync")
    assert first.status_code == again.status_code == 202
    assert again.json()["jobId"] == first.json()["jobId"]  # still queued: not doubled
    queue = env.app.queues[QueueName.ARTIST_QUICK_SYNC].queue
    job = await queue.get_job(first.json()["jobId"])
    assert job is not None and job.priority == 100  # HIGH, ahead of the scheduled resyncs
    assert await finished(env, QueueName.ARTIST_QUICK_SYNC, job.id) == {
        "shows": 0,
        "add_ons_skipped": 0,
        "requests": 1,
    }
    async with env.services.store.sessions() as session:
        kinds = set((await session.scalars(select(SyncJob.kind).where(SyncJob.artist_id == artist_id))).all())
    assert kinds == {"import", "quick-sync"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_spotify_sync_refreshes_the_profile_and_takes_a_missing_picture(env: Env) -> None:
    artist_id = await env.import_artist("midsize")
    store = env.services.store
    await store.update_artist(artist_id, followers=1, image_url=None)
    job = await env.pipeline.syncs.sync_spotify.enqueue(artist_id)
    assert await finished(env, QueueName.SPOTIFY_SYNC, job.id) == {"followers": 380_000, "picture": True}
    artist = await store.artist(artist_id)
    assert artist is not None and artist.image_url == "http://fake/images/spotify/midsize.jpg"
    # the new picture is processed in place of the old one
    await env.app.run_worker([QueueName.IMAGE_PROCESSING.value], burst=True)
    assert await env.pipeline.upkeep.images.source(artist_id) == artist.image_url


async def test_the_venue_sync_refreshes_each_venue_once_a_week(env: Env) -> None:
    await env.import_artist("midsize")
    store = env.services.store
    async with store.sessions.begin() as session:
        count = len((await session.scalars(select(Venue.id))).all())
        session.add(Venue(tm_venue_id="KovZgone0001", name="Closed Hall"))  # Ticketmaster forgot it
    syncs = env.pipeline.syncs
    job = await syncs.sync_venues.enqueue()
    assert await finished(env, QueueName.VENUE_SYNC, job.id) == {"queued": count + 1}

    async with store.sessions() as session:
        venues = {v.tm_venue_id: v for v in (await session.scalars(select(Venue))).all()}
    assert all(v.synced_at is not None for v in venues.values())
    known = [v for k, v in venues.items() if k != "KovZgone0001"]
    assert {(v.address, v.upcoming_events) for v in known} == {("1 Main St", 12)}
    assert venues["KovZgone0001"].name == "Closed Hall"  # kept, stamped so it is not asked daily

    # all fresh: the next run queues none; a week on, all again
    again = await syncs.sync_venues.enqueue()
    assert await finished(env, QueueName.VENUE_SYNC, again.id) == {"queued": 0}
    week_ago = datetime.now(UTC) - timedelta(days=8)
    async with store.sessions.begin() as session:
        await session.execute(update(Venue).values(synced_at=week_ago))
        await session.execute(
            update(Venue)
            .where(Venue.tm_venue_id == "KovZgone0001")
            .values(synced_at=week_ago - timedelta(days=1))
        )
    assert len(await syncs.stale_venue_ids(limit=1000)) == count + 1
    assert await syncs.stale_venue_ids(limit=1) == ["KovZgone0001"]  # the oldest first


async def test_the_setlist_sync_fetches_setlists_of_recent_shows(env: Env) -> None:
    artist_id = await env.import_artist("midsize")
    store = env.services.store
    played = datetime.now(UTC).date() - timedelta(days=3)
    shared = env.upstream.artist("midsize")  # the fixtures are shared by the tests: change a copy
    fake = dataclasses.replace(shared, setlists=[dataclasses.replace(shared.setlists[0], event_date=played)])
    env.upstream.state.by_mbid[fake.mbid] = fake
    async with store.sessions.begin() as session:
        show = (await session.scalars(select(Show).where(Show.artist_id == artist_id).limit(1))).one()
        show.local_date, show.setlist_ready = played, False
        show_id = show.id
    syncs = env.pipeline.syncs
    assert await syncs.artists_awaiting_setlists() == [artist_id]

    due = await syncs.setlists_due.enqueue()
    assert await finished(env, QueueName.SETLIST_SYNC, due.id) == {"queued": 1}
    async with store.sessions() as session:
        ready = await session.get(Show, show_id)
    assert ready is not None and ready.setlist_ready
    assert await syncs.artists_awaiting_setlists() == []
