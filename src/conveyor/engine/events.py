"""Queue events: every job transition, as written by the scripts to the
queue's capped stream (see ``lua/includes/emit.lua``), read back in order by
any process.

Each event has an id, the decimal count of events the queue emitted up to
and including it. A reader resumes after any id it has seen. If the cap has
already dropped events it asked for, it gets a ``gap`` event saying how
many were lost before the events that follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.engine.client.errors import call
from conveyor.engine.codec import loads, loads_or_text, text
from conveyor.errors import InvalidArgument, check_int, check_seconds

if TYPE_CHECKING:
    from conveyor.engine.scope import QueueScope

#: Every event name a queue's stream can hold, plus ``gap`` for readers.
EVENT_NAMES = frozenset(
    {
        "added",
        "delayed",
        "waiting",
        "waiting-children",
        "active",
        "progress",
        "completed",
        "retrying",
        "failed",
        "dead-lettered",
        "stalled",
        "removed",
        "deduplicated",
        "debounced",
        "gap",
    }
)
#: JSON arrays, one value per job: results, due times, names and start times.
_PER_JOB = {b"results": "result", b"due": "due", b"names": "name", b"started": "started"}


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One transition of one job (or, for ``gap``, of none).

    ``data`` by event: completed ``result``, ``name`` and ``started`` (when
    its last attempt began, a datetime); failed and dead-lettered
    ``error``, ``attempt``, ``name``, ``started``;
    retrying ``error``, ``attempt``, ``delay`` (s); progress ``progress``;
    delayed ``due`` (datetime); active ``worker``; waiting and removed
    ``reason`` (and ``until``, a datetime, when the reason is 'rate
    limited'); waiting-children ``children`` (how many); deduplicated and
    debounced ``key``; added ``schedule`` for a schedule's tick; gap
    ``missed`` (how many events the stream had dropped).
    """

    id: str
    event: str
    job_id: str | None
    time: datetime
    data: dict[str, Any] = field(default_factory=dict)


def parse_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> list[QueueEvent]:
    """The job events held by one stream entry, first to last."""
    last = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-", 1)[0])
    name = fields.get(b"e", b"").decode()
    jobs = [str(j) for j in loads(fields.get(b"jobs", b"[]"))]
    when = datetime.fromtimestamp(int(fields.get(b"t", b"0")) / 1000, tz=UTC)
    shared: dict[str, Any] = {}
    arrays: dict[str, list[Any]] = {}
    for key, raw in fields.items():
        if key in (b"e", b"jobs", b"t"):
            continue
        if key in _PER_JOB:
            arrays[_PER_JOB[key]] = loads(raw)
        elif key == b"data":
            shared["progress"] = loads_or_text(raw)
        elif key == b"attempt":
            shared["attempt"] = int(raw)
        elif key == b"delay":
            shared["delay"] = int(raw) / 1000
        elif key == b"until":
            shared["until"] = datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
        else:
            shared[key.decode()] = raw.decode(errors="replace")
    first = last - len(jobs) + 1
    events = []
    for i, job_id in enumerate(jobs):
        data = dict(shared)
        for name_, values in arrays.items():
            value = values[i] if i < len(values) else None
            if name_ in ("due", "started") and value is not None:
                value = datetime.fromtimestamp(value / 1000, tz=UTC) if value else None
            data[name_] = value
        events.append(QueueEvent(str(first + i), name, job_id, when, data))
    return events


class QueueEvents:
    """An async iterator over a queue's events, from any process.

    ``after``: None (default) yields only events emitted from now on; an
    event id resumes right after that event; ``"0"`` starts from the first
    event the queue ever emitted. Events that the stream's cap dropped
    before they could be read come as one ``gap`` event. The iterator ends
    when :meth:`close` is called (within ``block`` seconds), or, with
    ``follow=False``, once it has yielded every event the stream holds, or
    at ``until`` (a time of the running loop's clock) when one is given.
    """

    def __init__(
        self,
        queue: QueueScope,
        *,
        after: str | None = None,
        block: float = 0.5,
        count: int = 500,
        follow: bool = True,
        until: float | None = None,
    ) -> None:
        if after is not None and not (isinstance(after, str) and after.isascii() and after.isdigit()):
            raise InvalidArgument(f"after must be an event id (digits), not {after!r}")
        check_int(count, "count", 1)
        self.queue = queue
        self.block_ms = max(1, int(check_seconds(block, "block") * 1000))
        self.count = count
        self.follow = follow
        self.until = until
        self._after = after
        self._closed = False

    def close(self) -> None:
        self._closed = True

    async def position(self) -> int:
        """The id of the newest event the queue has emitted (0 if none)."""
        raw = await self._call(self.queue.redis.get(self.queue.keys.events_seq))
        return int(raw or 0)

    async def __aiter__(self) -> AsyncIterator[QueueEvent]:
        async for page in self.pages():
            for event in page:
                yield event
                if self._closed:
                    return

    async def pages(self) -> AsyncIterator[list[QueueEvent]]:
        """The events as :meth:`__aiter__` gives them, one list per read of
        the stream (for a reader that hands them on in batches)."""
        after = int(self._after) if self._after is not None else await self.position()
        stream = self.queue.keys.events
        redis = self.queue.redis
        while not self._closed:
            block: int | None = self.block_ms if self.follow else None
            if self.until is not None:
                left = self.until - asyncio.get_running_loop().time()
                if left <= 0:
                    return
                block = max(1, min(block or self.block_ms, int(left * 1000)))
            reply = await self._call(redis.xread({stream: f"{after}-0"}, count=self.count, block=block))
            if not reply and not self.follow:
                return
            page: list[QueueEvent] = []
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    events = parse_entry(entry_id, fields)
                    if not events:  # holds no event: read past it
                        after = max(after, int(text(entry_id).split("-", 1)[0]))
                        continue
                    first = int(events[0].id)
                    if first > after + 1:
                        missed = first - after - 1
                        page.append(
                            QueueEvent(str(first - 1), "gap", None, events[0].time, {"missed": missed})
                        )
                    for event in events:
                        if int(event.id) > after:
                            after = int(event.id)
                            page.append(event)
            if page:
                yield page

    async def _call(self, awaitable: Any) -> Any:
        return await call(self.queue.redis, awaitable)
