"""The suite's one way to wait for something another task, thread or
process does: poll a condition until it holds, or fail the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Returns once ``predicate()`` is true, checking every 50 ms; fails
    the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
