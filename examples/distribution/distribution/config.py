"""Settings, from the environment (``DISTRIBUTION_*``; ``DATABASE_URL``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISTRIBUTION_", extra="ignore")

    #: Base URL of the social networks' API (the bundled fake by default).
    network_url: str = "http://127.0.0.1:8791"
    #: Bearer token of the service's API and of the queue dashboard; none
    #: leaves them open (only sensible on 127.0.0.1).
    api_token: str | None = None
    #: Dispatch jobs at a time per worker process.
    concurrency: int = Field(default=5, ge=1)
    #: Retries after the first attempt, then the dead-letter queue.
    max_retries: int = Field(default=3, ge=0)
    #: First retry delay in seconds; each further one is ``backoff_factor`` times longer.
    backoff_delay: float = Field(default=5.0, ge=0)
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
