"""Turning the ending of one handler call into an outcome for Redis.

Outcome rows are the 7 fields ``finish_jobs.lua`` takes per job: id, token,
kind ('c' completed, 'r' retry, 'f' failed, 'x' handed back, 'l' rate
limited: handed back and the queue held for delay ms), value, delay ms,
keep count, keep age ms.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.engine.backoff import Custom
from conveyor.engine.codec import dumps
from conveyor.engine.job import JobContext
from conveyor.engine.procpool import HandlerFailed, ProcessJob, describe_error
from conveyor.engine.threads import HandlerAborted
from conveyor.errors import MAX_SECONDS, Discard, PayloadError, RateLimited, Retry

log = logging.getLogger("conveyor.worker")

#: A worker's handler: ``async def`` or plain ``def`` taking a JobContext, or,
#: with ``executor="process"``, a module-level ``def`` taking a ProcessJob.
Handler = Callable[[JobContext], Awaitable[Any]] | Callable[[JobContext], Any] | Callable[[ProcessJob], Any]
BackoffFn = Callable[[int, BaseException], float | None]
Row = list[str | bytes | int]

MAX_TRACEBACK = 16 * 1024


@dataclass(slots=True)
class Ending:
    """How a handler call ended, before it is written to Redis."""

    kind: str  # 'c' 'r' 'f' 'x' 'l' or '' (lease lost: write nothing)
    value: bytes | str = b""
    delay_ms: int = 0
    error: str = ""


def attempt_entry(ctx: JobContext, error: str, tb: str) -> str:
    """The JSON history entry of a failed attempt."""
    if len(tb) > MAX_TRACEBACK:
        tb = tb[:MAX_TRACEBACK] + "\n... (truncated)"
    entry = {"attempt": ctx.attempt, "error": error, "traceback": tb, "at": int(time.time() * 1000)}
    return dumps(entry).decode()


def failure(
    ctx: JobContext,
    exc: BaseException,
    strategies: Mapping[str, BackoffFn],
    retryable: Callable[[BaseException], bool] | None = None,
) -> Ending:
    """Retry or final failure for an exception raised by the handler;
    ``retryable(exc)`` returning False makes the failure final (a classifier
    that raises counts as retryable). RateLimited hands the job back
    without using an attempt and holds the queue."""
    if isinstance(exc, RateLimited):
        return Ending("l", b"", max(0, round(exc.retry_after * 1000)), error=str(exc))
    if isinstance(exc, HandlerAborted) and exc.__cause__ is not None:
        exc = exc.__cause__  # reported as what the handler raised
    remote_tb = getattr(exc, "remote_traceback", None)
    if remote_tb is not None:  # raised in a pool process: report its own text and traceback
        error, tb = str(exc) if isinstance(exc, HandlerFailed) else describe_error(exc), remote_tb
    else:
        error = describe_error(exc)
        tb = "".join(traceback.format_exception(exc))
    final = (
        isinstance(exc, Discard | PayloadError)
        or ctx.attempt >= ctx.run.attempts
        or (retryable is not None and not isinstance(exc, Retry) and not _classify(retryable, exc))
    )
    delay: float | None = 0.0
    if not final:
        if isinstance(exc, Retry) and exc.delay is not None:
            delay = exc.delay
        elif isinstance(ctx.run.backoff, Custom):
            fn = strategies.get(ctx.run.backoff.name)
            if fn is None:
                error += f" (and no backoff strategy named {ctx.run.backoff.name!r})"
                delay = None
            else:
                delay = fn(ctx.attempt, exc)
                if delay is not None and not _sane_delay(delay):
                    error += f" (and backoff strategy {ctx.run.backoff.name!r} gave {delay!r}, not seconds)"
                    delay = None
        elif ctx.run.backoff is not None:
            delay = ctx.run.backoff.delay(ctx.attempt)
        if delay is None:
            final = True
    entry = attempt_entry(ctx, error, tb)
    if final:
        return Ending("f", entry, error=error)
    return Ending("r", entry, round(min(MAX_SECONDS, max(0.0, delay or 0.0)) * 1000), error=error)


def _sane_delay(delay: Any) -> bool:
    return (
        isinstance(delay, int | float) and not isinstance(delay, bool) and math.isfinite(delay) and delay >= 0
    )


def _classify(retryable: Callable[[BaseException], bool], exc: BaseException) -> bool:
    try:
        return bool(retryable(exc))
    except Exception:
        log.exception("the retry classifier raised on %r; retrying", exc)
        return True
