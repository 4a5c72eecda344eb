"""Events as handlers see them, and the router that picks a handler by event
type (exact name, then the longest ``prefix.*`` pattern, then ``*``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from conveyor.errors import InvalidArgument

T = TypeVar("T")
#: An event handler: ``async def handle(event: Event[Model]) -> None`` (plain
#: functions run in a thread). Raising fails the delivery.
EventHandler = Callable[["Event[Any]"], Awaitable[None] | None]
H = TypeVar("H", bound=EventHandler)


def stream_time(entry_id: str) -> datetime:
    """When a stream entry was added, from its id (``<ms>-<seq>``)."""
    return datetime.fromtimestamp(int(entry_id.split("-", 1)[0]) / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Event(Generic[T]):
    """One event delivered to a consumer group.

    ``data`` is the decoded JSON payload, validated into the route's model
    when it has one. ``deliveries`` counts the times the group was handed
    this entry (1 on the first). ``replay_of`` is the dead-letter id when the
    event is a replay.
    """

    id: str
    type: str
    data: T
    deliveries: int
    group: str
    consumer: str
    replay_of: str | None = None

    @property
    def time(self) -> datetime:
        """When the event was published (from its stream id)."""
        return stream_time(self.id)


class Route:
    """A handler and, optionally, the type its payload must validate as."""

    __slots__ = ("adapter", "handler", "is_async", "pattern")

    def __init__(self, pattern: str, handler: EventHandler, model: Any = None) -> None:
        self.pattern = pattern
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.adapter: TypeAdapter[Any] | None = TypeAdapter(model) if model is not None else None

    def validate(self, payload: Any) -> Any:
        """The payload as the handler receives it; raises pydantic's
        ValidationError when it does not fit the model."""
        return payload if self.adapter is None else self.adapter.validate_python(payload)

    async def call(self, event: Event[Any], within: float | None) -> None:
        """Runs the handler (a plain one in a thread) within ``within`` seconds."""
        if self.is_async:
            call: Awaitable[Any] = self.handler(event)  # type: ignore[assignment]
        else:
            call = asyncio.to_thread(self.handler, event)
        async with asyncio.timeout(within):
            await call


class EventRouter:
    """Maps event types to handlers. Patterns: an exact type
    (``user.created``), a prefix (``user.*``, matching ``user.created`` and
    ``user.profile.updated``) or ``*`` for everything else."""

    def __init__(self) -> None:
        self._exact: dict[str, Route] = {}
        self._prefixes: list[tuple[str, Route]] = []
        self._fallback: Route | None = None

    def on(self, pattern: str, *, model: Any = None) -> Callable[[H], H]:
        """Decorator: ``@router.on("user.created", model=UserCreated)``."""

        def register(handler: H) -> H:
            self.add(pattern, handler, model=model)
            return handler

        return register

    def add(self, pattern: str, handler: EventHandler, *, model: Any = None) -> None:
        """Registers ``handler`` for ``pattern``; raises ValueError if the
        pattern already has one (two handlers for one type would each need
        their own acknowledgement: use two consumer groups)."""
        if not pattern or any(c.isspace() for c in pattern):
            raise InvalidArgument(f"event pattern {pattern!r} must be non-empty, without whitespace")
        if self.match_exact(pattern) is not None:
            raise InvalidArgument(f"event pattern {pattern!r} already has a handler")
        route = Route(pattern, handler, model)
        if pattern == "*":
            self._fallback = route
        elif pattern.endswith(".*"):
            self._prefixes.append((pattern[:-1], route))
            self._prefixes.sort(key=lambda p: -len(p[0]))
        elif "*" in pattern:
            raise InvalidArgument(f"event pattern {pattern!r}: '*' may only end a pattern, after a dot")
        else:
            self._exact[pattern] = route

    def match_exact(self, pattern: str) -> Route | None:
        if pattern == "*":
            return self._fallback
        if pattern.endswith(".*"):
            return next((r for p, r in self._prefixes if p == pattern[:-1]), None)
        return self._exact.get(pattern)

    def route(self, event_type: str) -> Route | None:
        """The handler for ``event_type``, or None when nothing matches."""
        route = self._exact.get(event_type)
        if route is not None:
            return route
        for prefix, candidate in self._prefixes:
            if event_type.startswith(prefix):
                return candidate
        return self._fallback

    @property
    def patterns(self) -> list[str]:
        out = [*self._exact, *(p + "*" for p, _ in self._prefixes)]
        return [*out, "*"] if self._fallback else out
