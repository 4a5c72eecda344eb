"""A webhook receiver, served by the fake under ``/receiver``, that checks
deliveries as a careful receiver would: the signature (HMAC-SHA256 of
``"<t>.<body>"``), the timestamp's age, and the delivery id seen before.

- ``POST /receiver/{name}/config`` ``{secret, fail_first?, fail_status?}``
  sets up a receiver (``fail_first`` deliveries answered ``fail_status``);
- ``POST /receiver/{name}``: a delivery; 401 for a bad signature or a
  stale timestamp, 404 for a receiver not set up;
- ``GET /receiver/{name}``: what it received, in order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

#: Deliveries signed longer ago than this are refused (replays).
TOLERANCE = 300


class ReceiverConfig(BaseModel):
    secret: str = Field(min_length=1)
    fail_first: int = Field(default=0, ge=0)
    fail_status: int = Field(default=500, ge=400, le=599)


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: int = TOLERANCE) -> bool:
    """Whether ``header`` (``t=<unix>,v1=<hex>``) signs ``body`` with ``secret``, recently."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - stamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class Receiver:
    configs: dict[str, ReceiverConfig] = field(default_factory=dict)
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.configs.clear()
        self.received.clear()
        self.refused.clear()

    def routes(self) -> list[Route]:
        return [
            Route("/receiver/{name}/config", self.configure, methods=["POST"]),
            Route("/receiver/{name}", self.deliver, methods=["POST"]),
            Route("/receiver/{name}", self.listing, methods=["GET"]),
        ]

    async def configure(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            self.configs[name] = ReceiverConfig.model_validate_json(await request.body())
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 422)
        self.received.setdefault(name, [])
        self.refused[name] = 0
        return JSONResponse({"name": name, "url": str(request.url_for("deliver", name=name))})

    async def deliver(self, request: Request) -> Response:
        name = request.path_params["name"]
        config = self.configs.get(name)
        if config is None:
            return JSONResponse({"error": f"no receiver {name!r}: POST /receiver/{name}/config first"}, 404)
        body = await request.body()
        if not verify(config.secret, request.headers.get("x-setlist-signature", ""), body, now=time.time()):
            return JSONResponse({"error": "bad or stale signature"}, 401)
        if self.refused[name] < config.fail_first:
            self.refused[name] += 1
            return JSONResponse({"error": "failing on purpose"}, config.fail_status)
        payload = json.loads(body)
        log = self.received[name]
        duplicate = any(d["id"] == payload.get("id") for d in log)
        log.append({**payload, "duplicate": duplicate, "delivery": request.headers.get("x-setlist-delivery")})
        return JSONResponse({"ok": True, "duplicate": duplicate})

    async def listing(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.configs:
            return JSONResponse({"error": f"no receiver {name!r}"}, 404)
        return JSONResponse({"deliveries": self.received[name], "refused": self.refused[name]})
