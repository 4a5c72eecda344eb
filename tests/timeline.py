"""Reading what happened from a queue's event stream, for tests that check
when things happened across processes (each event carries Redis time)."""

from __future__ import annotations

from typing import Any

from conveyor import Queue, QueueEvent
from conveyor.engine.events import parse_entry


async def events(queue: Queue) -> list[QueueEvent]:
    out: list[QueueEvent] = []
    entries: Any = await queue.redis.xrange(queue.keys.events)
    for entry_id, fields in entries:
        out.extend(parse_entry(entry_id, fields))
    return out


def max_in_window(times: list[float], width: float) -> int:
    """The most of ``times`` (sorted, seconds) inside any half-open window
    [t, t + width), compared in whole milliseconds (the events' resolution;
    floats near 1.8e9 s cannot tell a boundary apart)."""
    ms = [round(t * 1000) for t in times]
    span = round(width * 1000)
    best, lo = 0, 0
    for hi, t in enumerate(ms):
        while ms[lo] <= t - span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
