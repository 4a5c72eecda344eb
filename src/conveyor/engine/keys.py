"""Redis key names. Every key of a queue carries the queue's hash tag, so all
of them live in one Redis Cluster slot and every script can run there."""

from __future__ import annotations

from conveyor.errors import InvalidJobOptions

DEFAULT_PREFIX = "conveyor"


_SUFFIXES = {
    "wait": "wait",
    "line": "line",
    "active": "active",
    "delayed": "delayed",
    "completed": "completed",
    "failed": "failed",
    "marker": "marker",
    "meta": "meta",
    "id_counter": "id",
    "seq": "seq",
    "stalled_guard": "stalled-check",
    "events": "events",
    "events_seq": "events:seq",
    "limiter": "limiter",
    "limiter_count": "limiter:n",
    "schedules": "schedules",
    "schedules_next": "schedules:next",
    "schedules_runs": "schedules:runs",
    "waiting_children": "waiting-children",
    "groups_ring": "groups:ring",
    "groups_held": "groups:held",
    "groups_parked": "groups:parked",
    "groups_waiting": "groups:waiting",
    "groups_active": "groups:active",
    "groups_all": "groups:all",
    "workers": "workers",
    "stats": "stats",
    "worker_beats": "workers:beats",
    "outbox": "flow:outbox",
    "claims": "claims",
}


class QueueKeys:
    """The keys of one queue: ``<prefix>:{<queue>}:<suffix>`` (computed once)."""

    __slots__ = (
        "base",
        "deps_prefix",
        "job_prefix",
        "kids_prefix",
        "logs_prefix",
        "prefix",
        "queue",
        *_SUFFIXES,
    )

    wait: str
    line: str
    active: str
    delayed: str
    completed: str
    failed: str
    marker: str
    meta: str
    id_counter: str
    seq: str
    stalled_guard: str
    events: str
    events_seq: str
    limiter: str
    limiter_count: str
    schedules: str
    schedules_next: str
    schedules_runs: str
    waiting_children: str
    groups_ring: str
    groups_held: str
    groups_parked: str
    groups_waiting: str
    groups_active: str
    groups_all: str
    workers: str
    stats: str
    worker_beats: str
    outbox: str
    claims: str

    def __init__(self, queue: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.queue = check_name("queue", queue)
        self.prefix = prefix
        self.base = f"{prefix}:{{{queue}}}"
        for attr, suffix in _SUFFIXES.items():
            setattr(self, attr, self.key(suffix))
        self.job_prefix = self.key("job:")
        self.logs_prefix = self.key("logs:")
        #: A flow parent's pending children (set of child job keys) and
        #: their outcomes (hash: r:<child key> result, f:<child key> error).
        self.deps_prefix = self.key("deps:")
        self.kids_prefix = self.key("kids:")

    def __repr__(self) -> str:
        return f"QueueKeys({self.queue!r}, {self.prefix!r})"

    def key(self, suffix: str) -> str:
        return f"{self.base}:{suffix}"

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def logs(self, job_id: str) -> str:
        return self.logs_prefix + job_id

    def group(self, group: str) -> str:
        """The zset of a group's waiting jobs."""
        return self.key(f"group:{group}")

    def group_limiter(self, group: str) -> tuple[str, str]:
        """A group's rate window: its log and its count."""
        return self.key(f"glimit:{group}"), self.key(f"gcount:{group}")

    def owns(self, key: str) -> bool:
        """Whether ``key`` is one of this queue's keys (and not, say, of an
        event stream of the same name, which shares the hash tag)."""
        if not key.startswith(self.base + ":"):
            return False
        rest = key[len(self.base) + 1 :]
        return rest in _FIXED or rest.startswith(FAMILIES)

    def all_fixed(self) -> list[str]:
        """Every queue-level key (not the per-job ones)."""
        return [getattr(self, attr) for attr in _SUFFIXES]


#: The queue's keys named by a user's choice: ``<base>:<family><name>``.
#: No family is a prefix of another or of a fixed suffix, and the name
#: comes last, so two names never share a key (docs/keys.md).
FAMILIES = ("job:", "logs:", "deps:", "kids:", "dedup:", "group:", "glimit:", "gcount:")
_FIXED = frozenset(_SUFFIXES.values())


def registry_key(prefix: str = DEFAULT_PREFIX) -> str:
    """The set of every queue name used under ``prefix`` (for the API and
    dashboard; it has no hash tag of its own and is only read and added to
    outside scripts)."""
    return f"{prefix}:queues"


def stream_registry_key(prefix: str = DEFAULT_PREFIX) -> str:
    """The set of every event bus stream used under ``prefix`` (like
    :func:`registry_key`, for the API, the dashboard and the CLI)."""
    return f"{prefix}:streams"


def check_name(kind: str, name: str) -> str:
    """Validates a queue, stream, group, consumer, limiter or breaker name
    used in keys and URLs: non-empty, at most 256 characters, without
    braces (the hash tag), whitespace or '/' (a path segment of the API,
    and the mark of the tags of limiters, breakers and progress, which
    therefore never equal a queue's or a stream's)."""
    banned = "{}/"
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 256
        or name in (".", "..")
        or any(c in name for c in banned)
        or any(c.isspace() or not c.isprintable() for c in name)
    ):
        shown = ", ".join(repr(c) for c in banned)
        raise InvalidJobOptions(
            f"{kind} name {name!r} must be 1 to 256 printable characters, not '.' or '..', "
            f"without whitespace or {shown}"
        )
    return name


def runs_field(key: str) -> str:
    """A schedule's run count, in the queue's schedule runs hash."""
    return f"n:{key}"


def last_field(key: str) -> str:
    """A schedule's last run (ms), in the queue's schedule runs hash."""
    return f"last:{key}"


class StreamKeys:
    """The keys of one event bus stream, all under the hash tag ``{<name>}``:
    the stream itself, its dead-letter stream and each group's last errors."""

    __slots__ = ("base", "dead", "name", "stream")

    def __init__(self, name: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.name = check_name("stream", name)
        self.base = f"{prefix}:{{{name}}}"
        self.stream = f"{self.base}:stream"
        self.dead = f"{self.base}:dead"

    def __repr__(self) -> str:
        return f"StreamKeys({self.name!r})"

    def errors(self, group: str) -> str:
        return f"{self.base}:errors:{group}"
