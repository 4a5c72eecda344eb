"""Settings, from the environment (``DISTRIBUTION_*``; ``DATABASE_URL``).

The design's own names are accepted beside ours: ``BULLMQ_CONCURRENCY``,
``BULLMQ_MAX_RETRIES`` and ``BULLMQ_BACKOFF_DELAY`` (in milliseconds, as
the design has it). Where both are set, the ``DISTRIBUTION_*`` one wins.
Redis is found as Conveyor finds it: ``REDIS_URL`` or ``REDIS_HOST``,
``REDIS_PORT``, ``REDIS_PASSWORD``, ``REDIS_DB``, ``REDIS_TLS``.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str, *seed: str) -> AliasChoices:
    """Our variable first, then the design's names for the same setting."""
    return AliasChoices(f"DISTRIBUTION_{name.upper()}", *seed)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISTRIBUTION_", extra="ignore", populate_by_name=True)

    #: Base URL of the social networks' API (the bundled fake by default).
    network_url: str = "http://127.0.0.1:8791"
    #: Bearer token of the service's API and of the queue dashboard; none
    #: leaves them open (only sensible on 127.0.0.1).
    api_token: str | None = None
    #: Dispatch jobs at a time per worker process.
    concurrency: int = Field(default=5, ge=1, validation_alias=_env("concurrency", "BULLMQ_CONCURRENCY"))
    #: Retries after the first attempt, then the dead-letter queue.
    max_retries: int = Field(default=3, ge=0, validation_alias=_env("max_retries", "BULLMQ_MAX_RETRIES"))
    #: First retry delay in seconds; each further one is ``backoff_factor`` times longer.
    backoff_delay: float = Field(default=5.0, ge=0)
    #: ``BULLMQ_BACKOFF_DELAY``: the first retry delay in milliseconds.
    backoff_delay_ms: float | None = Field(default=None, ge=0, validation_alias="BULLMQ_BACKOFF_DELAY")
    backoff_factor: float = Field(default=5.0, ge=1)
    #: One dispatch attempt may take this long before it counts as failed.
    dispatch_timeout: float = Field(default=30.0, gt=0)
    #: Seconds between background refreshes of each connection's token.
    token_refresh_every: float = Field(default=86400.0, gt=0)
    #: A token this close to its expiry is refreshed before it is used.
    token_margin: float = Field(default=60.0, ge=0)
    #: Seconds a stopping worker lets its running jobs finish.
    shutdown_grace: float = Field(default=30.0, ge=0)
    http_timeout: float = Field(default=10.0, gt=0)
    #: Finished jobs kept for the dashboard and the health counts.
    keep_completed: int = 100
    keep_failed: int = 500
    #: ``maxmemory`` of the Redis that ``distribution up`` starts (with
    #: ``noeviction``: a full Redis refuses adds rather than drop jobs).
    redis_maxmemory: str = "256mb"

    @model_validator(mode="after")
    def _seed_backoff(self) -> Any:
        if self.backoff_delay_ms is not None and "backoff_delay" not in self.model_fields_set:
            self.backoff_delay = self.backoff_delay_ms / 1000
        return self
