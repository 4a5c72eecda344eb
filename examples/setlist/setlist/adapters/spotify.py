"""Spotify Web API with client-credentials tokens, degrading at run time to
what the app's mode allows (music-apis.md §0.2, §2):

- ``400 Invalid limit`` on artist albums or search: retry with ``limit=10``;
- ``403`` on ``/tracks?ids=``: one ``/tracks/{id}`` per track from then on;
- ``403`` on ``/audio-features``: no liveness for this client (the import
  is then marked degraded);
- ``401 The access token expired``: a new token, once, then the call again;
- ``429``: ``Retry-After`` honoured; long waits raise Throttled.

Each decision is remembered by the client, so its cost is paid once.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import httpx

from setlist.adapters.http import (
    Breaker,
    Gate,
    Rejected,
    Throttled,
    Unavailable,
    open_gate,
    redact,
    retry_after,
    with_retries,
)


class SpotifyClient:
    service = "spotify"

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_base: str,
        accounts_base: str,
        client_id: str,
        client_secret: str,
        *,
        gate: Gate | None = None,
        breaker: Breaker | None = None,
        retry_delay: float = 0.25,
    ) -> None:
        self.http = http
        self.retry_delay = retry_delay
        self.gate = gate or open_gate()
        self.breaker = breaker
        self.api_base = api_base.rstrip("/")
        self.accounts_base = accounts_base.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.requests = 0
        self.page_limit = 50
        self.batch_tracks = True
        self.features_available = True
        self._token: str | None = None
        self._token_lock = asyncio.Lock()

    async def _fresh_token(self, stale: str | None) -> str:
        async with self._token_lock:
            if self._token is not None and self._token != stale:
                return self._token  # another call refreshed it meanwhile
            self.requests += 1
            response = await self.http.post(
                f"{self.accounts_base}/api/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.client_secret),
            )
            if response.status_code != 200:
                body = redact(response.text[:200], self.client_secret)
                raise Rejected(self.service, f"token request refused ({response.status_code}): {body}")
            payload = response.json()
            if str(payload.get("token_type", "")).lower() != "bearer":
                raise Rejected(self.service, f"unexpected token type {payload.get('token_type')!r}")
            self._token = str(payload["access_token"])
            return self._token

    async def get(self, url: str) -> dict[str, Any] | None:
        """GETs an API path or absolute URL; None on 404. Raises
        Throttled, Unavailable or Rejected (403 included)."""

        async def call() -> dict[str, Any] | None:
            token = self._token or await self._fresh_token(None)
            for refreshed in (False, True):
                target = url if url.startswith("http") else f"{self.api_base}{url}"
                async with self.gate:
                    self.requests += 1
                    response = await self.http.get(target, headers={"Authorization": f"Bearer {token}"})
                if response.status_code == 401 and not refreshed:
                    token = await self._fresh_token(token)
                    continue
                return self._answer(response)
            raise Rejected(self.service, "unauthorized after a new token")

        return await with_retries(self.service, call, base_delay=self.retry_delay, breaker=self.breaker)

    def _answer(self, response: httpx.Response) -> dict[str, Any] | None:
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        if response.status_code == 404:
            return None
        message = _message(response)
        if response.status_code == 429:
            raise Throttled(self.service, "rate limited", retry_after(response, 1.0))
        if response.status_code >= 500:
            raise Unavailable(self.service, f"HTTP {response.status_code}: {message}")
        raise Rejected(self.service, f"HTTP {response.status_code}: {message}", status=response.status_code)

    async def _paged(self, path: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Every item of a paged listing, following absolute ``next`` links
        and stopping on an empty page whatever ``next`` says."""
        url: str | None = f"{path}?{urlencode({**params, 'limit': limit, 'offset': 0}, safe=',')}"
        items: list[dict[str, Any]] = []
        while url:
            page = await self.get(url) or {}
            chunk = page.get("items") or []
            if not chunk:
                break
            items.extend(chunk)
            url = page.get("next")
        return items

    async def _limited(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return await self._paged(path, params, self.page_limit)
        except Rejected as exc:
            if exc.status != 400 or "limit" not in str(exc).lower() or self.page_limit == 10:
                raise
            self.page_limit = 10  # development mode: 10 at most
            return await self._paged(path, params, self.page_limit)

    async def artist(self, artist_id: str) -> dict[str, Any] | None:
        return await self.get(f"/artists/{artist_id}")

    async def search_artist(self, name: str) -> dict[str, Any] | None:
        """The best artist match for ``name`` (exact name first), or None."""
        # one page is enough, and 10 is within both profiles' limits
        body = await self.get(f"/search?{urlencode({'q': name, 'type': 'artist', 'limit': 10})}") or {}
        hits: list[dict[str, Any]] = (body.get("artists") or {}).get("items") or []
        exact = [h for h in hits if h.get("name", "").casefold() == name.casefold()]
        return (exact or hits or [None])[0]

    async def albums(self, artist_id: str, market: str = "US") -> list[dict[str, Any]]:
        """The artist's albums and singles in ``market`` (a market is always
        sent: without one every album comes once per market)."""
        return await self._limited(
            f"/artists/{artist_id}/albums", {"include_groups": "album,single", "market": market}
        )

    async def album_tracks(self, album_id: str, market: str = "US") -> list[dict[str, Any]]:
        return await self._paged(f"/albums/{album_id}/tracks", {"market": market}, 50)

    async def tracks(self, ids: list[str]) -> list[dict[str, Any]]:
        """Full tracks (ISRC, popularity when the mode has it) for ``ids``;
        unknown ids are left out."""
        unique = list(dict.fromkeys(ids))
        out: list[dict[str, Any]] = []
        if self.batch_tracks:
            try:
                for i in range(0, len(unique), 50):
                    body = await self.get(f"/tracks?ids={','.join(unique[i : i + 50])}") or {}
                    out.extend(t for t in body.get("tracks", []) if t)
                return out
            except Rejected as exc:
                if exc.status != 403:
                    raise
                self.batch_tracks = False  # development mode: batch lookups are gone
                done = {t["id"] for t in out}
                unique = [i for i in unique if i not in done]
        for track_id in unique:
            if (track := await self.get(f"/tracks/{track_id}")) is not None:
                out.append(track)
        return out

    async def liveness(self, ids: list[str]) -> dict[str, float] | None:
        """Liveness by track id, or None when audio features are closed to
        this app (then they stay closed for this client)."""
        if not self.features_available:
            return None
        unique = list(dict.fromkeys(ids))
        found: dict[str, float] = {}
        try:
            for i in range(0, len(unique), 100):
                body = await self.get(f"/audio-features?ids={','.join(unique[i : i + 100])}") or {}
                found.update({f["id"]: float(f["liveness"]) for f in body.get("audio_features", []) if f})
        except Rejected as exc:
            if exc.status != 403:
                raise
            self.features_available = False
            return None
        return found


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return response.text[:200]
    if isinstance(error, dict):
        return str(error.get("message", error.get("status", "")))
    return str(error)
