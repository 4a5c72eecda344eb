"""What the API reads and writes: pydantic models, so that bodies are
validated before anything happens and the OpenAPI document describes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.engine.job import Job
from conveyor.engine.schedules import Schedule
from conveyor.engine.states import JobState
from conveyor.server.describe import attempt_text, options_summary, outcome_error, readable_options


class JobOut(BaseModel):
    """A job as stored, with its history of failed attempts."""

    id: str
    queue: str
    name: str
    data: Any
    state: JobState
    options: dict[str, Any]
    priority: int
    attempts_made: int
    attempts_started: int
    stalled_count: int
    progress: Any = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    history: list[dict[str, Any]] = []
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_at: datetime | None = None
    worker_id: str | None = None
    parent: tuple[str, str] | None = None
    logs: list[str] | None = None
    #: The options in words with units (``attempts 3``, ``timeout 30 s``...).
    options_summary: list[str] = []
    #: ``1 of 3``: the attempt the job is on, or ended at, of those it may use.
    attempt: str = ""
    #: The error that is the job's outcome (a failed job's); earlier
    #: attempts' errors are in ``history``.
    outcome_error: str | None = None

    @classmethod
    def of(cls, job: Job, logs: list[str] | None = None) -> JobOut:
        out = cls.model_validate(job, from_attributes=True)
        readable = readable_options(job.options)
        return out.model_copy(
            update={
                "options": readable,
                "logs": logs,
                "options_summary": options_summary(readable),
                "attempt": attempt_text(job),
                "outcome_error": outcome_error(job),
            }
        )


class RateLimitModel(BaseModel):
    max: int
    per: float


class QueueOut(BaseModel):
    """A queue: jobs per state, pause, limits, and jobs finished lately."""

    name: str
    counts: dict[JobState, int]
    paused: bool
    rate_limit: RateLimitModel | None = None
    concurrency: int | None = None
    held_until: datetime | None = None
    workers_alive: int = 0
    #: Finished within the last minute and still kept (retention may drop some).
    completed_last_minute: int = 0
    failed_last_minute: int = 0
    #: Every job ever completed or failed for good (counted, whatever is kept).
    completed_total: int = 0
    failed_total: int = 0


class JobPage(BaseModel):
    queue: str
    state: JobState
    start: int
    count: int
    jobs: list[JobOut]


class AddJobIn(BaseModel):
    """A job to add. ``options`` takes the keyword options of ``Queue.add``
    that JSON can carry (priority, delay in seconds, attempts, backoff in
    seconds, timeout, job_id, lifo, dedup_key, dedup_ttl, debounce, group,
    remove_on_complete, remove_on_fail)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=512)
    data: Any = None
    options: dict[str, Any] = {}


class CleanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["waiting", "delayed", "completed", "failed"]
    grace: float = Field(default=0, ge=0)
    limit: int = Field(default=1000, ge=1, le=100_000)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled from the API", max_length=1000)


class Done(BaseModel):
    """How many jobs an action changed."""

    count: int


class ScheduleOut(BaseModel):
    key: str
    name: str
    data: Any
    cron: str | None
    every: float | None
    tz: str
    runs: int
    limit: int | None
    last_run: datetime | None
    next_run: datetime | None
    upcoming: list[datetime]

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleOut:
        fields = {name: getattr(schedule, name) for name in cls.model_fields if name != "upcoming"}
        return cls(**fields, upcoming=schedule.upcoming(5))


class GroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    waiting: int
    active: int
    state: str


class StreamGroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str


class EventDeadLetterOut(BaseModel):
    """An event a consumer group gave up on."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    event_id: str
    type: str | None
    data: Any
    group: str
    consumer: str
    deliveries: int
    reason: str
    error: str
    traceback: str
    replays: int
    origin_id: str
    time: datetime


class ReplayEventsIn(BaseModel):
    """Which dead letters to publish again: these ids, or (with none) every
    one of ``group`` whose error or type holds ``search``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(default_factory=list, max_length=1000)
    group: str | None = Field(default=None, max_length=200)
    search: str | None = Field(default=None, max_length=200)


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    redis: bool
    latency_ms: float | None
    queues: dict[str, int]
    error: str | None = None


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str


_PROBLEMS = {
    400: "The body is not valid JSON.",
    401: "No valid token (``Authorization: Bearer`` or the dashboard's cookie).",
    404: "No such queue, job, schedule, stream or subject.",
    409: "The job is running (or the queue is not empty), so the action cannot apply now.",
    413: "The body, or the job's payload, is larger than the server accepts.",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the refusals a route can answer."""
    return {code: {"model": Problem, "description": _PROBLEMS[code]} for code in codes}
