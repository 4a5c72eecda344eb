"""Settings from the environment.

Each setting is read from ``EVENTHUB_<NAME>`` and, where the design names
it, from the design's variable as well (``EVENTHUB_*`` wins when both are
set). Three Redis roles, as the design ran three instances:

- **master** (``REDIS_URL``): sessions, the cache, and the dead-letter
  processor's storage (its record of every dead letter, replay counts,
  alerts);
- **streams** (``REDIS_STREAMS_URL``): the event stream and its consumer
  groups;
- **queue** (``REDIS_QUEUE_URL``): the job queues, ``dead-letter-queue``
  included.

The streams and queue roles default to the master's URL.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor import RedisSettings


def _env(name: str, *design: str) -> AliasChoices:
    """``EVENTHUB_<NAME>`` first, then the design's names for the same setting."""
    return AliasChoices(f"EVENTHUB_{name.upper()}", *design)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTHUB_", extra="ignore", populate_by_name=True)

    #: Default: Conveyor's reading of ``REDIS_URL`` or ``REDIS_HOST``, ``REDIS_PORT``...
    master_url: str = Field(
        default_factory=lambda: RedisSettings().resolved_url(),
        validation_alias=_env("master_url", "REDIS_URL"),
    )
    streams_url: str | None = Field(default=None, validation_alias=_env("streams_url", "REDIS_STREAMS_URL"))
    queue_url: str | None = Field(default=None, validation_alias=_env("queue_url", "REDIS_QUEUE_URL"))

    #: Events are published and consumed (off: ``POST /events`` answers 503
    #: and no event processor runs).
    event_bus_enabled: bool = Field(
        default=True, validation_alias=_env("event_bus_enabled", "EVENT_BUS_ENABLED")
    )
    #: Jobs publish ``job.*`` events when they finish.
    publish_events: bool = Field(default=True, validation_alias=_env("publish_events", "PUBLISH_EVENTS"))
    stream: str = Field(default="platform-events", validation_alias=_env("stream", "STREAM_NAME"))
    group: str = Field(default="event-processors", validation_alias=_env("group", "CONSUMER_GROUP"))

    #: Jobs are accepted and worked (off: ``POST /jobs`` answers 503, no worker runs).
    queue_enabled: bool = Field(default=True, validation_alias=_env("queue_enabled", "QUEUE_ENABLED"))
    #: The ``long-running-jobs`` queue is accepted and worked.
    long_running_jobs_enabled: bool = Field(
        default=True, validation_alias=_env("long_running_jobs_enabled", "LONG_RUNNING_JOBS_ENABLED")
    )
    #: Jobs at a time per worker process, on each job queue.
    concurrency: int = Field(default=5, ge=1, validation_alias=_env("concurrency", "CONCURRENCY"))
    #: A long job may run this long, in seconds (the design allowed 60 minutes).
    max_job_duration: float = Field(
        default=3600.0, gt=0, validation_alias=_env("max_job_duration", "MAX_JOB_DURATION")
    )
    #: Seconds a long job's lock lasts; the worker renews it while the job runs.
    lock_duration: float = Field(default=30.0, gt=0)
    #: After a crash, a long job resumes from its last checkpoint, or reruns from the start.
    restart_policy: Literal["resume", "rerun"] = "resume"

    #: Bearer token of the API's writes and of the dashboard.
    api_token: str | None = None
    #: Seconds a session lives without being used.
    session_ttl: float = Field(default=3600.0, gt=0)

    #: Seconds before a crashed event consumer's entries go to another consumer.
    claim_idle: float = Field(default=30.0, gt=0)
    #: Seconds before an event handler's failure is retried by the consumer.
    retry_delay: float = Field(default=1.0, ge=0)
    max_deliveries: int = Field(default=5, ge=1)

    #: The queue of dead letters, of jobs and of events.
    dlq_queue: str = Field(default="dead-letter-queue", validation_alias=_env("dlq_queue", "DLQ_QUEUE_NAME"))
    #: Replays the dead-letter processor allows a job or an event that failed
    #: for a passing reason before it gives up and alerts.
    retry_attempts: int = Field(
        default=3, ge=0, validation_alias=_env("retry_attempts", "RETRY_ATTEMPTS", "EVENTHUB_DLQ_MAX_REPLAYS")
    )
    #: Seconds before a dead job is replayed.
    dlq_retry_delay: float = Field(default=60.0, ge=0)
    #: ``RETRY_DELAY``: the same, in milliseconds, as the design has it.
    retry_delay_ms: float | None = Field(default=None, ge=0, validation_alias="RETRY_DELAY")
    #: Seconds between the dead-letter processor's sweeps.
    dlq_interval: float = Field(default=10.0, gt=0)
    #: Where discarded dead letters are posted as JSON (``{"source", "alert"}``).
    alert_webhook: str | None = None
    alert_timeout: float = Field(default=5.0, gt=0)

    #: Secret of the Airtable webhook (base64, as Airtable gives it) whose
    #: MAC signs each notification; none accepts unsigned ones.
    airtable_webhook_secret: str | None = None
    #: Base URL of the Airtable API the payloads are fetched from.
    airtable_api_url: str = "https://api.airtable.com"
    airtable_token: str | None = None

    #: Simulated work per event handled (seconds), for demos and fault drills.
    handler_delay: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _defaults(self) -> Any:
        if self.streams_url is None:
            self.streams_url = self.master_url
        if self.queue_url is None:
            self.queue_url = self.master_url
        if self.retry_delay_ms is not None and "dlq_retry_delay" not in self.model_fields_set:
            self.dlq_retry_delay = self.retry_delay_ms / 1000
        return self

    @property
    def urls(self) -> dict[str, str]:
        """Each role's URL."""
        assert self.streams_url is not None and self.queue_url is not None
        return {"master": self.master_url, "streams": self.streams_url, "queue": self.queue_url}
