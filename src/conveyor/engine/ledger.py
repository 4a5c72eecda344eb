"""What a worker's run owes Redis: the lease tokens of the jobs it holds,
the outcome rows not yet written, and the dead letters to announce once
their job's row is written."""

from __future__ import annotations

import asyncio
import logging

from conveyor.engine.codes import Reply
from conveyor.engine.dlq import DeadLetteredJob
from conveyor.engine.execution import Run, log_ending
from conveyor.engine.host import Host
from conveyor.engine.runner import Ending, Row
from conveyor.engine.sideline import Sideline

log = logging.getLogger("conveyor.worker")


class Ledger:
    """Tokens (job id -> lease token, read by the lease keeper), outcome
    rows waiting for a call, and dead letters waiting for their row."""

    def __init__(self, worker: Host, queue_name: str, sideline: Sideline, wake: asyncio.Event) -> None:
        self.worker = worker
        self.queue_name = queue_name
        self.sideline = sideline
        self.wake = wake
        #: A stopping worker gave up writing to an unreachable Redis.
        self.given_up = False
        self.tokens: dict[str, str] = {}
        self.outcomes: list[Row] = []
        self.letters: dict[str, DeadLetteredJob] = {}

    def owe(self, run: Run, ending: Ending) -> None:
        """Books how a job ended (``ending.kind`` not ''): a row to write,
        counted on the worker; a job failed for good also owes its dead
        letter."""
        ctx = run.ctx
        kind = ending.kind
        worker = self.worker
        if kind == "c":
            keep = ctx.run.keep_completed
            worker.processed += 1
        else:
            keep = ctx.run.keep_failed
            if kind in ("r", "f"):
                worker.failed += 1
            if kind == "f" and keep[0] != 0 and worker.on_dead_letter is not None:
                self.letters[ctx.id] = DeadLetteredJob(
                    self.queue_name, ctx.id, ctx.name, ending.error, ctx.attempt
                )
        if log.isEnabledFor(logging.INFO if kind != "f" else logging.WARNING):
            log_ending(self.queue_name, run, ending)
        self.outcomes.append([ctx.id, ctx.token, kind, ending.value, ending.delay_ms, keep[0], keep[1]])

    def settle(self, rows: list[Row], codes: list[int]) -> None:
        """Rows written (``codes``: finish_jobs's, one per row): their jobs
        are no longer held; progress ends and dead letters go out for those
        applied, and a rejected one is logged."""
        tokens = self.tokens
        letters = self.letters
        ended = getattr(self.worker.progress_hook, "job_ended", None)
        for row, code in zip(rows, codes, strict=True):
            job_id = str(row[0])
            tokens.pop(job_id, None)
            if ended is not None and code >= 0 and row[2] in ("c", "f"):
                report = ended(self.queue_name, job_id, row[2] == "c")
                if report is not None:
                    self.sideline.progress_end(report, job_id)
            if letters and (letter := letters.pop(job_id, None)) is not None and code >= 0:
                self.notify_dead_letter(letter)
            if code < 0 and log.isEnabledFor(logging.WARNING):
                log.warning(
                    "job %s: outcome rejected (%s)",
                    job_id,
                    "lock superseded" if code == Reply.SUPERSEDED else "job gone",
                    extra={"event": "stale_outcome", "queue": self.queue_name, "job_id": job_id},
                )

    def give_up(self) -> None:
        self.given_up = True
        self.wake.set()

    def abandon(self, inflight: int) -> None:
        """The worker stops while Redis cannot take its outcomes: says which
        jobs will run again (once their lease runs out), and drops the rows."""
        pending = [str(row[0]) for row in self.outcomes]
        if pending or inflight:
            log.error(
                "worker %s: Redis cannot be reached to record %d outcome(s) (jobs %s); "
                "they run again once their lease runs out",
                self.worker.id,
                len(pending),
                ", ".join(pending[:20]) or "in flight",
                extra={"event": "outcomes_abandoned", "queue": self.queue_name},
            )
        self.outcomes = []

    def notify_dead_letter(self, letter: DeadLetteredJob) -> None:
        """Runs the on_dead_letter hook beside the loop (its errors are logged)."""
        hook = self.worker.on_dead_letter
        if hook is not None:
            self.sideline.dead_letter(hook, letter)
