"""Redis key names. Every key of a queue carries the queue's hash tag, so all
of them live in one Redis Cluster slot and every script can run there."""

from __future__ import annotations

from conveyor.errors import InvalidJobOptions

DEFAULT_PREFIX = "conveyor"


_SUFFIXES = {
    "wait": "wait",
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
}


class QueueKeys:
    """The keys of one queue: ``<prefix>:{<queue>}:<suffix>`` (computed once)."""

    __slots__ = ("base", "job_prefix", "logs_prefix", "prefix", "queue", *_SUFFIXES)

    wait: str
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

    def __init__(self, queue: str, prefix: str = DEFAULT_PREFIX) -> None:
        if not queue or any(c in queue for c in "{}\n\r\t "):
            raise InvalidJobOptions(f"queue name {queue!r} must be non-empty, without braces or whitespace")
        self.queue = queue
        self.prefix = prefix
        self.base = f"{prefix}:{{{queue}}}"
        for attr, suffix in _SUFFIXES.items():
            setattr(self, attr, self.key(suffix))
        self.job_prefix = self.key("job:")
        self.logs_prefix = self.key("logs:")

    def __repr__(self) -> str:
        return f"QueueKeys({self.queue!r}, {self.prefix!r})"

    def key(self, suffix: str) -> str:
        return f"{self.base}:{suffix}"

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def logs(self, job_id: str) -> str:
        return self.logs_prefix + job_id

    def all_fixed(self) -> list[str]:
        """Every queue-level key (not the per-job ones)."""
        return [getattr(self, attr) for attr in _SUFFIXES]
