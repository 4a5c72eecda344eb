"""The scheduled upkeep: the 6-hourly shows resync of imported artists and
the weekly cleanup of old statuses and finished jobs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from setlist_env import Env
from sqlalchemy import update

from conveyor import JobState, Task
from setlist.api import create_api
from setlist.models import ImportStatus, Show
from setlist.queues import QUEUES


async def run(env: Env, task: Task[..., Any], *queues: str, **kwargs: Any) -> Any:
    """Runs one maintenance job (and the jobs it queues on ``queues``) and
    returns its result."""
    job = await task.enqueue(**kwargs)
    await env.app.run_worker([task.queue.name, *queues], burst=True)
    done = await env.app.queues[task.queue.name].queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED, done
    return done.result


async def stored_shows(env: Env, artist_id: str) -> dict[str, Show]:
    rows = await env.services.store.shows(artist_id, limit=10_000)
    return {show.tm_event_id: show for show, _ in rows}


async def test_the_resync_refreshes_the_shows_of_imported_artists_that_are_due(env: Env) -> None:
    store = env.services.store
    midsize, sparse = await env.import_artist("midsize"), await env.import_artist("sparse")
    prolific, _, _ = await env.pipeline.start(env.upstream.artist("prolific").attraction_id)
    resync = env.pipeline.syncs.resync_active
    # just imported: nothing is due yet
    assert await run(env, resync, "ticketmaster-sync") == {"queued": 0}

    # two hours on, upstream has a new show and a cancelled one
    for artist_id in (midsize, sparse):
        await store.update_artist(artist_id, shows_synced_at=datetime.now(UTC) - timedelta(hours=2))
    shared = env.upstream.artist("midsize")  # the fixtures are shared by the tests: change a copy
    fake = dataclasses.replace(shared, events=[dataclasses.replace(e) for e in shared.events])
    env.upstream.state.by_attraction[fake.attraction_id] = fake
    fake.events.append(dataclasses.replace(fake.events[0], id="vvNEWSHOW00000001", local_date="2027-03-01"))
    cancelled = next(e for e in fake.shows if e.status == "onsale")
    cancelled.status = "cancelled"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(env.pipeline)), base_url="http://setlist"
    ) as client:
        # cached (warmed after trending ran at the import's end)
        assert (await client.get(f"/api/artists/{midsize}")).headers["x-cache"] == "hit"

        assert await run(env, resync, "ticketmaster-sync") == {"queued": 2}

        shows = await stored_shows(env, midsize)
        assert len(shows) == len(fake.shows) and "vvNEWSHOW00000001" in shows
        assert shows[cancelled.id].status == "cancelled"
        page = await client.get(f"/api/artists/{midsize}")  # the resync dropped the cached page
        assert page.headers["x-cache"] == "miss" and page.json()["counts"]["shows"] == len(fake.shows)

    # the import still under way was left alone; a second run in the same
    # 6-hour slot adds no second resync
    assert await store.artist_ids(synced_before=datetime.now(UTC) - timedelta(minutes=5)) == [prolific]
    for artist_id in (midsize, sparse):
        await store.update_artist(artist_id, shows_synced_at=datetime.now(UTC) - timedelta(hours=2))
    assert await run(env, resync, "ticketmaster-sync") == {"queued": 2}
    jobs = await env.app.queues["ticketmaster-sync"].queue.get_jobs(JobState.COMPLETED)
    assert sorted(j.id for j in jobs if j.id.startswith("resync-")) == sorted(
        f"resync-{a}-{int(datetime.now(UTC).timestamp() // (6 * 3600))}" for a in (midsize, sparse)
    )
    assert len(await env.app.queues["artist-import"].queue.get_jobs(JobState.WAITING)) == 1


async def test_cleanup_drops_old_finished_statuses_and_finished_jobs(env: Env) -> None:
    store = env.services.store
    done = await env.import_artist("sparse")
    queued, _, _ = await env.pipeline.start(env.upstream.artist("midsize").attraction_id)
    async with store.sessions.begin() as session:
        month_ago = datetime.now(UTC) - timedelta(days=40)
        await session.execute(
            update(ImportStatus).where(ImportStatus.artist_id == done).values(updated_at=month_ago)
        )

    # a month on: the old finished status goes; the fresh jobs stay
    assert await run(env, env.pipeline.upkeep.cleanup, keep_days=30) == {"statuses": 1, "jobs": 0}
    assert await store.status(done) is None
    waiting = await store.status(queued)
    assert waiting is not None and waiting.stage == "initializing"
    artist = await store.artist(done)
    assert artist is not None and artist.import_status == "complete"  # the artist itself stays

    # keeping nothing: every finished job goes (the import's four, its eight
    # announcements of progress, the trending run, cache warming and picture
    # its end started, and the first cleanup), the queued import and the
    # unfinished status stay
    assert await run(env, env.pipeline.upkeep.cleanup, keep_days=0) == {"statuses": 0, "jobs": 16}
    assert await store.status(queued) is not None
    left = [j for name in QUEUES for j in await env.app.queues[name].queue.get_jobs(JobState.COMPLETED)]
    assert [(j.queue, j.data) for j in left] == [("cleanup", {"keep_days": 0})]  # itself, finished after
    assert len(await env.app.queues["artist-import"].queue.get_jobs(JobState.WAITING)) == 1
