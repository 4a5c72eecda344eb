"""Settings from the environment (``EVENTHUB_*``). Each role has its own
Redis URL, as the original ran three instances (queues, streams, cache);
all three default to ``REDIS_URL``."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTHUB_", extra="ignore")

    queue_url: str = Field(default_factory=_default_url)
    streams_url: str = Field(default_factory=_default_url)
    cache_url: str = Field(default_factory=_default_url)
    stream: str = "platform-events"
    group: str = "event-processors"
    #: Bearer token of the API's job submission and of the dashboard.
    api_token: str | None = None
    #: Seconds a long job's lock lasts; the worker renews it while the job runs.
    lock_duration: float = Field(default=30.0, gt=0)
    #: A long job may run this long (the original allowed 60 minutes).
    max_job_duration: float = Field(default=3600.0, gt=0)
    #: After a crash, a long job resumes from its last checkpoint, or reruns from the start.
    restart_policy: Literal["resume", "rerun"] = "resume"
    #: Seconds before a crashed event consumer's entries go to another consumer.
    claim_idle: float = Field(default=30.0, gt=0)
    retry_delay: float = Field(default=1.0, ge=0)
    max_deliveries: int = Field(default=5, ge=1)
    #: Replays the dead-letter processor allows an event before it gives up.
    dlq_max_replays: int = Field(default=3, ge=0)
    dlq_interval: float = Field(default=10.0, gt=0)
    #: Where discarded dead letters are posted as JSON (``{"source", "alert"}``).
    alert_webhook: str | None = None
    alert_timeout: float = Field(default=5.0, gt=0)
    #: Simulated work per event handled (seconds), for demos and fault drills.
    handler_delay: float = Field(default=0.0, ge=0)
