"""Reading Server-Sent Events streams in tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx


async def read_events(
    client: httpx.AsyncClient,
    path: str,
    count: int,
    headers: dict[str, str] | None = None,
    opened: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """The first ``count`` events of an SSE stream (comments skipped), each
    as its fields; ``opened`` is called once the headers are in."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with client.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if opened is not None:
            opened()
        async for line in response.aiter_lines():
            if not line:
                if "data" in current:
                    events.append(current)
                    if len(events) == count:
                        return events
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                current[field] = value.strip()
    return events
