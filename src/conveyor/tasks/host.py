"""What tasks and their contexts see of the app and the queue they belong
to: :class:`TaskApp` (a :class:`~conveyor.tasks.app.Conveyor`) and
:class:`TaskHome` (a :class:`~conveyor.tasks.queue.TaskQueue`). Tasks are
written against these, so the app and its queues import the tasks, and
the tasks import neither."""

from __future__ import annotations

from typing import Protocol

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.flows import FlowJob, FlowNode
from conveyor.engine.queue import Queue
from conveyor.realtime.progress import ProgressBus


class TaskApp(Protocol):
    """The app, as a task or its context (``ctx.app``) uses it."""

    #: Adds run tasks in the calling process instead of queueing them.
    eager: bool
    prefix: str

    @property
    def redis(self) -> RedisClient: ...

    @property
    def progress(self) -> ProgressBus: ...

    async def add_flow(self, flow: FlowJob) -> FlowNode: ...


class TaskHome(Protocol):
    """A task's queue (``task.queue``): its name, the engine's queue
    underneath and the app."""

    @property
    def name(self) -> str: ...

    @property
    def queue(self) -> Queue: ...

    @property
    def app(self) -> TaskApp: ...
