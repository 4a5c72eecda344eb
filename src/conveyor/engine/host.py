"""What a worker's run uses of the worker it runs for, drawn as a protocol,
so that the run (:mod:`conveyor.engine.dispatch`) does not import the
:class:`~conveyor.Worker` that makes it."""

from __future__ import annotations

from typing import Protocol

from conveyor.engine.dlq import DeadLetterHook
from conveyor.engine.execution import Execution
from conveyor.engine.job import Reporter


class Host(Reporter, Protocol):
    """What a run uses of the worker it runs for (a :class:`~conveyor.Worker` is one)."""

    id: str
    concurrency: int
    block_timeout: float
    lock_ms: int
    execution: Execution
    on_dead_letter: DeadLetterHook | None
    processed: int
    failed: int
