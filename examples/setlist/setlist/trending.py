"""Trending, as seed 001 scores it, over a day, a week and a month:

    recent votes x 10 + upcoming shows x 5 + popularity x 2
    + min(followers / 10,000, 100) + page views x 3
    + 20 when active within 7 days (10 within 30)

- *recent votes*: votes on the artist's shows cast within the window;
- *upcoming shows*: its shows from today on, not cancelled;
- *popularity*: Spotify's, 0 to 100. Spotify no longer serves it (nor
  followers) to apps in Development Mode, so where it is absent
  Ticketmaster's count of the artist's upcoming events worldwide stands in
  for it (``upcomingEvents._total``, capped at 100), and absent followers
  count 0;
- *page views*: of the artist's page and its shows' pages;
- *active*: its shows or catalog synced, or its row changed.

Each window's scores and ranks are cached (``trending:<window>``, and
``trending:artist:<id>:<window>`` as ``{score, rank}``); the weekly score
is the artist's ``trending_score``, the order of ``/api/trending``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from setlist.models import Artist, Show, Vote

#: Each window: its length, and how long its cached scores are kept.
WINDOWS: dict[str, tuple[timedelta, int]] = {
    "daily": (timedelta(days=1), 3600),
    "weekly": (timedelta(days=7), 6 * 3600),
    "monthly": (timedelta(days=30), 3 * 86400),
}
MAIN = "weekly"


@dataclass(frozen=True, slots=True)
class Signals:
    """What one artist's score is made of."""

    votes: dict[str, int]  # per window
    upcoming: int
    popularity: int | None
    upcoming_events: int
    followers: int | None
    views: int
    last_activity: datetime | None

    def score(self, window: str, now: datetime) -> float:
        popularity = self.popularity if self.popularity is not None else min(self.upcoming_events, 100)
        followers = min((self.followers or 0) / 10_000, 100)
        recency = 0
        if self.last_activity is not None:
            age = now - _aware(self.last_activity)
            recency = 20 if age <= timedelta(days=7) else 10 if age <= timedelta(days=30) else 0
        total = (
            self.votes.get(window, 0) * 10
            + self.upcoming * 5
            + popularity * 2
            + followers
            + self.views * 3
            + recency
        )
        return round(total, 2)


async def signals(sessions: async_sessionmaker[AsyncSession], now: datetime) -> dict[str, Signals]:
    """Every imported artist's signals."""
    today: date = now.date()
    async with sessions() as session:
        upcoming = (
            select(Show.artist_id, func.count().label("n"))
            .where(Show.local_date >= today, Show.status != "cancelled")
            .group_by(Show.artist_id)
            .subquery()
        )
        windows = [
            func.sum(case((Vote.created_at >= now - length, 1), else_=0)).label(name)
            for name, (length, _) in WINDOWS.items()
        ]
        recent = (
            select(Show.artist_id, *windows)
            .join(Vote, Vote.show_id == Show.id)
            .where(Vote.created_at >= now - max(length for length, _ in WINDOWS.values()))
            .group_by(Show.artist_id)
            .subquery()
        )
        query = (
            select(
                Artist,
                func.coalesce(upcoming.c.n, 0),
                *(func.coalesce(recent.c[name], 0) for name in WINDOWS),
            )
            .outerjoin(upcoming, upcoming.c.artist_id == Artist.id)
            .outerjoin(recent, recent.c.artist_id == Artist.id)
            .where(Artist.import_status == "complete")
        )
        rows = (await session.execute(query)).all()
    out = {}
    for artist, shows, *votes in rows:
        activity = [t for t in (artist.shows_synced_at, artist.catalog_synced_at, artist.updated_at) if t]
        out[artist.id] = Signals(
            votes={name: int(n) for name, n in zip(WINDOWS, votes, strict=True)},
            upcoming=int(shows),
            popularity=artist.popularity,
            upcoming_events=artist.upcoming_events or 0,
            followers=artist.followers,
            views=artist.view_count or 0,  # its page's views and its shows' pages'
            last_activity=max((_aware(t) for t in activity), default=None),
        )
    return out


def rank(scores: dict[str, float]) -> list[dict[str, Any]]:
    """Artists by score, highest first (then by id, for a stable order)."""
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [{"artistId": a, "score": s, "rank": i + 1} for i, (a, s) in enumerate(ordered)]


async def cache(redis: Any, window: str, ranked: list[dict[str, Any]]) -> None:
    """Writes one window's ranking and each artist's place in it."""
    ttl = WINDOWS[window][1]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(f"trending:{window}", json.dumps(ranked), ex=ttl)
        for row in ranked:
            place = json.dumps({"score": row["score"], "rank": row["rank"]})
            pipe.set(f"trending:artist:{row['artistId']}:{window}", place, ex=ttl)
        await pipe.execute()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
