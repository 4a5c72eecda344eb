"""Queue-wide limits: a rate limit and a concurrency cap that hold across
every worker process, kept in Redis and enforced by the claim script."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from conveyor.errors import InvalidJobOptions, check_seconds


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max`` jobs started in any window of ``per`` seconds.

    The window slides: however the starts fall, no span of ``per`` seconds
    holds more than ``max`` of them. ``per`` is kept to the millisecond.
    """

    max: int
    per: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.max, bool) or not isinstance(self.max, int) or self.max < 1:
            raise InvalidJobOptions(f"RateLimit.max must be an int >= 1, not {self.max!r}")
        per = check_seconds(self.per, "RateLimit.per")
        if per < 0.001:
            raise InvalidJobOptions(f"RateLimit.per must be at least 0.001 seconds, not {per!r}")

    @property
    def per_ms(self) -> int:
        return round(self.per * 1000)

    def to_wire(self) -> str:
        return f"{self.max}:{self.per_ms}"


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The limits a queue runs under, as stored in Redis."""

    rate_limit: RateLimit | None
    concurrency: int | None
    held_until: datetime | None
    group_rate_limit: RateLimit | None = None
    group_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One group of a queue: its waiting and active jobs, and whether it
    has a turn in line ('ready'), sits at its concurrency limit ('parked'),
    waits for its rate window ('held'), or has nothing waiting ('idle')."""

    name: str
    waiting: int
    active: int
    state: str


def check_concurrency(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidJobOptions(f"global concurrency must be an int >= 1 or None, not {value!r}")
    return value
