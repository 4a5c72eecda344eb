"""Conveyor's exceptions.

Every exception Conveyor raises derives from :class:`ConveyorError`::

    ConveyorError
    ├── ConnectionFailed        Redis cannot be reached or refused the credentials
    │   ├── OutcomeUnknown      the connection broke before a write was confirmed
    │   └── SlotUnavailable     a cluster slot stayed unavailable (migrating, failing over)
    ├── RedisOutOfMemory        Redis is at maxmemory and refused a write; nothing written
    ├── UnsafeRedis             Redis would lose jobs (evicts keys, lacks a command)
    ├── NotReplicated           a durable add was not confirmed by enough replicas in time
    ├── MissingExtra            a feature needs an optional extra that is not installed (also an ImportError)
    ├── InvalidArgument         an argument Conveyor cannot use; nothing written
    │   ├── InvalidJobOptions   an option is unknown or out of range
    │   │   └── InvalidSchedule a bad cron pattern, time zone or schedule option
    │   └── InvalidTask         a task declared so that its jobs could not run (also a TypeError)
    ├── PayloadError            job data or a result is not JSON-serialisable
    │   ├── PayloadTooLarge     data, a result, progress or a log line over its size limit
    │   └── ResultMismatch      a stored result does not fit its task's return type
    ├── JobNotFound             no job with that id
    ├── JobFailed               an awaited job failed for good
    ├── WaitTimeout             an awaited job did not finish in time (also a TimeoutError)
    ├── JobIsActive             the operation needs a job that is not running
    ├── QueueNotEmpty           obliterate refused: jobs are running
    ├── StaleLease              the caller no longer holds the job's lock
    └── HandlerSignal           raised by handlers to steer what happens next
        ├── Retry               retry after a given delay
        ├── RateLimited         upstream said slow down: hold the whole queue
        │   └── CircuitOpen     a circuit breaker refused the call
        └── Discard             fail at once, no more attempts
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

#: The longest delay, backoff, timeout, TTL or hold Conveyor accepts, in
#: seconds (ten years): past it, times overflow what Redis scores, dates
#: and timers can hold.
MAX_SECONDS = 10 * 365 * 24 * 3600.0


def check_seconds(value: Any, name: str, *, positive: bool = False) -> float:
    """``value`` as a number of seconds, finite, >= 0 (> 0 with
    ``positive``) and at most MAX_SECONDS; raises InvalidJobOptions."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidJobOptions(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidJobOptions(f"{name} must be a finite number of seconds {bound}, not {value!r}")
    if seconds > MAX_SECONDS:
        raise InvalidJobOptions(f"{name} must be at most {MAX_SECONDS:.0f} s (ten years), not {value!r}")
    return seconds


def is_count(value: Any, least: int) -> TypeGuard[int]:
    """Whether ``value`` is an int >= ``least`` (not a bool, not a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_int(value: Any, name: str, least: int) -> int:
    """``value`` as an int >= ``least`` (not a bool, not a float);
    raises InvalidArgument."""
    if not is_count(value, least):
        raise InvalidArgument(f"{name} must be an int >= {least}, not {value!r}")
    return value


class ConveyorError(Exception):
    """Raised when Conveyor cannot do what was asked; the root of all its errors."""


class ConnectionFailed(ConveyorError):
    """Raised when Redis cannot be reached, refuses the credentials, or stays down."""


class OutcomeUnknown(ConnectionFailed):
    """Raised when the connection broke after a write was sent and before
    Redis confirmed it, so it may or may not have happened.

    Adding a job with a ``job_id`` is resent automatically (the id makes it
    idempotent); an add without one raises this, and the caller decides."""


class SlotUnavailable(ConnectionFailed):
    """Raised on a Redis Cluster when a queue's slot stayed unavailable:
    midway through a migration between primaries (Redis answers ``ASK`` or
    ``TRYAGAIN`` to a script whose keys are split between the two) or
    with its primary failing over (``CLUSTERDOWN``). The command did not
    run, so trying it again is safe; workers wait and retry by themselves."""


class RedisOutOfMemory(ConveyorError):
    """Raised when Redis is at its ``maxmemory`` limit (policy
    ``noeviction``) and refuses a change; the change was not made, not even
    in part. Free memory (clean finished jobs, lower retention, raise
    ``maxmemory``) and try again; workers wait and retry by themselves."""


class UnsafeRedis(ConveyorError):
    """Raised when a worker or scheduler is asked to start on a Redis that
    would lose or strand jobs: one whose ``maxmemory-policy`` evicts keys
    (unless eviction was accepted with ``allow_eviction``), or one that does
    not serve a command the engine needs (renamed or disabled)."""


class NotReplicated(ConveyorError):
    """Raised by a durable add (``Queue(durable=...)``) when fewer replicas
    than asked confirmed the write within the timeout. The jobs *were*
    added on the primary (``jobs``), and stay unless a failover loses
    them; adding them again under the same job ids is safe."""

    def __init__(self, jobs: list[Any], acked: int, wanted: int) -> None:
        super().__init__(f"{acked} of {wanted} replicas confirmed the add of {len(jobs)} job(s) in time")
        self.jobs = jobs
        self.acked = acked
        self.wanted = wanted


class MissingExtra(ConveyorError, ImportError):
    """Raised when a feature needs an optional extra that is not installed
    (``conveyor serve`` without ``conveyor[server]``, say); the message
    names the ``pip install`` that brings it."""


class InvalidArgument(ConveyorError, ValueError):
    """Raised for an argument Conveyor cannot use (an event id that is not
    one, say), before anything is written."""


class InvalidJobOptions(InvalidArgument):
    """Raised when a job option is unknown, of the wrong type or out of range."""


class InvalidTask(InvalidArgument, TypeError):
    """Raised where a task is declared when its jobs could never run: no
    ``TaskContext`` first, ``*args``, an argument without a type hint, a
    return type JSON cannot carry, a plain ``def``. (A TypeError too.)"""


class InvalidSchedule(InvalidJobOptions):
    """Raised when a schedule's cron pattern, time zone, interval or limits
    are not valid; nothing is written."""


class PayloadError(ConveyorError, ValueError):
    """Raised when job data or a job result cannot be encoded as JSON."""


class PayloadTooLarge(PayloadError):
    """Raised when encoded job data (or a result, a progress value or a log
    line) is larger than its limit; nothing of it is stored."""

    def __init__(self, size: int, limit: int, what: str = "job data") -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit
        self.what = what


class ResultMismatch(PayloadError):
    """Raised when a finished job's stored result cannot be read back as
    its task's declared return type (the task changed since the job ran,
    say); ``result`` is the stored JSON value."""

    def __init__(self, job_id: str, detail: str, result: Any) -> None:
        super().__init__(f"job {job_id}: its result does not fit the task's return type: {detail}")
        self.job_id = job_id
        self.result = result


class JobNotFound(ConveyorError, LookupError):
    """Raised when no job with the given id exists in the queue."""


class JobFailed(ConveyorError):
    """Raised when a job awaited with ``wait_until_finished`` failed for good;
    carries the job's id, error and traceback."""

    def __init__(self, job_id: str, error: str, traceback: str | None = None) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error
        self.traceback = traceback


class WaitTimeout(ConveyorError, TimeoutError):
    """Raised by ``wait_until_finished`` when the job did not finish within
    the timeout. Nothing changes: the job goes on and may still finish;
    wait again, or cancel it. (A ``TimeoutError`` too, so code catching
    that keeps working.)"""

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout:g} s")
        self.job_id = job_id
        self.timeout = timeout


class JobIsActive(ConveyorError):
    """Raised when an operation needs a job that is not running (cancel it first)."""


class QueueNotEmpty(ConveyorError):
    """Raised when obliterate is refused because jobs are still running."""


class StaleLease(ConveyorError):
    """Raised when a worker acts on a job whose lock it no longer holds.

    Another worker has taken the job over (the lease ran out), so this
    worker's progress, logs and outcome are rejected.
    """


class HandlerSignal(ConveyorError):
    """Raised by a handler to say what should happen to its job."""

    #: Set when the signal was raised in a pool process (``executor="process"``).
    remote_traceback: str | None = None


class Retry(HandlerSignal):
    """Raised when a handler wants its job retried after ``delay`` seconds.

    The retry uses an attempt like any failure; ``delay`` overrides the
    job's backoff for this retry.
    """

    def __init__(self, message: str = "retry requested", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = None if delay is None else check_seconds(delay, "Retry delay")


class RateLimited(HandlerSignal):
    """Raised when a handler hit an upstream rate limit (an HTTP 429 with
    ``Retry-After``, say): its job goes back to the front of waiting without
    using an attempt, and no worker anywhere starts a job of the queue for
    ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        retry_after = check_seconds(retry_after, "retry_after")
        super().__init__(f"{message} (retry after {retry_after:g}s)")
        self.retry_after = retry_after


class CircuitOpen(RateLimited):
    """Raised by a :class:`CircuitBreaker` that is open: the upstream failed
    often enough that no process should call it before ``retry_after``
    seconds. Raised out of a handler, it holds the queue like RateLimited."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(retry_after, f"circuit {name!r} is open")
        self.name = name


class Discard(HandlerSignal):
    """Raised when a handler wants its job failed at once, without retries."""
