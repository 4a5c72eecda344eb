"""setlist.fm API 1.0: an artist's setlists, newest first, 20 a page.

"No results" is a 404, read as an empty page; a 429 comes with no
``Retry-After`` (about 2 s is enough, music-apis.md §3).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import httpx

from setlist.adapters.http import (
    Breaker,
    Gate,
    Rejected,
    Throttled,
    Unavailable,
    open_gate,
    redact,
    with_retries,
)

BACKOFF = 2.0


class SetlistFmClient:
    service = "setlistfm"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        *,
        backoff: float = BACKOFF,
        gate: Gate | None = None,
        breaker: Breaker | None = None,
        retry_delay: float = 0.25,
    ) -> None:
        self.http = http
        self.retry_delay = retry_delay
        self.gate = gate or open_gate()
        self.breaker = breaker
        self.backoff = backoff
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.requests = 0

    async def setlists(self, mbid: str, page: int = 1) -> dict[str, Any]:
        """One page of the artist's setlists (``setlist`` empty past the end
        or for an artist with none)."""

        async def call() -> dict[str, Any]:
            async with self.gate:
                self.requests += 1
                response = await self.http.get(
                    f"{self.base_url}/artist/{mbid}/setlists",
                    params={"p": page},
                    headers={"x-api-key": self.api_key, "Accept": "application/json"},
                )
            if response.status_code == 200:
                return response.json()  # type: ignore[no-any-return]
            if response.status_code == 404:
                return {"setlist": [], "total": 0, "page": page, "itemsPerPage": 20}
            if response.status_code == 429:
                raise Throttled(self.service, "rate limited", self.backoff)
            body = redact(response.text[:200], self.api_key)
            if response.status_code >= 500:
                raise Unavailable(self.service, f"HTTP {response.status_code}: {body}")
            raise Rejected(self.service, f"HTTP {response.status_code}: {body}", status=response.status_code)

        return await with_retries(self.service, call, base_delay=self.retry_delay, breaker=self.breaker)


def event_date(value: str) -> date:
    """setlist.fm's ``dd-MM-yyyy``, a calendar date with no time zone."""
    return datetime.strptime(value, "%d-%m-%Y").date()


def songs_played(setlist: dict[str, Any]) -> list[str]:
    """The songs of a setlist in order, tapes and blank names left out
    (songs sit under ``sets.set[]``; the docs' example shows ``set[]``)."""
    sets = setlist.get("sets") or {}
    blocks = sets.get("set", []) if isinstance(sets, dict) else []
    blocks = blocks or setlist.get("set", [])
    return [
        song["name"].strip()
        for block in blocks
        for song in block.get("song", [])
        if not song.get("tape") and song.get("name", "").strip()
    ]
