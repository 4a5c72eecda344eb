"""Redis key names. Every key of a queue carries the queue's hash tag, so all
of them live in one Redis Cluster slot and every script can run there."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.errors import InvalidJobOptions

DEFAULT_PREFIX = "conveyor"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue: ``<prefix>:{<queue>}:<suffix>``."""

    queue: str
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.queue or any(c in self.queue for c in "{}\n\r\t "):
            raise InvalidJobOptions(
                f"queue name {self.queue!r} must be non-empty, without braces or whitespace"
            )

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.queue}}}"

    def key(self, suffix: str) -> str:
        return f"{self.base}:{suffix}"

    @property
    def wait(self) -> str:
        return self.key("wait")

    @property
    def active(self) -> str:
        return self.key("active")

    @property
    def delayed(self) -> str:
        return self.key("delayed")

    @property
    def completed(self) -> str:
        return self.key("completed")

    @property
    def failed(self) -> str:
        return self.key("failed")

    @property
    def marker(self) -> str:
        return self.key("marker")

    @property
    def meta(self) -> str:
        return self.key("meta")

    @property
    def id_counter(self) -> str:
        return self.key("id")

    @property
    def seq(self) -> str:
        return self.key("seq")

    @property
    def stalled_guard(self) -> str:
        return self.key("stalled-check")

    @property
    def job_prefix(self) -> str:
        return self.key("job:")

    @property
    def logs_prefix(self) -> str:
        return self.key("logs:")

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def logs(self, job_id: str) -> str:
        return self.logs_prefix + job_id

    def all_fixed(self) -> list[str]:
        """Every queue-level key (not the per-job ones)."""
        return [
            self.wait,
            self.active,
            self.delayed,
            self.completed,
            self.failed,
            self.marker,
            self.meta,
            self.id_counter,
            self.seq,
            self.stalled_guard,
        ]
