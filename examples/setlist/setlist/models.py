"""The data model (SQLAlchemy 2): artists, venues, shows, songs and the
artist-song link, import status, setlists and votes.

Every row an import writes has a unique upstream id (``tm_attraction_id``,
``tm_venue_id``, ``tm_event_id``, ``spotify_id``, ``setlistfm_id``), so the
import upserts on it and running it again changes no row count.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conveyor.archive import archive_tables


def _id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[str]: JSON}


class Stamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, server_default=func.now())


class Artist(Stamped, Base):
    __tablename__ = "artists"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    name: Mapped[str] = mapped_column(String(300))
    slug: Mapped[str] = mapped_column(String(320), unique=True)
    tm_attraction_id: Mapped[str] = mapped_column(String(40), unique=True)
    spotify_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    mbid: Mapped[str | None] = mapped_column(String(40))
    image_url: Mapped[str | None] = mapped_column(Text)
    genres: Mapped[list[str]] = mapped_column(default=list)
    popularity: Mapped[int | None] = mapped_column(Integer)  # absent in Spotify's development mode
    followers: Mapped[int | None] = mapped_column(Integer)
    upcoming_events: Mapped[int] = mapped_column(Integer, default=0)
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    trending_score: Mapped[float] = mapped_column(Float, default=0.0)
    import_status: Mapped[str] = mapped_column(String(20), default="pending")
    catalog_degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    shows_synced_at: Mapped[datetime | None]
    catalog_synced_at: Mapped[datetime | None]

    # one artist per attraction, however its id is written
    __table_args__ = (Index("uq_artists_tm_attraction_lower", func.lower(tm_attraction_id), unique=True),)


class Venue(Stamped, Base):
    __tablename__ = "venues"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    tm_venue_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(200))
    state_code: Mapped[str | None] = mapped_column(String(10))
    country_code: Mapped[str | None] = mapped_column(String(4))
    timezone: Mapped[str | None] = mapped_column(String(64))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(300))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    #: Filled by the venue sync (``venue-sync``), which also stamps ``synced_at``.
    upcoming_events: Mapped[int | None] = mapped_column(Integer)
    synced_at: Mapped[datetime | None]


class ArtistImage(Base):
    """A resized variant of an artist's image (``image-processing``)."""

    __tablename__ = "artist_images"

    artist_id: Mapped[str] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"), primary_key=True)
    size: Mapped[str] = mapped_column(String(10), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    source_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class Webhook(Base):
    """A URL that import events are delivered to, signed with ``secret``
    (the ``webhook`` queue)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    #: The events it receives: ``import.completed``, ``import.failed``, ``import.progress``.
    events: Mapped[list[str]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class Show(Stamped, Base):
    __tablename__ = "shows"
    __table_args__ = (Index("ix_shows_artist_date", "artist_id", "local_date"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    tm_event_id: Mapped[str] = mapped_column(String(40), unique=True)
    artist_id: Mapped[str] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"))
    venue_id: Mapped[str | None] = mapped_column(ForeignKey("venues.id"))
    name: Mapped[str] = mapped_column(String(300))
    local_date: Mapped[date | None] = mapped_column(Date)  # None for a date still to be announced
    local_time: Mapped[str | None] = mapped_column(String(8))
    starts_at: Mapped[datetime | None]
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="onsale")
    url: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    setlist_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    view_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Song(Stamped, Base):
    __tablename__ = "songs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    spotify_id: Mapped[str] = mapped_column(String(40), unique=True)
    isrc: Mapped[str | None] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(400))
    normalized_title: Mapped[str] = mapped_column(String(400), index=True)
    album_name: Mapped[str | None] = mapped_column(String(400))
    album_type: Mapped[str | None] = mapped_column(String(20))
    release_date: Mapped[str | None] = mapped_column(String(10))
    popularity: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    #: Always false here: live tracks are left out of the catalog (the seed's field).
    is_live: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_remix: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("idx_song_pop", "popularity"),)


class ArtistSong(Base):
    __tablename__ = "artist_songs"

    artist_id: Mapped[str] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"), primary_key=True)
    song_id: Mapped[str] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"), primary_key=True)


class ImportStatus(Base):
    """The persisted progress of an artist's import (the polling fallback)."""

    __tablename__ = "import_status"

    artist_id: Mapped[str] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(30))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Setlist(Stamped, Base):
    __tablename__ = "setlists"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    setlistfm_id: Mapped[str] = mapped_column(String(20), unique=True)
    version_id: Mapped[str] = mapped_column(String(20))
    artist_id: Mapped[str] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"), index=True)
    show_id: Mapped[str | None] = mapped_column(ForeignKey("shows.id"))
    event_date: Mapped[date] = mapped_column(Date)
    venue_name: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(200))
    songs: Mapped[list[str]] = mapped_column(default=list)


class Vote(Base):
    """One visitor's vote on one song of a show's setlist: up (1) or down
    (-1); taking a vote back deletes it. Written from the live tally in
    Redis by the ``persist_votes`` job (see ``votes``)."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("show_id", "song_id", "voter", name="uq_votes_once"),
        Index("idx_votes_created", "created_at"),
        Index("idx_votes_song", "song_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    show_id: Mapped[str] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"), index=True)
    song_id: Mapped[str] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"))
    voter: Mapped[str] = mapped_column(String(100))
    value: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the vote last changed direction (None: never).
    updated_at: Mapped[datetime | None]


class SyncJob(Base):
    """One import or resync of an artist (seed 002's ``sync_jobs``); its id
    is the job id of its first job."""

    __tablename__ = "sync_jobs"
    __table_args__ = (
        Index("idx_sync_jobs_artist_created", "artist_id", "created_at"),
        Index("idx_sync_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    artist_id: Mapped[str] = mapped_column(ForeignKey("artists.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # import | resync
    status: Mapped[str] = mapped_column(String(20))  # queued | running | completed | failed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class SyncProgress(Base):
    """One phase of a sync job (seed 002's ``sync_progress``)."""

    __tablename__ = "sync_progress"

    sync_job_id: Mapped[str] = mapped_column(ForeignKey("sync_jobs.id", ondelete="CASCADE"), primary_key=True)
    phase: Mapped[str] = mapped_column(String(20), primary_key=True)  # identity | shows | catalog | wrap-up
    status: Mapped[str] = mapped_column(String(20))  # running | retrying | waiting | completed | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class SystemHealth(Base):
    """A snapshot of Redis, the database, the queues and the workers (seed
    002's ``system_health``), taken every 5 minutes."""

    __tablename__ = "system_health"
    __table_args__ = (Index("idx_system_health_checked", "checked_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_id)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20))  # healthy | degraded | unhealthy
    redis_ok: Mapped[bool] = mapped_column(Boolean)
    redis_used_memory: Mapped[int | None] = mapped_column(BigInteger)
    database_ok: Mapped[bool] = mapped_column(Boolean)
    workers: Mapped[int] = mapped_column(Integer, default=0)
    queues: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


#: Seed 002's ``queue_jobs``, ``cron_logs`` and ``cron_metrics`` (and the
#: archive's cursors): Conveyor's archive of finished jobs writes them.
ARCHIVE = archive_tables(Base.metadata)
