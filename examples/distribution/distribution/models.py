"""The service's tables: connected social accounts, posts, schedules (one
publication of a post to some accounts, now or later) and dispatches (one
post to one account: the unit of work)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


class Connection(Base):
    """An account on a social network, with its OAuth tokens."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network: Mapped[str] = mapped_column(String(40))
    account: Mapped[str] = mapped_column(String(200))
    access_token: Mapped[str] = mapped_column(String(200))
    refresh_token: Mapped[str] = mapped_column(String(200))
    token_expires_at: Mapped[datetime]
    refreshed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Schedule(Base):
    """One publication of a post. ``status``: ``scheduled`` (waiting for its
    time), ``publishing``, then ``published`` (every dispatch sent),
    ``partial`` (some failed) or ``failed`` (all failed)."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    scheduled_for: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20))
    custom_message: Mapped[str | None] = mapped_column(Text)
    request_ai_assets: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Dispatch(Base):
    """A post to one account. ``status``: ``queued``, ``sending``, ``sent``
    (with the network's post id) or ``failed`` (with the error, once the
    job is in the dead-letter queue)."""

    __tablename__ = "dispatches"
    __table_args__ = (UniqueConstraint("schedule_id", "connection_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    external_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(200), index=True)
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
