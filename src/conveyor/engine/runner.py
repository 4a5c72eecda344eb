"""Running one handler call and turning its ending into an outcome for Redis.

Outcome rows are the 7 fields ``finish_jobs.lua`` takes per job: id, token,
kind ('c' completed, 'r' retry, 'f' failed, 'x' handed back, 'l' rate
limited: handed back and the queue held for delay ms), value, delay ms,
keep count, keep age ms.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from conveyor.engine.backoff import Custom
from conveyor.engine.codec import dumps, loads
from conveyor.engine.job import JobContext
from conveyor.errors import Discard, HandlerSignal, PayloadError, RateLimited, Retry

log = logging.getLogger("conveyor.worker")

Handler = Callable[[JobContext], Awaitable[Any]] | Callable[[JobContext], Any]
BackoffFn = Callable[[int, BaseException], float | None]
Row = list[str | bytes | int]

MAX_TRACEBACK = 16 * 1024


class HandBack(Exception):
    """Internal: the worker is shutting down and gives the job back."""


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


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


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
        elif ctx.run.backoff is not None:
            delay = ctx.run.backoff.delay(ctx.attempt)
        if delay is None:
            final = True
    entry = attempt_entry(ctx, error, tb)
    if final:
        return Ending("f", entry, error=error)
    return Ending("r", entry, int(max(0.0, delay or 0.0) * 1000), error=error)


def _classify(retryable: Callable[[BaseException], bool], exc: BaseException) -> bool:
    try:
        return bool(retryable(exc))
    except Exception:
        log.exception("the retry classifier raised on %r; retrying", exc)
        return True


class HandlerFailed(Exception):
    """Internal: a handler running in a pool process raised (its text is
    the original ``Type: message``)."""

    remote_traceback: str | None = None


def process_entry(module: str, qualname: str, ctx_json: bytes) -> bytes:
    """Runs a handler in a pool process. Only JSON crosses the boundary, in
    both directions: an exception comes back as its text and traceback."""
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        result = target(ProcessJob(**loads(ctx_json)))
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        try:
            return dumps({"result": result})
        except PayloadError as exc:
            return dumps(
                {"signal": "payload", "message": f"handler result is not JSON: {exc}", "traceback": ""}
            )
    except Exception as exc:
        out: dict[str, Any] = {
            "error": describe_error(exc),
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }
        if isinstance(exc, Discard):
            out["signal"] = "discard"
        elif isinstance(exc, Retry):
            out["signal"], out["delay"] = "retry", exc.delay
        elif isinstance(exc, RateLimited):
            out["signal"], out["delay"] = "limited", exc.retry_after
        return dumps(out)


def _from_process(raw: bytes) -> Any:
    out = loads(raw)
    if "result" in out:
        return out["result"]
    signal, message = out.get("signal"), out.get("message", "")
    exc: HandlerFailed | HandlerSignal
    if signal == "payload":
        raise PayloadError(message)
    if signal == "limited":
        raise RateLimited(out.get("delay") or 0.0)
    if signal == "discard":
        exc = Discard(message)
    elif signal == "retry":
        exc = Retry(message, delay=out.get("delay"))
    else:
        exc = HandlerFailed(out.get("error", message))
    exc.remote_traceback = out.get("traceback", "")
    raise exc


@dataclass(slots=True)
class ProcessJob:
    """What a handler running in a process pool receives."""

    id: str
    name: str
    data: Any
    attempt: int
    queue: str


async def call_handler(
    handler: Handler, is_async: bool, ctx: JobContext, executor: Executor | None, in_process: bool
) -> Any:
    """Calls the handler the way it wants to be called and returns its result."""
    if is_async:
        return await handler(ctx)
    loop = asyncio.get_running_loop()
    if in_process:
        info = {"id": ctx.id, "name": ctx.name, "data": ctx.data, "attempt": ctx.attempt, "queue": ctx.queue}
        raw = await loop.run_in_executor(
            executor, process_entry, handler.__module__, handler.__qualname__, dumps(info)
        )
        return _from_process(raw)
    return await loop.run_in_executor(executor, handler, ctx)
