"""Token auth: ``Authorization: Bearer <token>`` (or the dashboard's cookie),
compared in constant time. With no token configured, the API is open, and
serving it on a non-loopback address logs a warning."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status

log = logging.getLogger("conveyor.server")

COOKIE = "conveyor_token"


def token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def require_token(request: Request) -> None:
    """A dependency: refuses the request unless it carries the token."""
    expected: str | None = request.app.state.conveyor.token
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    given = credentials.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
    if not token_matches(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong token",
            headers={"WWW-Authenticate": "Bearer"},
        )


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
