"""Token auth: ``Authorization: Bearer <token>`` (or the dashboard's cookie),
compared in constant time. With no token configured, the API is open, and
serving it on a non-loopback address logs a warning."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("conveyor.server")

COOKIE = "conveyor_token"


def token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


REFUSED = "missing or wrong token"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def carries_token(conn: HTTPConnection, expected: str) -> bool:
    """The request's bearer token, or else the dashboard's cookie, is ``expected``."""
    header = conn.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    given = credentials.strip() if scheme.lower() == "bearer" else conn.cookies.get(COOKIE)
    return token_matches(given, expected)


async def require_token(request: Request) -> None:
    """A dependency: refuses the request unless it carries the token."""
    expected: str | None = request.app.state.conveyor.token
    if expected and not carries_token(request, expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, REFUSED, headers=CHALLENGE)


class TokenGate:
    """Refuses requests under ``/api`` and ``/metrics`` without the token
    before anything else looks at them: no routing (an unknown path or
    method answers 401, not 404 or 405), no body parsing (a malformed body
    answers 401, not 422). The routes' own dependency checks again."""

    PROTECTED = ("/api", "/metrics")

    def __init__(self, app: ASGIApp, token: Callable[[], str | None]) -> None:
        self.app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        expected = self._token()
        if expected and scope["type"] in ("http", "websocket") and self._protected(scope):
            conn = HTTPConnection(scope)
            if not carries_token(conn, expected):
                response: Any = JSONResponse({"detail": REFUSED}, status_code=401, headers=CHALLENGE)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _protected(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return any(path == p or path.startswith(p + "/") for p in self.PROTECTED)


def bearer_guard(token: str | None) -> Callable[[Request], Awaitable[None]]:
    """A dependency for an application's own routes: with ``token``, a
    request whose ``Authorization`` header is not ``Bearer <token>``
    (compared in constant time) is refused with 401; without one, every
    request passes."""
    expected = f"Bearer {token}".encode()

    async def guard(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, "a valid bearer token is required", {"www-authenticate": "Bearer"})

    return guard


def warn_if_open(host: str, token: str | None) -> None:
    """Logs a warning when an API without a token listens beyond loopback."""
    if token:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log.warning(
            "the Conveyor API listens on %s without a token: anyone who can reach it can change "
            "queues; set CONVEYOR_API_TOKEN",
            host,
            extra={"event": "api_open"},
        )
