"""A local fake of the social networks' API, for running offline and for
tests: OAuth grants and refreshes, posting with idempotency keys, tokens
that expire, latency, and failures on demand.

- ``POST /v1/{network}/oauth/grant {account}`` and ``POST
  /v1/{network}/oauth/token {refresh_token}``: tokens (``expires_in`` seconds).
- ``POST /v1/{network}/posts {text, assets}`` with ``Authorization: Bearer``
  and ``Idempotency-Key``: 201 with the post, or 200 with the post already
  made under that key; 401 ``token_expired``/``invalid_token``; 422 for an
  empty or too long text.
- ``POST /_fake/config``: ``latency_ms``, ``fail`` (``{network: [status,
  ...]}``, answered in turn before any real work), ``fail_after_accept``
  (``{network: n}``: the next n posts are made, then answered 500),
  ``token_ttl``; ``GET /_fake/posts`` and ``GET /_fake/counters``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

NETWORKS = ("mastodon", "bluesky", "linkedin")
MAX_TEXT = 500


@dataclass
class FakeNetworks:
    latency_ms: float = 0.0
    token_ttl: float = 3600.0
    fail: dict[str, list[int]] = field(default_factory=dict)
    fail_after_accept: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, tuple[str, str, float]] = field(
        default_factory=dict
    )  # token -> network, account, expiry
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)

    def issue(self, network: str, account: str) -> dict[str, Any]:
        token = "at-" + secrets.token_hex(12)
        self.tokens[token] = (network, account, time.time() + self.token_ttl)
        return {"access_token": token, "token_type": "bearer", "expires_in": int(self.token_ttl)}

    def expire(self, token: str) -> None:
        """Makes ``token`` expired at once (as if its lifetime ran out)."""
        network, account, _ = self.tokens[token]
        self.tokens[token] = (network, account, 0.0)


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status)


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def create_fake(state: FakeNetworks | None = None) -> Starlette:
    st = state or FakeNetworks()

    async def delay() -> None:
        if st.latency_ms:
            await asyncio.sleep(st.latency_ms / 1000)

    def network_of(request: Request) -> str | None:
        network = str(request.path_params["network"])
        return network if network in NETWORKS else None

    async def grant(request: Request) -> JSONResponse:
        await delay()
        network, body = network_of(request), await _json(request)
        if network is None:
            return _error(404, "unknown_network", "no such network")
        if body is None or not isinstance(body.get("account"), str) or not body["account"]:
            return _error(400, "invalid_request", "account is required")
        st.counters[f"{network}:grant"] += 1
        refresh = "rt-" + secrets.token_hex(12)
        st.refresh_tokens[refresh] = (network, body["account"])
        return JSONResponse({**st.issue(network, body["account"]), "refresh_token": refresh})

    async def refresh(request: Request) -> JSONResponse:
        await delay()
        network, body = network_of(request), await _json(request)
        if network is None:
            return _error(404, "unknown_network", "no such network")
        st.counters[f"{network}:refresh"] += 1
        known = st.refresh_tokens.get(str((body or {}).get("refresh_token")))
        if known is None or known[0] != network:
            return _error(400, "invalid_grant", "unknown refresh token")
        return JSONResponse(st.issue(network, known[1]))

    async def publish(request: Request) -> JSONResponse:
        await delay()
        network = network_of(request)
        if network is None:
            return _error(404, "unknown_network", "no such network")
        st.counters[f"{network}:posts"] += 1
        if st.fail.get(network):
            status = st.fail[network].pop(0)
            return _error(status, "unavailable" if status >= 500 else "rate_limited", "injected failure")
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        known = st.tokens.get(token)
        if known is None or known[0] != network:
            return _error(401, "invalid_token", "unknown token")
        if known[2] < time.time():
            return _error(401, "token_expired", "the access token has expired")
        body = await _json(request)
        text = (body or {}).get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            return _error(422, "invalid_post", f"text must be 1 to {MAX_TEXT} characters")
        key = request.headers.get("idempotency-key")
        if key and (earlier := st.by_key.get(f"{network}:{key}")) is not None:
            return JSONResponse(earlier, 200)
        post = {
            "id": f"{network}-{len(st.posts) + 1}",
            "network": network,
            "account": known[1],
            "text": text,
            "assets": ["image"] if (body or {}).get("assets") else [],
        }
        st.posts.append(post)
        if key:
            st.by_key[f"{network}:{key}"] = post
        if st.fail_after_accept[network] > 0:
            st.fail_after_accept[network] -= 1
            return _error(500, "internal", "the post was made, but the answer was lost")
        return JSONResponse(post, 201)

    async def config(request: Request) -> JSONResponse:
        body = await _json(request) or {}
        if "latency_ms" in body:
            st.latency_ms = float(body["latency_ms"])
        if "token_ttl" in body:
            st.token_ttl = float(body["token_ttl"])
        for network, statuses in dict(body.get("fail") or {}).items():
            st.fail[network] = [int(s) for s in statuses]
        for network, count in dict(body.get("fail_after_accept") or {}).items():
            st.fail_after_accept[network] = int(count)
        return JSONResponse({"ok": True})

    async def posts(request: Request) -> JSONResponse:
        return JSONResponse(st.posts)

    async def counters(request: Request) -> JSONResponse:
        return JSONResponse(dict(st.counters))

    app = Starlette(
        routes=[
            Route("/v1/{network}/oauth/grant", grant, methods=["POST"]),
            Route("/v1/{network}/oauth/token", refresh, methods=["POST"]),
            Route("/v1/{network}/posts", publish, methods=["POST"]),
            Route("/_fake/config", config, methods=["POST"]),
            Route("/_fake/posts", posts),
            Route("/_fake/counters", counters),
        ]
    )
    app.state.fake = st
    return app
