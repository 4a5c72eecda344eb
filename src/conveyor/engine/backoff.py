"""Retry backoff strategies: how long a failed job waits before its next attempt."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from conveyor.errors import MAX_SECONDS, InvalidJobOptions, check_seconds


class Backoff(ABC):
    """A retry delay strategy, stored with the job as a small JSON object."""

    @abstractmethod
    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""

    @abstractmethod
    def to_wire(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Fixed(Backoff):
    """The same delay before every retry."""

    seconds: float

    def __post_init__(self) -> None:
        check_seconds(self.seconds, "Fixed backoff seconds")

    def delay(self, attempt: int) -> float:
        return self.seconds

    def to_wire(self) -> dict[str, Any]:
        return {"t": "fixed", "s": self.seconds}


@dataclass(frozen=True, slots=True)
class Exponential(Backoff):
    """``base * factor ** (attempt - 1)`` seconds, capped at ``max``.

    With ``jitter`` the delay is drawn uniformly from [delay/2, delay] ("equal
    jitter"), so retries of many jobs failing together spread out.
    """

    base: float = 1.0
    factor: float = 2.0
    max: float | None = None
    jitter: bool = False

    def __post_init__(self) -> None:
        check_seconds(self.base, "Exponential backoff base")
        if (
            isinstance(self.factor, bool)
            or not isinstance(self.factor, int | float)
            or not 1 <= self.factor <= 1000
        ):
            raise InvalidJobOptions("Exponential backoff factor must be a number from 1 to 1000")
        if self.max is not None:
            check_seconds(self.max, "Exponential backoff max")

    def delay(self, attempt: int) -> float:
        """Never more than ``max`` (or ten years), however many attempts."""
        try:
            d = self.base * self.factor ** max(0, attempt - 1)
        except OverflowError:
            d = MAX_SECONDS
        d = min(d, MAX_SECONDS if self.max is None else self.max)
        if self.jitter:
            d = random.uniform(d / 2, d)
        return d

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"t": "exp", "s": self.base, "f": self.factor}
        if self.max is not None:
            wire["m"] = self.max
        if self.jitter:
            wire["j"] = 1
        return wire


@dataclass(frozen=True, slots=True)
class Custom(Backoff):
    """A strategy registered on the worker by name: ``Worker(...,
    backoff_strategies={"name": fn})`` where ``fn(attempt, error)`` returns
    seconds, or ``None`` to stop retrying."""

    name: str

    def delay(self, attempt: int) -> float:
        raise NotImplementedError("custom backoff is computed by the worker's strategy")

    def to_wire(self) -> dict[str, Any]:
        return {"t": "custom", "n": self.name}


def backoff_from_wire(wire: dict[str, Any]) -> Backoff:
    kind = wire.get("t")
    if kind == "fixed":
        return Fixed(float(wire["s"]))
    if kind == "exp":
        return Exponential(
            base=float(wire["s"]),
            factor=float(wire.get("f", 2.0)),
            max=wire.get("m"),
            jitter=bool(wire.get("j")),
        )
    if kind == "custom":
        return Custom(str(wire["n"]))
    raise InvalidJobOptions(f"unknown backoff {wire!r}")
