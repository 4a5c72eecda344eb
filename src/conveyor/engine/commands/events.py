"""The event bus (a stream per bus, consumer groups, a dead-letter stream)
and the progress bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.command import Command
from conveyor.engine.codec import text
from conveyor.engine.keys import StreamKeys

_THREE = ("stream", "dead_letter_stream", "errors")


class Member(NamedTuple):
    """A consumer of a group of a stream."""

    keys: StreamKeys
    group: str
    consumer: str


class Claimed(NamedTuple):
    next_cursor: str  # '0-0' when the scan is done
    claimed: list[tuple[str, bool]]  # id, and whether its last start ended in a recorded failure
    dead: list[tuple[str, str, str, str]]  # id, type, error, reason of entries dead-lettered


class Started(NamedTuple):
    """start_event's reply: ``code`` 0 not pending on this consumer; 1 start
    it (``deliveries``, ``fields``); 2 dead-lettered (``type``, ``error``,
    ``reason``)."""

    code: int
    deliveries: int = 0
    fields: dict[str, Any] | None = None
    type: str = ""
    error: str = ""
    reason: str = ""


PUBLISH_EVENTS = Command(
    "publish_events", keys=("stream",), argv=("max_length", "max_age_ms", "now", "trim"), more_argv=True
)
ACK_EVENTS = Command("ack_events", keys=("stream", "errors"), argv=("group",), more_argv=True)
TOUCH_EVENTS = Command(
    "touch_events", keys=("stream",), argv=("group", "consumer", "idle_ms_to_set"), more_argv=True
)
CLAIM_EVENTS = Command(
    "claim_events",
    keys=_THREE,
    argv=("group", "consumer", "min_idle_ms", "cursor", "count", "dead_letter_cap"),
    reply=Claimed,
)
START_EVENT = Command(
    "start_event", keys=_THREE, argv=("group", "consumer", "entry_id", "max_deliveries", "dead_letter_cap")
)
FAIL_EVENT = Command(
    "fail_event",
    keys=_THREE,
    argv=(
        "group",
        "consumer",
        "entry_id",
        "max_deliveries",
        "idle_ms_to_set",
        "error",
        "traceback",
        "dead_letter_cap",
        "at_once",
        "reason",
    ),
)
FORGET_CONSUMER = Command("forget_consumer", keys=("stream",), argv=("group", "consumer"))
REPLAY_DEAD_EVENTS = Command(
    "replay_dead_events", keys=("stream", "dead_letter_stream"), argv=("max_length", "trim"), more_argv=True
)
REPORT_PROGRESS = Command(
    "report_progress",
    keys=("status_key", "active_index"),
    argv=(
        "subject",
        "stage",
        "percent",
        "message",
        "extra",
        "job_id",
        "now",
        "retention_ms",
        "channel",
        "finished",
        "options",
    ),
)


def _three(m: Member) -> list[str]:
    """The KEYS of the scripts that start, fail and claim entries."""
    return [m.keys.stream, m.keys.dead, m.keys.errors(m.group)]


async def publish_events(
    client: RedisClient,
    k: StreamKeys,
    events: Sequence[Arg],
    *,
    max_length: int,
    max_age_ms: int,
    now: Arg,
    trim: str,
) -> list[str]:
    """Appends events (four values each: type, data JSON, target group or
    '', replayed dead-letter id or '') and trims; returns their ids. Not
    resent after a lost reply: that could publish twice."""
    ids = await PUBLISH_EVENTS.run(
        client, [k.stream], [max_length, max_age_ms, now, trim, *events], resend=False
    )
    return [text(i) for i in ids]


async def ack_events(client: RedisClient, k: StreamKeys, group: str, ids: Sequence[str]) -> int:
    """Acknowledges ``ids``; returns how many were still pending."""
    return int(await ACK_EVENTS.run(client, [k.stream, k.errors(group)], [group, *ids]))


async def touch_events(client: RedisClient, m: Member, ids: Sequence[str], *, idle_ms: int) -> list[str]:
    """Keeps ``ids`` on the consumer (idle set to ``idle_ms``); returns
    those it no longer holds."""
    lost = await TOUCH_EVENTS.run(client, [m.keys.stream], [m.group, m.consumer, idle_ms, *ids])
    return [text(i) for i in lost]


async def claim_events(
    client: RedisClient,
    m: Member,
    *,
    min_idle_ms: int,
    cursor: str,
    count: int,
    dead_letter_cap: int,
) -> Claimed:
    """Takes over up to ``count`` entries pending longer than ``min_idle_ms``."""
    nxt, claimed, dead = await CLAIM_EVENTS.run(
        client, _three(m), [m.group, m.consumer, min_idle_ms, cursor, count, dead_letter_cap]
    )
    return Claimed(
        text(nxt),
        [(text(i), bool(clean)) for i, clean in claimed],
        [(text(i), text(t), text(e), text(r)) for i, t, e, r in dead],
    )


async def start_event(
    client: RedisClient,
    m: Member,
    entry_id: str,
    *,
    max_deliveries: int,
    dead_letter_cap: int,
) -> Started:
    """Counts a delivery of ``entry_id`` and reads it, or dead-letters it
    when out of deliveries."""
    reply = await START_EVENT.run(
        client, _three(m), [m.group, m.consumer, entry_id, max_deliveries, dead_letter_cap]
    )
    code = int(reply[0])
    if code == 1:
        flat = reply[2]
        return Started(1, int(reply[1]), {text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)})
    if code == 2:
        return Started(2, type=text(reply[1]), error=text(reply[2]), reason=text(reply[3]))
    return Started(code)


async def fail_event(
    client: RedisClient,
    m: Member,
    entry_id: str,
    *,
    max_deliveries: int,
    idle_ms: int,
    error: str,
    traceback: str,
    dead_letter_cap: int,
    at_once: bool,
    reason: str,
) -> int:
    """Records a failed delivery: 0 not pending on this consumer, 1 left
    for a retry, 2 dead-lettered."""
    return int(
        await FAIL_EVENT.run(
            client,
            _three(m),
            [
                m.group,
                m.consumer,
                entry_id,
                max_deliveries,
                idle_ms,
                error,
                traceback,
                dead_letter_cap,
                "1" if at_once else "0",
                reason,
            ],
        )
    )


async def forget_consumer(client: RedisClient, m: Member) -> bool:
    """Takes the consumer off its group unless it still holds entries."""
    return bool(await FORGET_CONSUMER.run(client, [m.keys.stream], [m.group, m.consumer]))


async def replay_dead_events(
    client: RedisClient, k: StreamKeys, ids: Sequence[str], *, max_length: int, trim: str
) -> list[str | None]:
    """Publishes dead letters again; per id its new entry id, or None
    (not dead-lettered, or no data to replay)."""
    raw = await REPLAY_DEAD_EVENTS.run(client, [k.stream, k.dead], [max_length, trim, *ids])
    return [None if text(r) in ("", "-") else text(r) for r in raw]


async def report_progress(
    client: RedisClient,
    status_key: str,
    active_index: str,
    subject: str,
    *,
    stage: str,
    percent: float,
    message: str,
    extra: bytes,
    job_id: str,
    now: Arg,
    retention_ms: int,
    channel: str,
    finished: bool,
    options: str,
) -> Any:
    """Stores and publishes a subject's status; returns the status JSON."""
    return await REPORT_PROGRESS.run(
        client,
        [status_key, active_index],
        [
            subject,
            stage,
            percent,
            message,
            extra,
            job_id,
            now,
            retention_ms,
            channel,
            "1" if finished else "0",
            options,
        ],
    )
