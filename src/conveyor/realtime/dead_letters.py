"""Why an event consumer gives up on an entry, and what it tells when it does."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.engine.codec import loads_or_text, text
from conveyor.errors import ConnectionFailed, Discard, InvalidArgument, RateLimited, RedisOutOfMemory, Retry
from conveyor.realtime.router import stream_time

#: Why a group gave up on an entry:
#:
#: - ``invalid``: no type, or data its route's model rejects (or not JSON);
#: - ``discarded``: the handler raised ``Discard``;
#: - ``transient``: the last delivery failed on a passing fault, one of the
#:   consumer's ``transient_errors`` (a timeout, a lost connection, ``Retry``);
#: - ``error``: the last delivery raised anything else;
#: - ``unfinished``: started ``max_deliveries`` times without an outcome
#:   (its consumers crashed, froze or were cut off);
#: - ``trimmed``: removed from the stream before the group acknowledged it.
#:
#: Dead letters written before reasons were recorded have ``""``.
DeadLetterReason = Literal["invalid", "discarded", "transient", "error", "unfinished", "trimmed", ""]

#: Failures a later delivery may not meet (``transient_errors``' default):
#: every error that means "try again", Conveyor's own included (an
#: unreachable or full Redis met by a handler's ``Queue.add``, an upstream
#: rate limit or open circuit).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionFailed,
    RedisOutOfMemory,
    RateLimited,
    Retry,
)


def dead_letter_reason(value: str) -> DeadLetterReason:
    """A recorded reason, ``""`` when unknown."""
    return cast(DeadLetterReason, value) if value in get_args(DeadLetterReason) else ""


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """Told to ``on_dead_letter`` once per entry a group gives up on."""

    event_id: str
    type: str
    group: str
    error: str
    reason: DeadLetterReason = ""


DeadLetterHook = Callable[[DeadLettered], Awaitable[None]]


def failure_reason(exc: BaseException, transient: tuple[type[BaseException], ...]) -> DeadLetterReason:
    """What a handler's exception says of a replay: ``discarded`` (never),
    ``transient`` (may succeed), ``error`` (unknown)."""
    if isinstance(exc, Discard):
        return "discarded"
    return "transient" if isinstance(exc, transient) else "error"


def asked_delay(exc: BaseException) -> float | None:
    """The delay a handler asked for with ``Retry`` or ``RateLimited``."""
    if isinstance(exc, RateLimited):
        return exc.retry_after
    return exc.delay if isinstance(exc, Retry) else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry a group gave up on. ``type`` and ``data`` are None when the
    entry had been trimmed from the stream before it was handled; ``data``
    is the raw JSON text when it is not valid JSON."""

    id: str
    event_id: str
    type: str | None
    data: Any
    group: str
    consumer: str
    deliveries: int
    error: str
    traceback: str
    #: Why the group gave up on it (see ``DeadLetterReason``).
    reason: DeadLetterReason = ""
    #: How many times the event had been replayed before this letter (0:
    #: it failed as first published).
    replays: int = 0
    #: The id the event was first published with (``event_id`` unless it is
    #: a replay).
    origin_id: str = ""

    @property
    def time(self) -> datetime:
        """When the entry was dead-lettered."""
        return stream_time(self.id)

    @classmethod
    def from_entry(cls, entry_id: Any, fields: Any) -> DeadLetter:
        f = {text(k): v for k, v in fields.items()}
        return cls(
            id=text(entry_id),
            event_id=text(f.get("event", b"")),
            type=text(f["type"]) if "type" in f else None,
            data=loads_or_text(f["data"]) if "data" in f else None,
            group=text(f.get("group", b"")),
            consumer=text(f.get("consumer", b"")),
            deliveries=int(f.get("deliveries", 0)),
            error=text(f.get("error", b"")),
            traceback=text(f.get("traceback", b"")),
            reason=dead_letter_reason(text(f.get("reason", b""))),
            replays=int(f.get("replays", 0)),
            origin_id=text(f.get("origin") or f.get("event", b"")),
        )


#: A stream entry id: milliseconds, and a sequence number after a dash.
_ENTRY_ID = re.compile(r"[0-9]+(-[0-9]+)?")


def check_entry_ids(ids: Iterable[str]) -> None:
    """Refuses, before anything is written, what is not a stream entry id
    (Redis would fail the call at the first, after those before it)."""
    for entry_id in ids:
        if not isinstance(entry_id, str) or _ENTRY_ID.fullmatch(entry_id) is None:
            raise InvalidArgument(f"not a stream entry id: {entry_id!r}")
