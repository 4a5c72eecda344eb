"""Handler threads that outlive their jobs. A job stopped by its timeout,
a cancel or a shutdown whose handler runs in a thread cannot stop that
thread: the job stays held (its lease renewed) until the thread ends, and
only then is its ending recorded. A stopping worker waits for such
threads for a grace, then leaves them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

from conveyor.engine.execution import Execution, Run
from conveyor.engine.runner import Ending

log = logging.getLogger("conveyor.worker")


class Overruns:
    """The jobs of one worker run whose handler thread runs on (``runs``,
    by job id), and the end of the grace a stopping worker gives them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        execution: Execution,
        queue_name: str,
        *,
        record: Callable[[Run, Ending], None],
        let_lapse: Callable[[str], object],
        closed: asyncio.Event,
    ) -> None:
        self.loop = loop
        self.execution = execution
        self.queue_name = queue_name
        self.record = record
        self.let_lapse = let_lapse
        self.closed = closed
        self.runs: dict[str, Run] = {}
        self.deadline: float | None = None

    def hold(self, run: Run, ending: Ending | None) -> None:
        """The job was stopped but its handler thread runs on: hold the job
        until the thread ends, then record ``ending`` (None: what the thread
        itself returned or raised)."""
        ctx = run.ctx
        thread = run.thread
        assert thread is not None
        self.runs[ctx.id] = run
        log.warning(
            "job %s: its handler thread is still running (a thread cannot be stopped); "
            "the job stays held until it returns",
            ctx.id,
            extra={"event": "thread_overrun", "queue": self.queue_name, "job_id": ctx.id},
        )

        def on_loop() -> None:
            if self.runs.pop(ctx.id, None) is None:
                return
            if self.closed.is_set():
                self.let_lapse(ctx.id)  # the worker is gone: let the lease lapse
                return
            if run.lease_lost:
                final = Ending("")
            else:
                final = ending if ending is not None else self.execution.thread_ending(ctx, thread)
            self.record(run, final)

        def ended(_: concurrent.futures.Future[Any]) -> None:  # on the handler's thread
            try:
                self.loop.call_soon_threadsafe(on_loop)
            except RuntimeError:  # the event loop is closed: let the lease lapse
                self.let_lapse(ctx.id)

        thread.add_done_callback(ended)

    def grace(self, seconds: float) -> bool:
        """Starts the grace (once): true the first time."""
        if self.deadline is not None:
            return False
        self.deadline = time.monotonic() + seconds
        return True

    def settled(self) -> bool:
        """No handler thread to wait for: none outlived its job, or the
        grace is over."""
        deadline = self.deadline
        return not self.runs or (deadline is not None and time.monotonic() >= deadline)
