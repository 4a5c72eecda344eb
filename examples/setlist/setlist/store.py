"""Writes of the import, each an upsert on an upstream id, so running an
import again (or a job re-run after a crash) changes no row count. The
same statements run on SQLite and PostgreSQL (both have ``INSERT ... ON
CONFLICT``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from setlist.catalog import Track, is_remix, normalize_title
from setlist.ingest import slugify
from setlist.models import Artist, ArtistSong, ImportStatus, Setlist, Show, Song, Venue, utcnow

#: Rows per INSERT: keeps SQLite under its bound-parameter limit.
CHUNK = 200


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def upsert(
    session: AsyncSession,
    model: type[Any],
    rows: Sequence[dict[str, Any]],
    key: str,
    *,
    keep: Iterable[str] = ("id", "created_at"),
) -> None:
    """Inserts ``rows``, or updates the row with the same ``key`` (every
    column but ``keep``)."""
    if not rows:
        return
    kept = {key, *keep}
    for i in range(0, len(rows), CHUNK):
        chunk = [{"id": str(uuid.uuid4()), **row} for row in rows[i : i + CHUNK]]
        stmt = _insert(session, model).values(chunk)
        columns = {c for c in chunk[0] if c not in kept}
        changes = {c: stmt.excluded[c] for c in columns}
        if hasattr(model, "updated_at"):
            changes["updated_at"] = utcnow()
        await session.execute(stmt.on_conflict_do_update(index_elements=[key], set_=changes))


async def insert_missing(session: AsyncSession, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Inserts the rows whose primary key is not there yet."""
    for i in range(0, len(rows), CHUNK):
        await session.execute(_insert(session, model).values(rows[i : i + CHUNK]).on_conflict_do_nothing())


@dataclass(frozen=True, slots=True)
class Counts:
    shows: int
    venues: int
    songs: int
    setlists: int


def _status_row(
    artist_id: str,
    stage: str,
    progress: int,
    message: str,
    *,
    error: str | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    return {
        "artist_id": artist_id,
        "stage": stage,
        "progress": progress,
        "message": message,
        "error": error,
        "job_id": job_id,
        "updated_at": utcnow(),
    }


async def _put_status(session: AsyncSession, row: dict[str, Any]) -> None:
    stmt = _insert(session, ImportStatus).values(row)
    changes = {k: v for k, v in row.items() if k != "artist_id"}
    await session.execute(stmt.on_conflict_do_update(index_elements=["artist_id"], set_=changes))


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Store:
    """The app's reads and writes, on one session factory."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # -- artists -----------------------------------------------------------

    async def start_import(self, tm_attraction_id: str, *, stuck_after: timedelta) -> tuple[Artist, bool]:
        """Phase 1, in one transaction: the artist for an attraction (created
        at once as a placeholder when new; the one of the same id in other
        letters when there is one), marked in progress with a queued
        status. An import already running (its status moved within
        ``stuck_after``) is left alone. Returns the artist and whether this
        call started an import."""
        try:
            return await self._start_import(tm_attraction_id, stuck_after)
        except IntegrityError:  # the same new attraction, in other letters, added at the same moment
            return await self._start_import(tm_attraction_id, stuck_after)

    async def _start_import(self, tm_attraction_id: str, stuck_after: timedelta) -> tuple[Artist, bool]:
        async with self.sessions.begin() as session:
            artist = await _artist_by_attraction(session, tm_attraction_id)
            if artist is None:
                await upsert(
                    session,
                    Artist,
                    [
                        {
                            "tm_attraction_id": tm_attraction_id,
                            "name": "Loading…",
                            "slug": f"tm-{tm_attraction_id.lower()}",
                            "genres": [],
                            "import_status": "pending",
                        }
                    ],
                    "tm_attraction_id",
                    keep=("id", "created_at", "name", "slug", "genres", "import_status"),
                )
                artist = await _artist_by_attraction(session, tm_attraction_id)
                assert artist is not None
            elif artist.tm_attraction_id != tm_attraction_id and artist.import_status != "complete":
                # the same id in other letters, never imported as first written: try this spelling
                artist.tm_attraction_id = tm_attraction_id
            if artist.import_status == "in_progress":
                status = await session.get(ImportStatus, artist.id)
                if status is None or _aware(status.updated_at) > utcnow() - stuck_after:
                    return artist, False
            artist.import_status = "in_progress"
            await _put_status(session, _status_row(artist.id, "initializing", 0, "Import queued"))
            return artist, True

    async def artist(self, key: str) -> Artist | None:
        """An artist by id, slug, or ``tm-<attraction id>`` (the slug that
        phase 1 hands out before the name is known)."""
        async with self.sessions() as session:
            found = (
                await session.execute(select(Artist).where((Artist.id == key) | (Artist.slug == key)))
            ).scalar_one_or_none()
            if found is None and key.startswith("tm-"):
                found = await _artist_by_attraction(session, key[3:], lock=False)
            return found

    async def set_identity(self, artist_id: str, **fields: Any) -> Artist:
        """Sets the artist's identity fields; a new name gets a unique slug."""
        async with self.sessions.begin() as session:
            artist = await session.get(Artist, artist_id)
            if artist is None:
                raise LookupError(f"no artist {artist_id}")
            name = fields.get("name")
            if name and (artist.slug.startswith("tm-") or artist.name != name):
                artist.slug = await self._free_slug(session, name, artist_id)
            for column, value in fields.items():
                setattr(artist, column, value)
            return artist

    async def _free_slug(self, session: AsyncSession, name: str, artist_id: str) -> str:
        base = slugify(name)[:300]
        taken = set(
            (
                await session.execute(
                    select(Artist.slug).where(Artist.slug.like(f"{base}%"), Artist.id != artist_id)
                )
            ).scalars()
        )
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        return slug

    async def count_view(self, artist_id: str, show_id: str | None = None) -> None:
        """One more page view of the artist (an input of the trending
        score), and of its show when the page is a show's."""
        async with self.sessions.begin() as session:
            query = update(Artist).where(Artist.id == artist_id)
            await session.execute(query.values(view_count=Artist.view_count + 1))
            if show_id is not None:
                shown = update(Show).where(Show.id == show_id)
                await session.execute(shown.values(view_count=Show.view_count + 1))

    async def update_artist(self, artist_id: str, **fields: Any) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(Artist).where(Artist.id == artist_id).values(**fields))

    # -- shows and venues --------------------------------------------------

    async def save_shows(
        self, artist_id: str, shows: Sequence[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> None:
        """Upserts a page of shows and their venues (each venue once)."""
        venues = {v["tm_venue_id"]: v for _, v in shows if v is not None}
        async with self.sessions.begin() as session:
            await upsert(session, Venue, list(venues.values()), "tm_venue_id")
            ids = dict(
                (
                    await session.execute(
                        select(Venue.tm_venue_id, Venue.id).where(Venue.tm_venue_id.in_(list(venues)))
                    )
                ).all()
            )
            rows = [
                {**show, "artist_id": artist_id, "venue_id": ids.get(venue["tm_venue_id"]) if venue else None}
                for show, venue in shows
            ]
            await upsert(session, Show, rows, "tm_event_id", keep=("id", "created_at", "setlist_ready"))

    # -- catalog -------------------------------------------------------------

    async def save_catalog(self, artist_id: str, tracks: Sequence[Track]) -> None:
        """Makes the artist's songs exactly ``tracks`` (one per song, already
        deduplicated): upserts them, links them, unlinks the rest."""
        rows = [
            {
                "spotify_id": t.spotify_id,
                "isrc": t.isrc.upper() if t.isrc else None,
                "name": t.name[:400],
                "normalized_title": normalize_title(t.name)[:400],
                "album_name": t.album_name[:400],
                "album_type": t.album_type,
                "release_date": t.release_date[:10] or None,
                "popularity": t.popularity,
                "duration_ms": t.duration_ms,
                "is_remix": is_remix(t.name),
            }
            for t in tracks
        ]
        async with self.sessions.begin() as session:
            await upsert(session, Song, rows, "spotify_id")
            wanted = [t.spotify_id for t in tracks]
            song_ids: list[str] = []
            for i in range(0, len(wanted), CHUNK):
                song_ids += (
                    await session.execute(select(Song.id).where(Song.spotify_id.in_(wanted[i : i + CHUNK])))
                ).scalars()
            links = ArtistSong.artist_id == artist_id
            await session.execute(delete(ArtistSong).where(links, ArtistSong.song_id.not_in(song_ids)))
            await insert_missing(
                session, ArtistSong, [{"artist_id": artist_id, "song_id": i} for i in song_ids]
            )

    # -- setlists ------------------------------------------------------------

    async def save_setlists(self, artist_id: str, setlists: Sequence[dict[str, Any]]) -> int:
        """Upserts setlists and links each to the artist's show on its date
        (marking that show's setlist ready). Returns how many matched a show."""
        if not setlists:
            return 0
        async with self.sessions.begin() as session:
            dates: set[date] = {s["event_date"] for s in setlists}
            shows = dict(
                (
                    await session.execute(
                        select(Show.local_date, Show.id).where(
                            Show.artist_id == artist_id, Show.local_date.in_(list(dates))
                        )
                    )
                ).all()
            )
            rows = [{**s, "artist_id": artist_id, "show_id": shows.get(s["event_date"])} for s in setlists]
            await upsert(session, Setlist, rows, "setlistfm_id")
            matched = [r["show_id"] for r in rows if r["show_id"]]
            if matched:
                await session.execute(update(Show).where(Show.id.in_(matched)).values(setlist_ready=True))
            return len(matched)

    # -- import status -------------------------------------------------------

    async def set_status(
        self,
        artist_id: str,
        stage: str,
        progress: int,
        message: str,
        *,
        error: str | None = None,
        job_id: str | None = None,
    ) -> None:
        row = _status_row(artist_id, stage, progress, message, error=error, job_id=job_id)
        async with self.sessions.begin() as session:
            await _put_status(session, row)

    async def status(self, artist_id: str) -> ImportStatus | None:
        async with self.sessions() as session:
            return await session.get(ImportStatus, artist_id)

    async def cleanup_statuses(self, older_than: timedelta) -> int:
        """Deletes finished import statuses not updated for ``older_than``."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(ImportStatus).where(
                    ImportStatus.updated_at < utcnow() - older_than,
                    ImportStatus.stage.in_(["completed", "failed"]),
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # -- reads ---------------------------------------------------------------

    async def counts(self, artist_id: str) -> Counts:
        async with self.sessions() as session:

            async def count(query: Select[Any]) -> int:
                return int((await session.execute(query)).scalar_one())

            return Counts(
                shows=await count(select(func.count()).select_from(Show).where(Show.artist_id == artist_id)),
                venues=await count(
                    select(func.count(func.distinct(Show.venue_id))).where(Show.artist_id == artist_id)
                ),
                songs=await count(
                    select(func.count()).select_from(ArtistSong).where(ArtistSong.artist_id == artist_id)
                ),
                setlists=await count(
                    select(func.count()).select_from(Setlist).where(Setlist.artist_id == artist_id)
                ),
            )

    async def shows(self, artist_id: str, *, limit: int = 50, upcoming_from: date | None = None) -> list[Any]:
        async with self.sessions() as session:
            query = (
                select(Show, Venue)
                .outerjoin(Venue, Show.venue_id == Venue.id)
                .where(Show.artist_id == artist_id)
                .order_by(Show.local_date.is_(None), Show.local_date, Show.tm_event_id)
                .limit(limit)
            )
            if upcoming_from is not None:
                query = query.where((Show.local_date >= upcoming_from) | Show.local_date.is_(None))
            return list((await session.execute(query)).all())

    async def songs(self, artist_id: str, *, limit: int = 500) -> list[Song]:
        """The artist's songs, most popular first; by title when popularity
        is absent (Spotify's development mode)."""
        async with self.sessions() as session:
            query = (
                select(Song)
                .join(ArtistSong, ArtistSong.song_id == Song.id)
                .where(ArtistSong.artist_id == artist_id)
                .order_by(Song.popularity.is_(None), Song.popularity.desc(), Song.normalized_title)
                .limit(limit)
            )
            return list((await session.execute(query)).scalars())

    async def artists(self, *, order: str = "trending", limit: int = 20) -> list[Artist]:
        async with self.sessions() as session:
            query = select(Artist).limit(limit)
            if order == "trending":
                query = query.where(Artist.import_status == "complete").order_by(
                    Artist.trending_score.desc(), Artist.name
                )
            else:
                query = query.order_by(Artist.name)
            return list((await session.execute(query)).scalars())

    async def artist_ids(
        self, *, status: str | None = None, synced_before: datetime | None = None
    ) -> list[str]:
        async with self.sessions() as session:
            query = select(Artist.id)
            if status is not None:
                query = query.where(Artist.import_status == status)
            if synced_before is not None:
                query = query.where(
                    (Artist.shows_synced_at.is_(None)) | (Artist.shows_synced_at < synced_before)
                )
            return list((await session.execute(query)).scalars())

    async def set_trending(self, scores: dict[str, float]) -> None:
        async with self.sessions.begin() as session:
            for artist_id, score in scores.items():
                query = update(Artist).where(Artist.id == artist_id)
                await session.execute(query.values(trending_score=score))


async def _artist_by_attraction(
    session: AsyncSession, attraction_id: str, *, lock: bool = True
) -> Artist | None:
    """The artist of an attraction id, in any letter case (a unique index
    keeps it to one), locked for the transaction unless ``lock`` is off."""
    query = select(Artist).where(func.lower(Artist.tm_attraction_id) == attraction_id.lower())
    return (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
