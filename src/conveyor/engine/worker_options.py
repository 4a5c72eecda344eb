"""How a worker runs its queue's jobs, as one frozen value checked when it
is made: a :class:`~conveyor.Worker` builds one from its keyword
arguments, and an app's queue (``Conveyor.queue``) declares one for the
workers it starts, so both take the same settings, checked the same way."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD
from conveyor.engine.dlq import DeadLetterHook, RetryClassifier
from conveyor.engine.execution import Executor
from conveyor.errors import InvalidArgument, check_int, check_seconds, is_count

#: A log line longer than this (bytes) is refused by ``JobContext.log``.
DEFAULT_MAX_LOG_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """A worker's settings (see :class:`~conveyor.Worker` for each)."""

    concurrency: int = 10
    lock_duration: float = 10.0
    renew_interval: float | None = None
    stalled_interval: float | None = None
    max_stalled_count: int = 1
    shutdown_grace: float = 30.0
    executor: Executor = "thread"
    processes: int | None = None
    block_timeout: float = 2.0
    flow_sweep_interval: float = 5.0
    thread_grace: float = 5.0
    max_result_size: int = DEFAULT_MAX_PAYLOAD
    max_log_line: int = DEFAULT_MAX_LOG_LINE
    allow_eviction: bool | None = None
    retryable: RetryClassifier | None = None
    on_dead_letter: DeadLetterHook | None = None

    def __post_init__(self) -> None:
        check_int(self.concurrency, "concurrency", 1)
        if self.processes is not None:
            check_int(self.processes, "processes", 1)
        check_int(self.max_stalled_count, "max_stalled_count", 0)
        for what, limit in (("max_result_size", self.max_result_size), ("max_log_line", self.max_log_line)):
            if not is_count(limit, 0):
                raise InvalidArgument(f"{what} must be an int >= 0 (0: no limit)")
        if self.executor not in ("thread", "process"):
            raise InvalidArgument(f"executor must be 'thread' or 'process', not {self.executor!r}")
        check_seconds(self.lock_duration, "lock_duration", positive=True)
        for what, seconds in (
            ("renew_interval", self.renew_interval),
            ("stalled_interval", self.stalled_interval),
            ("block_timeout", self.block_timeout),
            ("flow_sweep_interval", self.flow_sweep_interval),
        ):
            if seconds is not None:
                check_seconds(seconds, what, positive=True)
        check_seconds(self.shutdown_grace, "shutdown_grace")
        check_seconds(self.thread_grace, "thread_grace")
        for hook, what in ((self.on_dead_letter, "on_dead_letter"), (self.retryable, "retryable")):
            if hook is not None and not callable(hook):
                raise InvalidArgument(f"{what} must be callable, not {hook!r}")

    @property
    def lock_ms(self) -> int:
        return int(self.lock_duration * 1000)

    @property
    def renew_every(self) -> float:
        """Seconds between lease renewals (default: a quarter of the lock, at most 1 s)."""
        return self.renew_interval or min(self.lock_duration / 4, 1.0)

    @property
    def stalled_every(self) -> float:
        """Seconds between checks for stalled jobs (default: half the lock)."""
        return self.stalled_interval or max(0.1, self.lock_duration / 2)
