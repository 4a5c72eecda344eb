"""Ticketmaster Discovery v2: attractions and every event of an attraction.

Paging stops where the API does (``page * size`` past 1,000 is refused
with DIS1035, music-apis.md §1.3), so an attraction with more events than
that is read in date windows, halved until each fits, plus one query for
events without a date (``includeTBA=only``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
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

PAGE_SIZE = 200  # the API's maximum (201 is DIS1036)
MAX_DEPTH = 1000  # served while page * size <= 1000
SPIKE_WAIT = 1.0  # the spike arrest allows 5/s with a burst of 1 and sends no Retry-After


class TicketmasterClient:
    """Calls Ticketmaster with ``api_key``; raises the adapters' errors."""

    service = "ticketmaster"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        *,
        gate: Gate | None = None,
        breaker: Breaker | None = None,
        retry_delay: float = 0.25,
        spike_wait: float = SPIKE_WAIT,
    ) -> None:
        self.http = http
        self.retry_delay = retry_delay
        self.spike_wait = spike_wait
        self.gate = gate or open_gate()
        self.breaker = breaker
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.requests = 0

    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
        async def call() -> dict[str, Any] | None:
            async with self.gate:
                self.requests += 1
                response = await self.http.get(
                    f"{self.base_url}{path}", params={**params, "apikey": self.api_key}
                )
            if response.status_code == 200:
                return response.json()  # type: ignore[no-any-return]
            if response.status_code == 404:
                return None
            body = redact(response.text[:300], self.api_key)
            if response.status_code == 429:
                code = response.json().get("fault", {}).get("detail", {}).get("errorcode", "")
                if "QuotaViolation" in code:  # the day's quota: wait for Rate-Limit-Reset
                    reset_ms = float(response.headers.get("rate-limit-reset", 0) or 0)
                    wait = max(60.0, reset_ms / 1000 - datetime.now(UTC).timestamp())
                    raise Throttled(self.service, "daily quota exhausted", wait)
                raise Throttled(self.service, "spike arrest", self.spike_wait)
            if response.status_code >= 500:
                raise Unavailable(self.service, f"HTTP {response.status_code}: {body}")
            raise Rejected(self.service, f"HTTP {response.status_code}: {body}")

        return await with_retries(self.service, call, base_delay=self.retry_delay, breaker=self.breaker)

    async def attraction(self, attraction_id: str) -> dict[str, Any] | None:
        """The attraction, or None when Ticketmaster does not know the id."""
        return await self._get(f"/attractions/{attraction_id}.json", {"locale": "en-us"})

    async def venue(self, venue_id: str) -> dict[str, Any] | None:
        """The venue's details, or None when Ticketmaster does not know the id."""
        return await self._get(f"/venues/{venue_id}.json", {"locale": "en-us"})

    async def search_attractions(self, keyword: str, size: int = 20) -> list[dict[str, Any]]:
        """Music attractions whose name matches ``keyword`` (one page)."""
        body = await self._get(
            "/attractions.json",
            {"keyword": keyword, "classificationName": "music", "size": size, "locale": "*"},
        )
        return list((body or {}).get("_embedded", {}).get("attractions", []))

    async def events_page(
        self,
        attraction_id: str,
        page: int,
        *,
        start: str | None = None,
        end: str | None = None,
        tba: bool = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "attractionId": attraction_id,
            "size": PAGE_SIZE,
            "page": page,
            "sort": "date,asc",
        }
        if start:
            params["startDateTime"] = start
        if end:
            params["endDateTime"] = end
        if tba:
            params["includeTBA"] = "only"
        return await self._get("/events.json", params) or {}

    async def events(self, attraction_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Every event of the attraction, a page at a time (ids may repeat
        across windows; store them by id)."""
        first = await self.events_page(attraction_id, 0)
        total = int(first.get("page", {}).get("totalElements", 0))
        if total <= MAX_DEPTH + PAGE_SIZE:
            async for chunk in self._pages(attraction_id, first, None, None):
                yield chunk
            return
        windows = [(datetime(1990, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))]
        while windows:
            since, until = windows.pop(0)
            start, end = _stamp(since), _stamp(until)
            head = await self.events_page(attraction_id, 0, start=start, end=end)
            count = int(head.get("page", {}).get("totalElements", 0))
            if count > MAX_DEPTH + PAGE_SIZE and (until - since).total_seconds() > 3600:
                middle = since + (until - since) / 2
                windows[:0] = [(since, middle), (middle, until)]
                continue
            async for chunk in self._pages(attraction_id, head, start, end):
                yield chunk
        undated = await self.events_page(attraction_id, 0, tba=True)
        async for chunk in self._pages(attraction_id, undated, None, None, tba=True):
            yield chunk

    async def _pages(
        self,
        attraction_id: str,
        head: dict[str, Any],
        start: str | None,
        end: str | None,
        *,
        tba: bool = False,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        yield head.get("_embedded", {}).get("events", [])
        pages = int(head.get("page", {}).get("totalPages", 0))
        for page in range(1, min(pages, MAX_DEPTH // PAGE_SIZE + 1)):
            body = await self.events_page(attraction_id, page, start=start, end=end, tba=tba)
            yield body.get("_embedded", {}).get("events", [])


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
