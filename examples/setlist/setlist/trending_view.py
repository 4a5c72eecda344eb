"""Seed 002's ``refresh_trending_data()``: the ``trending_artists``
leaderboard, every imported artist with its trending score and rank, its
upcoming shows, its votes of the last seven days and its page views.

On PostgreSQL it is a materialized view and ``refresh_trending_data()`` a
database function refreshing it concurrently (readers are never blocked);
on SQLite, which has neither, it is a table that :func:`refresh` rewrites
in one transaction from the same query. Both are made by Alembic 0008 and
refreshed after each trending run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from setlist.models import Artist, Show, Vote

NAME = "trending_artists"
#: Votes this recent count as ``recent_votes`` (the trending formula's weekly window).
RECENT = timedelta(days=7)

#: The leaderboard's columns, for reading it (kept out of the models'
#: metadata: on PostgreSQL it is a view, which the migrations manage).
VIEW = Table(
    NAME,
    MetaData(),
    Column("artist_id", String(36), primary_key=True),
    Column("name", String(300)),
    Column("slug", String(320)),
    Column("trending_score", Float),
    Column("rank", Integer),
    Column("upcoming_shows", Integer),
    Column("recent_votes", Integer),
    Column("views", Integer),
    Column("refreshed_at", DateTime(timezone=True)),
)


def is_view_object(name: str | None, kind: str) -> bool:
    """Whether Alembic's comparison should skip this object (the leaderboard
    and its index are not in the models' metadata)."""
    return name == NAME or (kind == "index" and bool(name) and str(name).startswith("idx_trending_artists"))


def leaderboard(now: datetime) -> Any:
    """The leaderboard's rows as of ``now``: what the PostgreSQL view
    selects (Alembic 0008 holds that query as SQL)."""
    upcoming = (
        select(func.count())
        .where(Show.artist_id == Artist.id, Show.local_date >= now.date(), Show.status != "cancelled")
        .scalar_subquery()
    )
    recent = (
        select(func.count())
        .select_from(Vote)
        .join(Show, Show.id == Vote.show_id)
        .where(Show.artist_id == Artist.id, Vote.created_at >= now - RECENT)
        .scalar_subquery()
    )
    return select(
        Artist.id,
        Artist.name,
        Artist.slug,
        Artist.trending_score,
        func.row_number().over(order_by=(Artist.trending_score.desc(), Artist.id)),
        upcoming,
        recent,
        Artist.view_count,
        literal(now, DateTime(timezone=True)),
    ).where(Artist.import_status == "complete")


async def refresh(sessions: async_sessionmaker[AsyncSession], now: datetime | None = None) -> int:
    """``refresh_trending_data()``: the leaderboard recomputed. Returns its rows."""
    async with sessions.begin() as session:
        dialect = (await session.connection()).dialect.name
        if dialect == "postgresql":
            await session.execute(text("SELECT refresh_trending_data()"))
        else:
            await session.execute(delete(VIEW))
            await session.execute(
                insert(VIEW).from_select(list(VIEW.c), leaderboard(now or datetime.now(UTC)))
            )
        return int(await session.scalar(select(func.count()).select_from(VIEW)) or 0)


async def read(
    sessions: async_sessionmaker[AsyncSession], artist_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The leaderboard's row of each of ``artist_ids`` that has one."""
    if not artist_ids:
        return {}
    async with sessions() as session:
        rows = (await session.execute(select(VIEW).where(VIEW.c.artist_id.in_(artist_ids)))).mappings().all()
    return {row["artist_id"]: dict(row) for row in rows}
