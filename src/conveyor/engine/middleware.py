"""Middleware: code of your own around a queue's jobs, on the producer's
side (each job added) and on the worker's (each run of a handler).

Subclass :class:`Middleware` and override what you need; give instances to
``Conveyor(middleware=[...])``, or to the low-level ``Queue(...,
middleware=...)`` (adds) and ``Worker(..., middleware=...)`` (runs; by
default the queue's). Several run in order for ``enqueue``, ``before`` and
``around`` (the first is outermost), and in reverse for ``after`` and
``failed``.

- ``enqueue`` sees every job before it is written (``Queue.add``,
  ``add_bulk``, a task's ``enqueue``, a flow's nodes) and may add headers,
  which the job carries to each of its runs (``job.headers``). It is not
  called for a schedule's ticks, which Redis adds by itself.
- ``before`` and ``around`` are part of the run: an exception they raise
  fails the attempt like the handler's own (and is retried like it).
  ``around`` returns an async context manager held across the handler
  call (a tracing span, a database session, a timer); it sees the
  handler's exception on its way out (a ``TimeoutError`` for a timeout,
  the ``CancelledError`` of an operator's cancel or a shutdown).
- ``after`` (the job completed; with the handler's return value) and
  ``failed`` (the attempt failed: ``retrying`` says whether another
  attempt follows) come once the outcome is known and before it is
  recorded; what they raise is logged and changes nothing. A job handed
  back at shutdown or by a rate limit, or whose lease another worker took
  over, gets neither: its attempt is not over.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidArgument, PayloadError

if TYPE_CHECKING:
    from conveyor.engine.job import JobContext
    from conveyor.engine.runner import Ending

log = logging.getLogger("conveyor.worker")


class Middleware:
    """Hooks around a queue's jobs; every method does nothing until
    overridden."""

    def enqueue(self, queue: str, name: str, headers: dict[str, str]) -> None:
        """A job called ``name`` is about to be added to ``queue``: set
        entries of ``headers`` to carry them with it."""

    async def before(self, job: JobContext) -> None:
        """A run of ``job`` is about to call its handler."""

    def around(self, job: JobContext) -> AbstractAsyncContextManager[None]:
        """A context manager held across the handler call of ``job``."""
        return contextlib.nullcontext()

    async def after(self, job: JobContext, result: Any) -> None:
        """``job`` completed with ``result`` (as stored: JSON values)."""

    async def failed(self, job: JobContext, error: BaseException, retrying: bool) -> None:
        """An attempt of ``job`` failed with ``error``; ``retrying``: another
        attempt follows (else the job failed for good)."""


def check_middleware(middleware: Sequence[Middleware] | None) -> tuple[Middleware, ...]:
    """``middleware`` as a tuple; InvalidArgument for anything that is not
    a Middleware."""
    found = tuple(middleware or ())
    for each in found:
        if not isinstance(each, Middleware):
            raise InvalidArgument(f"middleware must be Middleware instances, not {each!r}")
    return found


def stamp_headers(
    middleware: tuple[Middleware, ...], queue: str, name: str, options: dict[str, Any]
) -> dict[str, Any]:
    """``options`` with the headers the middleware set for a job called
    ``name`` (the caller's own headers first; a middleware may overwrite)."""
    if not middleware:
        return options
    given = options.get("headers")
    if given is not None and not isinstance(given, Mapping):
        return options  # JobOptions refuses it with a clear message
    headers = dict(given or {})
    for each in middleware:
        each.enqueue(queue, name, headers)
    return {**options, "headers": headers} if headers else options


@dataclass(frozen=True, slots=True)
class Plan:
    """The hooks of a middleware list that do something, by phase (a hook
    left as Middleware's own costs nothing per run)."""

    before: tuple[Middleware, ...] = ()
    around: tuple[Middleware, ...] = ()
    #: after and failed run in reverse order
    after: tuple[Middleware, ...] = ()
    failed: tuple[Middleware, ...] = ()

    @classmethod
    def of(cls, middleware: tuple[Middleware, ...]) -> Plan:
        def overriding(hook: str) -> tuple[Middleware, ...]:
            return tuple(m for m in middleware if getattr(type(m), hook) is not getattr(Middleware, hook))

        return cls(
            overriding("before"),
            overriding("around"),
            tuple(reversed(overriding("after"))),
            tuple(reversed(overriding("failed"))),
        )

    @property
    def wraps(self) -> bool:
        """Something runs before the handler."""
        return bool(self.before or self.around)

    @property
    def settles(self) -> bool:
        """Something runs once the outcome is known."""
        return bool(self.after or self.failed)


async def entered(plan: Plan, job: JobContext, stack: AsyncExitStack) -> None:
    """Runs each ``before`` and enters each ``around`` on ``stack``."""
    for each in plan.before:
        await each.before(job)
    for each in plan.around:
        await stack.enter_async_context(each.around(job))


async def settled(
    plan: Plan, job: JobContext, ending: Ending, result: Any, error: BaseException | None
) -> None:
    """``after`` (the job completed) or ``failed`` (the attempt failed), in
    reverse order; what they raise is logged."""
    kind = ending.kind
    if kind not in ("c", "r", "f"):
        return
    if kind != "c" and error is None:  # the result could not be stored, say
        error = PayloadError(ending.error)
    for each in plan.after if kind == "c" else plan.failed:
        try:
            if kind == "c":
                await each.after(job, result)
            else:
                assert error is not None
                await each.failed(job, error, kind == "r")
        except Exception:
            log.exception(
                "job %s: middleware %s raised after the run; the outcome stands",
                job.id,
                type(each).__name__,
                extra={"event": "middleware_failed", "job_id": job.id},
            )
