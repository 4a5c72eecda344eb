"""The social networks' API over httpx: OAuth grant and refresh, and
posting with an idempotency key, so a retry after a lost answer never
posts twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


class NetworkError(Exception):
    """A call to a network failed."""


class Transient(NetworkError):
    """Worth retrying later: 429, 5xx, a timeout or a dropped connection."""


class TokenExpired(NetworkError):
    """The access token is expired or unknown: refresh it, then retry."""


class Refused(NetworkError):
    """The network refused the request for good (4xx): retrying cannot help."""


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_at: datetime
    refresh_token: str | None = None


@dataclass(frozen=True, slots=True)
class Published:
    external_id: str
    assets: int
    replayed: bool  # the network had this post already (a retry after a lost answer)


class NetworkClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.TimeoutException as exc:
            raise Transient(f"{path}: timed out") from exc
        except httpx.TransportError as exc:
            raise Transient(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise Transient(f"{path}: HTTP {response.status_code} {_detail(response)}")
        if response.status_code == 401:
            raise TokenExpired(f"{path}: {_detail(response)}")
        if response.status_code >= 400:
            raise Refused(f"{path}: HTTP {response.status_code} {_detail(response)}")
        return response

    async def grant(self, network: str, account: str) -> Tokens:
        """Completes an account's authorisation (the fake's stand-in for the
        OAuth redirect flow)."""
        body = (await self._call("POST", f"/v1/{network}/oauth/grant", json={"account": account})).json()
        return _tokens(body)

    async def refresh(self, network: str, refresh_token: str) -> Tokens:
        body = (
            await self._call("POST", f"/v1/{network}/oauth/token", json={"refresh_token": refresh_token})
        ).json()
        return _tokens(body)

    async def publish(
        self, network: str, token: str, text: str, *, idempotency_key: str, assets: bool = False
    ) -> Published:
        response = await self._call(
            "POST",
            f"/v1/{network}/posts",
            json={"text": text, "assets": assets},
            headers={"authorization": f"Bearer {token}", "idempotency-key": idempotency_key},
        )
        body = response.json()
        return Published(str(body["id"]), len(body.get("assets") or []), replayed=response.status_code == 200)


def _tokens(body: dict[str, Any]) -> Tokens:
    expires = datetime.now(UTC) + timedelta(seconds=float(body["expires_in"]))
    return Tokens(str(body["access_token"]), expires, body.get("refresh_token"))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error") or "") + (f": {body['detail']}" if body.get("detail") else "")
