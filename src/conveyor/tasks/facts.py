"""What every view of a running job tells alike (a task's context, a
blocking job for a thread, a recorded job in a unit test), read from the
job it wraps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class JobFacts:
    """The id, name, queue, attempt, attempts, fence and headers of
    ``self.job``."""

    __slots__ = ("job",)

    job: Any

    @property
    def id(self) -> str:
        return str(self.job.id)

    @property
    def name(self) -> str:
        return str(self.job.name)

    @property
    def queue(self) -> str:
        return str(self.job.queue)

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return int(self.job.attempt)

    @property
    def attempts(self) -> int:
        """The number of attempts the job may use in all."""
        return int(self.job.attempts)

    @property
    def fence(self) -> int:
        """Grows with every start of the job (a fencing number for side effects)."""
        return int(self.job.fence)

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers the job was added with (a trace context, say)."""
        headers: Mapping[str, str] = self.job.headers
        return headers
