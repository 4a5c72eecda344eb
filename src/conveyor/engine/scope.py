"""What the engine's parts use of a queue, drawn as a protocol.

Events, the worker registry, schedules, flows and a job's context each
read a queue's name, client, keys and clock, and nothing else of it; they
take a :class:`QueueScope` instead of the whole :class:`~conveyor.Queue`,
so none of them imports the queue (which imports them).
"""

from __future__ import annotations

from typing import Protocol

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.clock import Clock
from conveyor.engine.keys import QueueKeys


class QueueScope(Protocol):
    """A queue as the parts below it see it (a :class:`~conveyor.Queue` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def redis(self) -> RedisClient: ...

    @property
    def keys(self) -> QueueKeys: ...

    @property
    def clock(self) -> Clock: ...
