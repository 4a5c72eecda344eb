"""What the jobs and the API share: the settings, the store, the upstream
clients (behind rate limits and circuit breakers shared by every worker
process), Redis for caches, and the cache keys."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import redis.asyncio as aredis
from sqlalchemy.ext.asyncio import AsyncEngine

from conveyor import CircuitBreaker, Limiter, RateLimit
from setlist.adapters.clients import Upstreams
from setlist.adapters.http import Unavailable
from setlist.adapters.setlistfm import SetlistFmClient
from setlist.adapters.spotify import SpotifyClient
from setlist.adapters.ticketmaster import TicketmasterClient
from setlist.config import Settings
from setlist.db import make_engine, sessions
from setlist.store import Store

CACHE_PREFIX = "setlist:cache"


def artist_cache_key(artist_id: str) -> str:
    return f"{CACHE_PREFIX}:artist:{artist_id}"


TRENDING_CACHE_KEY = f"{CACHE_PREFIX}:trending"


@dataclass
class Services:
    """What the jobs and the API use: the store, the upstream clients (with
    their shared limiters) and a Redis client for caches."""

    settings: Settings
    store: Store
    redis: aredis.Redis
    http: httpx.AsyncClient
    ticketmaster: TicketmasterClient
    spotify: SpotifyClient
    setlistfm: SetlistFmClient
    engine: AsyncEngine
    owns_http: bool = True

    @classmethod
    def create(
        cls,
        redis: aredis.Redis,
        *,
        settings: Settings | None = None,
        database_url: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> Services:
        settings = settings or Settings()
        engine = make_engine(database_url)
        client = http or httpx.AsyncClient(timeout=settings.http_timeout)

        def limiter(name: str, rate: int) -> Limiter:
            # A slot is taken when a request leaves; the upstream counts it
            # when it arrives, and network jitter can bunch arrivals: 10 %
            # of margin keeps them inside the upstream's window.
            return Limiter(redis, f"setlist-{name}", RateLimit(rate, per=1.1), max_wait=5.0)

        def breaker(name: str) -> CircuitBreaker:
            # what says the upstream is down: 5xx and network errors that
            # outlasted the in-request retries (not a 4xx, not a 429)
            return CircuitBreaker(
                redis,
                f"setlist-{name}",
                failure_threshold=settings.breaker_failures,
                cooldown=settings.breaker_cooldown,
                is_failure=lambda exc: isinstance(exc, (Unavailable, httpx.TransportError)),
            )

        upstreams = Upstreams.build(client, settings, gate=limiter, breaker=breaker)
        return cls(
            settings=settings,
            store=Store(sessions(engine)),
            redis=redis,
            http=client,
            ticketmaster=upstreams.ticketmaster,
            spotify=upstreams.spotify,
            setlistfm=upstreams.setlistfm,
            engine=engine,
            owns_http=http is None,
        )

    async def aclose(self) -> None:
        """Closes the database engine, and the HTTP client if it made it."""
        await self.engine.dispose()
        if self.owns_http:
            await self.http.aclose()

    async def drop_caches(self, artist_id: str) -> None:
        await self.redis.delete(artist_cache_key(artist_id), TRENDING_CACHE_KEY)
