"""Health of a process of its own (the event processor, the dead-letter
processor): ``GET /health`` on ``--health-port``, and ``eventhub health``
to ask it, as a container's health check would (the design: every 30 s, a
5 s timeout, 3 retries).

A process is healthy while each Redis role answers and its loop has
beaten within ``stale`` seconds (a stuck loop answers 503 too).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import JSONResponse


@dataclass
class Heartbeat:
    """When the process's loop last went round."""

    stale: float
    last: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last


def create_health_app(
    process: str, heartbeat: Heartbeat, ping: Callable[[], Awaitable[dict[str, str]]]
) -> FastAPI:
    api = FastAPI(title=f"eventhub {process}", docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/health")
    async def health() -> JSONResponse:
        roles = await ping()
        age = heartbeat.age()
        healthy = all(state == "ok" for state in roles.values()) and age <= heartbeat.stale
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "process": process,
            "redis": roles,
            "lastBeat": round(age, 3),
        }
        return JSONResponse(body, 200 if healthy else 503)

    return api
