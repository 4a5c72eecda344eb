"""The import pipeline end to end on the fake upstreams, on SQLite and
PostgreSQL: completeness, catalog purity, idempotency, both Spotify
profiles, and upstream faults."""

from __future__ import annotations

from typing import Any

import pytest
from setlist_env import Env
from sqlalchemy import func, select

from conveyor import JobState
from setlist.catalog import is_live_album, is_live_title, normalize_title
from setlist.fake.server import FakeConfig, Fault
from setlist.models import Artist, ArtistSong, ImportStatus, Setlist, Show, Song, Venue
from setlist.progress import subject


async def table_counts(env: Env) -> dict[str, int]:
    async with env.services.store.sessions() as session:
        return {
            model.__tablename__: int(
                (await session.execute(select(func.count()).select_from(model))).scalar_one()
            )
            for model in (Artist, Venue, Show, Song, ArtistSong, Setlist, ImportStatus)
        }


async def stored_songs(env: Env, artist_id: str) -> list[Song]:
    return await env.services.store.songs(artist_id, limit=10_000)


def configure(env: Env, **config: Any) -> None:
    env.upstream.state.config = FakeConfig(**config)


async def test_the_prolific_artist_is_imported_whole_and_pure(env: Env) -> None:
    fake = env.upstream.artist("prolific")
    artist_id = await env.import_artist("prolific")

    artist = await env.services.store.artist(artist_id)
    assert artist is not None
    assert (artist.name, artist.slug, artist.import_status) == (fake.name, "neon-harbor", "complete")
    assert artist.spotify_id == fake.spotify_id and artist.mbid == fake.mbid
    assert artist.catalog_degraded is False
    # completeness: every show of the > 1,200 events, add-ons left out
    counts = await env.services.store.counts(artist_id)
    assert len(fake.events) > 1200
    assert counts.shows == len(fake.shows)
    async with env.services.store.sessions() as session:
        stored_ids = set((await session.execute(select(Show.tm_event_id))).scalars())
        statuses = set((await session.execute(select(Show.status))).scalars())
    assert stored_ids == {e.id for e in fake.shows}
    assert {"cancelled", "postponed", "rescheduled"} <= statuses
    assert counts.venues == len({e.venue.id for e in fake.shows})
    # purity: no live track, studio songs with "live" in the title kept,
    # one row per ISRC, remasters and editions merged into one song
    songs = await stored_songs(env, artist_id)
    assert not [s.name for s in songs if is_live_title(s.name) or is_live_album(s.album_name or "")]
    assert {normalize_title(s.name) for s in songs} == {normalize_title(t) for t in fake.studio_songs}
    assert len(songs) == len(fake.studio_songs)
    assert "Live Forever" in {s.name for s in songs}
    isrcs = [s.isrc for s in songs if s.isrc]
    assert len(isrcs) == len(set(isrcs))
    # the wrap-up: setlists pre-seeded and matched to shows; status persisted
    assert counts.setlists > 0
    status = await env.services.store.status(artist_id)
    assert status is not None and (status.stage, status.progress) == ("completed", 100)
    bus = await env.app.progress.get(subject(artist_id))
    assert bus is not None and bus.finished and bus.extra["shows"] == len(fake.shows)


async def test_importing_again_changes_no_row_count(env: Env) -> None:
    artist_id = await env.import_artist("midsize")
    first = await table_counts(env)
    again = await env.import_artist("midsize")
    assert again == artist_id
    assert await table_counts(env) == first
    assert first["shows"] == len(env.upstream.artist("midsize").shows) > 200


async def test_the_development_profile_imports_a_degraded_catalog(env: Env) -> None:
    configure(env, spotify_profile="development")
    fake = env.upstream.artist("midsize")
    artist_id = await env.import_artist("midsize")

    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.import_status == "complete" and artist.catalog_degraded
    assert artist.popularity is None
    songs = await stored_songs(env, artist_id)
    assert {normalize_title(s.name) for s in songs} == {normalize_title(t) for t in fake.studio_songs}
    assert all(s.popularity is None for s in songs)
    status = await env.app.progress.get(subject(artist_id))
    assert status is not None and status.extra["degraded"] is True


async def test_an_artist_without_links_is_found_by_name_and_has_no_shows(env: Env) -> None:
    artist_id = await env.import_artist("sparse")
    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.import_status == "complete"
    assert artist.spotify_id == env.upstream.artist("sparse").spotify_id
    counts = await env.services.store.counts(artist_id)
    assert (counts.shows, counts.songs, counts.setlists) == (0, 2, 0)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(service="ticketmaster", route="/events.json", kind="server_error", after=2, times=2),
        Fault(service="ticketmaster", route="/events.json", kind="spike", after=2, times=3),
        Fault(service="spotify", route="/albums/{id}/tracks", kind="token_expired", after=4),
        Fault(service="spotify", route="/tracks", kind="retry_after", after=2, retry_after=0.2),
        Fault(service="setlistfm", kind="no_header", times=2),
    ],
    ids=lambda f: f"{f.service}-{f.kind}",
)
async def test_imports_ride_out_transient_upstream_faults(env: Env, fault: Fault) -> None:
    configure(env, faults=[fault])
    artist_id = await env.import_artist("midsize")
    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.import_status == "complete"
    assert (await env.services.store.counts(artist_id)).shows == len(env.upstream.artist("midsize").shows)
    assert env.upstream.state.config.faults[0].seen >= fault.after


async def test_a_long_retry_after_puts_the_job_back_instead_of_sleeping(env: Env) -> None:
    configure(
        env,
        faults=[Fault(service="spotify", route="/artists/{id}/albums", kind="retry_after", retry_after=3)],
    )
    artist_id = await env.import_artist("midsize")
    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.import_status == "complete"
    catalog = [j for j in await env.app.queues["spotify-catalog"].queue.get_jobs(JobState.COMPLETED)]
    assert len(catalog) == 1 and catalog[0].attempts_made <= 1  # the wait used no attempt


async def test_an_unknown_attraction_fails_with_a_persisted_reason(env: Env) -> None:
    started = await env.pipeline.start("K8vZ9999999")
    assert started is not None
    await env.app.run_worker(burst=True)
    artist = await env.services.store.artist(started[0])
    status = await env.services.store.status(started[0])
    assert artist is not None and artist.import_status == "failed"
    assert status is not None and status.stage == "failed"
    assert status.error == "identity: Ticketmaster knows no attraction K8vZ9999999"
    bus = await env.app.progress.get(subject(started[0]))
    assert bus is not None and bus.stage == "failed" and "K8vZ9999999" in bus.message


async def test_an_upstream_that_stays_down_fails_the_import_with_its_reason(env: Env) -> None:
    configure(
        env, faults=[Fault(service="spotify", route="/artists/{id}/albums", kind="server_error", times=1000)]
    )
    artist_id = await env.import_artist("sparse")
    artist = await env.services.store.artist(artist_id)
    status = await env.services.store.status(artist_id)
    assert artist is not None and artist.import_status == "failed"
    assert (
        status is not None
        and status.error is not None
        and status.error.startswith("catalog: spotify: HTTP 5")
    )
    wrap = await env.app.queues["artist-import"].queue.get_jobs(JobState.FAILED)
    assert [j.name for j in wrap] == ["wrap_up"]
