"""What the event hub's tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from eventhub.config import Settings


def fast_settings(url: str, **overrides: Any) -> Settings:
    """Short locks, claims and retries, so recoveries take a second."""
    values: dict[str, Any] = {
        "master_url": url,
        "streams_url": url,
        "queue_url": url,
        "dlq_retry_delay": 0.0,
        "lock_duration": 1.0,
        "claim_idle": 1.0,
        "retry_delay": 0.05,
        "dlq_interval": 0.1,
    }
    return Settings(**{**values, **overrides})


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)
