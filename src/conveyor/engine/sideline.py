"""Work a worker's run does beside its loop: the ``on_dead_letter`` hook,
the end of a job's progress, a flow's relay. Each runs as a task of its
own, so a slow hook never holds up claiming; what is left when the run
stops is awaited on its way out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from conveyor.engine.dlq import DeadLetteredJob, DeadLetterHook

log = logging.getLogger("conveyor.worker")


class Sideline:
    """The tasks running beside one run of a worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs ``work`` beside the loop; :meth:`finish` waits for it."""
        task = self.loop.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def dead_letter(self, hook: DeadLetterHook, letter: DeadLetteredJob) -> None:
        """Calls the worker's ``on_dead_letter`` hook (its errors are logged)."""

        async def call() -> None:
            try:
                await hook(letter)
            except Exception:
                log.exception("on_dead_letter hook failed for job %s", letter.job_id)

        self.start(call())

    def progress_end(self, report: Awaitable[Any], job_id: str) -> None:
        """Awaits the progress hook's word that a job ended (its errors are
        logged: progress is a mirror, the job's outcome stands)."""

        async def end() -> None:
            try:
                await report
            except Exception as exc:
                log.warning("job %s: could not end its progress: %s", job_id, exc)

        self.start(end())

    async def finish(self) -> None:
        """Waits for every task still running."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
