"""Cross-site requests refused: a page on another site must not be able to
change anything through a browser that can reach the API (a server on
loopback with no token, or a dashboard session's cookie).

A state-changing request (any method but GET, HEAD and OPTIONS) is refused
with 403 when its ``Origin`` names another host than the one it was sent
to (and not one of ``allowed_origins``), or when the browser marks it
``Sec-Fetch-Site: cross-site``; and under ``/api`` with 415 when its body
is not JSON (an HTML form can send only form data or plain text, and a
cross-site ``fetch`` that sends JSON needs a CORS preflight, which fails).
Clients that are not browsers send no ``Origin`` and are not affected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SameOrigin:
    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str] = ()) -> None:
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            refusal = self._refusal(scope)
            if refusal is not None:
                code, detail = refusal
                response: Any = JSONResponse({"detail": detail}, status_code=code)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and not self._own(origin, headers.get("host", "")):
            return 403, f"cross-site request from {origin} refused"
        if origin is None and headers.get("sec-fetch-site") == "cross-site":
            return 403, "cross-site request refused"
        if _under_api(scope):
            kind = headers.get("content-type")
            if kind is not None and not _is_json(kind):
                return 415, "the API takes JSON bodies (content-type: application/json)"
        return None

    def _own(self, origin: str, host: str) -> bool:
        if origin.rstrip("/").lower() in self.allowed:
            return True
        if origin == "null":  # sandboxed frames, file:// pages
            return False
        return urlsplit(origin).netloc.lower() == host.lower()


def _under_api(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == "/api" or path.startswith("/api/")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
