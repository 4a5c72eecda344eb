"""Job options: what a producer may ask of a job, validated before anything
is written, and their compact wire form stored with the job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, TypedDict

from conveyor.engine.backoff import Backoff, backoff_from_wire
from conveyor.errors import MAX_SECONDS, InvalidJobOptions, check_seconds

MAX_PRIORITY = 1000
#: A job's headers: at most this many, of at most this many bytes together.
MAX_HEADERS = 64
MAX_HEADERS_SIZE = 16 * 1024


class Priority(IntEnum):
    """Named priority levels; lower numbers run first. Any integer from 0 to
    1000 is accepted too."""

    CRITICAL = 0
    HIGH = 100
    NORMAL = 200
    LOW = 300
    BACKGROUND = 400


@dataclass(frozen=True, slots=True)
class KeepJobs:
    """How many finished jobs to keep, and for how long (seconds).

    ``KeepJobs(count=100, age=3600)`` keeps at most the newest 100 and none
    older than an hour. ``None`` means no bound on that axis.
    """

    count: int | None = None
    age: float | None = None

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 0:
            raise InvalidJobOptions("KeepJobs.count must be >= 0")
        if self.age is not None:
            check_seconds(self.age, "KeepJobs.age", positive=True)

    def to_wire(self) -> list[int]:
        count = -1 if self.count is None else self.count
        age = 0 if self.age is None else max(1, int(self.age * 1000))
        return [count, age]


#: Finished jobs are bounded by default, so they can never fill Redis.
DEFAULT_KEEP_COMPLETED = KeepJobs(count=1000, age=24 * 3600)
DEFAULT_KEEP_FAILED = KeepJobs(count=10_000, age=7 * 24 * 3600)

RetentionSpec = bool | int | KeepJobs | None


@dataclass(frozen=True)
class Durable:
    """A queue whose adds wait until ``replicas`` replicas confirm them
    (Redis ``WAIT``), for at most ``timeout`` seconds; fewer in time raises
    :class:`~conveyor.errors.NotReplicated`. It narrows what a failover can
    lose to writes no confirming replica had; it is not a consensus commit."""

    replicas: int = 1
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int) or self.replicas < 1:
            raise InvalidJobOptions("Durable needs replicas >= 1")
        check_seconds(self.timeout, "Durable timeout", positive=True)

    @property
    def wait_ms(self) -> int:
        return max(1, round(self.timeout * 1000))


def _keep(value: RetentionSpec, default: KeepJobs, name: str) -> KeepJobs:
    if value is None or value is False:
        return default
    if value is True:
        return KeepJobs(count=0)
    if isinstance(value, KeepJobs):
        return value
    if isinstance(value, int) and value >= 0:
        return KeepJobs(count=value)
    raise InvalidJobOptions(f"{name} must be True, a count >= 0 or KeepJobs(...), not {value!r}")


class JobOptionsDict(TypedDict, total=False):
    """Keyword options accepted by ``Queue.add``."""

    priority: int
    delay: float | timedelta
    run_at: datetime
    attempts: int
    backoff: Backoff | float | None
    timeout: float | None
    job_id: str
    remove_on_complete: RetentionSpec
    remove_on_fail: RetentionSpec
    lifo: bool
    keep_logs: int
    dedup_key: str
    dedup_ttl: float | timedelta | None
    debounce: bool
    group: str
    headers: Mapping[str, str]


_KNOWN = frozenset(JobOptionsDict.__annotations__)


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Validated options of one job."""

    priority: int = Priority.NORMAL
    delay_ms: int = 0
    run_at_ms: int | None = None
    attempts: int = 1
    backoff: Backoff | None = None
    timeout: float | None = None
    job_id: str | None = None
    keep_completed: KeepJobs = DEFAULT_KEEP_COMPLETED
    keep_failed: KeepJobs = DEFAULT_KEEP_FAILED
    lifo: bool = False
    keep_logs: int = 1000
    dedup_key: str | None = None
    dedup_ttl_ms: int = 0
    debounce: bool = False
    group: str | None = None
    #: Text carried with the job to each of its runs (trace context, a tenant...).
    headers: tuple[tuple[str, str], ...] = ()
    wire: str = field(default="", compare=False)

    @classmethod
    def build(cls, options: dict[str, Any], defaults: dict[str, Any] | None = None) -> JobOptions:
        """Validates keyword options (over the queue's defaults).

        Raises InvalidJobOptions for an unknown option or a bad value.
        """
        unknown = set(options) - _KNOWN
        if defaults:
            unknown |= set(defaults) - _KNOWN
            options = {**defaults, **options}
        if unknown:
            raise InvalidJobOptions(f"unknown job option(s): {', '.join(sorted(unknown))}")
        priority = options.get("priority", Priority.NORMAL)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidJobOptions(f"priority must be an int or Priority, not {priority!r}")
        if not 0 <= priority <= MAX_PRIORITY:
            raise InvalidJobOptions(f"priority must be between 0 and {MAX_PRIORITY}")
        delay_ms = _delay_ms(options.get("delay", 0))
        run_at_ms = None
        if "run_at" in options and options["run_at"] is not None:
            if delay_ms:
                raise InvalidJobOptions("give either delay or run_at, not both")
            run_at_ms = _run_at_ms(options["run_at"])
        attempts = options.get("attempts", 1)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidJobOptions(f"attempts must be an int >= 1, not {attempts!r}")
        backoff = _backoff(options.get("backoff"))
        timeout = options.get("timeout")
        if timeout is not None:
            timeout = check_seconds(timeout, "timeout", positive=True)
        job_id = options.get("job_id")
        if job_id is not None:
            if not isinstance(job_id, str) or not job_id or len(job_id) > 512:
                raise InvalidJobOptions("job_id must be a non-empty string of at most 512 chars")
            if job_id.isdigit():
                raise InvalidJobOptions("job_id must not be all digits (reserved for auto ids)")
            if job_id.startswith("repeat:"):
                raise InvalidJobOptions("job_id must not start with 'repeat:' (reserved for schedule ticks)")
            if "/" in job_id or job_id in (".", "..") or not job_id.isprintable():
                raise InvalidJobOptions(
                    f"job_id {job_id!r} must be printable, without '/', and not '.' or '..' "
                    "(it is a path segment of the API)"
                )
        keep_logs = options.get("keep_logs", 1000)
        if isinstance(keep_logs, bool) or not isinstance(keep_logs, int) or keep_logs < 0:
            raise InvalidJobOptions("keep_logs must be an int >= 0")
        lifo = options.get("lifo", False)
        if not isinstance(lifo, bool):
            raise InvalidJobOptions("lifo must be a bool")
        dedup_key, dedup_ttl_ms, debounce = _dedup(options)
        group = options.get("group")
        if group is not None and (not isinstance(group, str) or not group or len(group) > 256):
            raise InvalidJobOptions("group must be a non-empty string of at most 256 chars")
        opts = cls(
            priority=int(priority),
            delay_ms=delay_ms,
            run_at_ms=run_at_ms,
            attempts=attempts,
            backoff=backoff,
            timeout=float(timeout) if timeout is not None else None,
            job_id=job_id,
            keep_completed=_keep(
                options.get("remove_on_complete"), DEFAULT_KEEP_COMPLETED, "remove_on_complete"
            ),
            keep_failed=_keep(options.get("remove_on_fail"), DEFAULT_KEEP_FAILED, "remove_on_fail"),
            lifo=lifo,
            keep_logs=keep_logs,
            dedup_key=dedup_key,
            dedup_ttl_ms=dedup_ttl_ms,
            debounce=debounce,
            group=group,
            headers=_headers(options.get("headers")),
        )
        object.__setattr__(opts, "wire", opts._to_wire())
        return opts

    def _to_wire(self) -> str:
        """The options a worker needs, those at their defaults left out
        (``{}`` for a job of all defaults: it stores no options at all)."""
        from conveyor.engine.codec import dumps

        wire: dict[str, Any] = {}
        if self.attempts != 1:
            wire["a"] = self.attempts
        if self.keep_completed != DEFAULT_KEEP_COMPLETED:
            wire["rc"] = self.keep_completed.to_wire()
        if self.keep_failed != DEFAULT_KEEP_FAILED:
            wire["rf"] = self.keep_failed.to_wire()
        if self.backoff is not None:
            wire["b"] = self.backoff.to_wire()
        if self.timeout is not None:
            wire["t"] = self.timeout
        if self.keep_logs != 1000:
            wire["kl"] = self.keep_logs
        if self.headers:
            wire["h"] = dict(self.headers)
        return dumps(wire).decode()


def with_defaults(wire: dict[str, Any]) -> dict[str, Any]:
    """A job's stored options with those left out at their defaults put
    back (attempts, retention), as a reader expects to see them."""
    return {
        "a": 1,
        "rc": DEFAULT_KEEP_COMPLETED.to_wire(),
        "rf": DEFAULT_KEEP_FAILED.to_wire(),
        **wire,
    }


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The part of a job's options a worker needs, read back from its wire form."""

    attempts: int
    backoff: Backoff | None
    timeout: float | None
    keep_completed: tuple[int, int]
    keep_failed: tuple[int, int]
    keep_logs: int
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: str) -> RunOptions:
        """Decodes (and caches: most jobs of a queue share their options)."""
        cached = _RUN_CACHE.get(raw)
        if cached is None:
            from conveyor.engine.codec import loads

            cached = cls.from_wire(loads(raw) if raw else {})
            if len(_RUN_CACHE) > 4096:
                _RUN_CACHE.clear()
            _RUN_CACHE[raw] = cached
        return cached

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> RunOptions:
        rc = wire.get("rc") or DEFAULT_KEEP_COMPLETED.to_wire()
        rf = wire.get("rf") or DEFAULT_KEEP_FAILED.to_wire()
        b = wire.get("b")
        h = wire.get("h")
        return cls(
            attempts=int(wire.get("a", 1)),
            backoff=backoff_from_wire(b) if b is not None else None,
            timeout=wire.get("t"),
            keep_completed=(int(rc[0]), int(rc[1])),
            keep_failed=(int(rf[0]), int(rf[1])),
            keep_logs=int(wire.get("kl", 1000)),
            headers={str(k): str(v) for k, v in h.items()} if isinstance(h, dict) else {},
        )


_RUN_CACHE: dict[str, RunOptions] = {}


def _delay_ms(delay: Any, name: str = "delay") -> int:
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    return round(check_seconds(delay, name) * 1000)


def _run_at_ms(run_at: Any) -> int:
    """A run_at from the Unix epoch to ten years from now, in ms."""
    if not isinstance(run_at, datetime):
        raise InvalidJobOptions("run_at must be a datetime")
    if run_at.tzinfo is None:
        run_at = run_at.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    if run_at < datetime(1970, 1, 2, tzinfo=UTC):
        raise InvalidJobOptions(f"run_at must be after 1970, not {run_at.isoformat()}")
    if run_at - now > timedelta(seconds=MAX_SECONDS):
        raise InvalidJobOptions(f"run_at must be within ten years from now, not {run_at.isoformat()}")
    return int(run_at.timestamp() * 1000)


def _dedup(options: dict[str, Any]) -> tuple[str | None, int, bool]:
    key = options.get("dedup_key")
    ttl = options.get("dedup_ttl")
    debounce = options.get("debounce", False)
    if not isinstance(debounce, bool):
        raise InvalidJobOptions("debounce must be a bool")
    if key is None:
        if ttl is not None or debounce:
            raise InvalidJobOptions("dedup_ttl and debounce need a dedup_key")
        return None, 0, False
    if not isinstance(key, str) or not key or len(key) > 512:
        raise InvalidJobOptions("dedup_key must be a non-empty string of at most 512 chars")
    ttl_ms = 0
    if ttl is not None:
        ttl_ms = _delay_ms(ttl, "dedup_ttl")
        if ttl_ms <= 0:
            raise InvalidJobOptions("dedup_ttl must be > 0 seconds (or None: until the job finishes)")
    return key, ttl_ms, debounce


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    """Headers: a mapping of non-empty printable names to text values, at
    most MAX_HEADERS of them and MAX_HEADERS_SIZE bytes together."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise InvalidJobOptions(f"headers must be a mapping of names to strings, not {type(value).__name__}")
    if len(value) > MAX_HEADERS:
        raise InvalidJobOptions(f"headers: at most {MAX_HEADERS}, not {len(value)}")
    size = 0
    for name, text in value.items():
        if not isinstance(name, str) or not name or not name.isprintable():
            raise InvalidJobOptions(f"header names must be non-empty printable strings, not {name!r}")
        if not isinstance(text, str):
            raise InvalidJobOptions(f"header {name!r} must be a string, not {type(text).__name__}")
        try:
            size += len(name.encode()) + len(text.encode())
        except UnicodeEncodeError:
            raise InvalidJobOptions(f"header {name!r} is not valid text (a lone surrogate)") from None
    if size > MAX_HEADERS_SIZE:
        raise InvalidJobOptions(f"headers are {size} bytes, over the limit of {MAX_HEADERS_SIZE}")
    return tuple(sorted(value.items()))


def _backoff(value: Any) -> Backoff | None:
    from conveyor.engine.backoff import Fixed

    if value is None:
        return None
    if isinstance(value, Backoff):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Fixed(check_seconds(value, "backoff"))
    raise InvalidJobOptions(f"backoff must be a Backoff or seconds >= 0, not {value!r}")
