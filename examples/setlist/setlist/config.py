"""Settings of the setlist app, from the environment (``SETLIST_*``, and
the seeds' names where they give one: ``TICKETMASTER_API_KEY``,
``SPOTIFY_CLIENT_ID``, ``SPOTIFY_CLIENT_SECRET``, ``SETLISTFM_API_KEY``,
``ADMIN_TOKEN``, ``CRON_SECRET``, ``QUEUE_CONCURRENCY_<NAME>``,
``QUEUE_JOB_TIMEOUT``, ``QUEUE_STALLED_INTERVAL``; the ``SETLIST_*`` one
wins when both are set). Redis and the database are found from ``REDIS_URL`` (or
``REDIS_HOST``...) and ``DATABASE_URL``.

The defaults point every upstream at the bundled fake on
``http://127.0.0.1:8790`` with its keys, so the app runs offline as it is;
set the real base URLs and keys to talk to the real APIs.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from setlist.fake.server import API_KEY, CLIENT_ID, CLIENT_SECRET, SETLISTFM_KEY
from setlist.queues import QueueName

FAKE = "http://127.0.0.1:8790"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SETLIST_", extra="ignore", populate_by_name=True)

    #: Bearer token of the admin surface: Conveyor's API and dashboard at
    #: ``/conveyor`` (``ADMIN_TOKEN``). Unset, ``setlist up`` and ``setlist
    #: api`` make one at start and print it: that surface is never open.
    admin_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SETLIST_ADMIN_TOKEN", "ADMIN_TOKEN")
    )
    #: Bearer token an external cron sends to ``/api/cron/*`` (``CRON_SECRET``);
    #: unset, those routes answer 403.
    cron_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SETLIST_CRON_SECRET", "CRON_SECRET")
    )

    ticketmaster_url: str = f"{FAKE}/ticketmaster/discovery/v2"
    ticketmaster_key: SecretStr = Field(
        default=SecretStr(API_KEY),
        validation_alias=AliasChoices("SETLIST_TICKETMASTER_KEY", "TICKETMASTER_API_KEY"),
    )
    spotify_url: str = f"{FAKE}/spotify-api/v1"
    spotify_accounts_url: str = f"{FAKE}/spotify-accounts"
    spotify_client_id: str = Field(
        default=CLIENT_ID, validation_alias=AliasChoices("SETLIST_SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_ID")
    )
    spotify_client_secret: SecretStr = Field(
        default=SecretStr(CLIENT_SECRET),
        validation_alias=AliasChoices("SETLIST_SPOTIFY_CLIENT_SECRET", "SPOTIFY_CLIENT_SECRET"),
    )
    setlistfm_url: str = f"{FAKE}/setlistfm/rest/1.0"
    setlistfm_key: SecretStr = Field(
        default=SecretStr(SETLISTFM_KEY),
        validation_alias=AliasChoices("SETLIST_SETLISTFM_KEY", "SETLISTFM_API_KEY"),
    )

    #: Requests per second to each upstream, shared by every worker process
    #: (music-apis.md: Ticketmaster 5/s, setlist.fm 2/s; Spotify publishes
    #: no number, its window is a rolling 30 s).
    ticketmaster_rate: int = Field(default=5, ge=1)
    setlistfm_rate: int = Field(default=2, ge=1)
    spotify_rate: int = Field(default=20, ge=1)
    #: Setlist pages (20 setlists each) the wrap-up pre-seeds per artist.
    setlist_pages: int = Field(default=3, ge=0)
    #: Seconds an HTTP call to an upstream may take.
    http_timeout: float = Field(default=20.0, gt=0)
    #: In-job retries of a failed request: the first delay (doubling), the
    #: wait after a Ticketmaster spike arrest and after a setlist.fm 429
    #: (neither sends Retry-After).
    upstream_retry_delay: float = Field(default=0.25, ge=0)
    ticketmaster_spike_wait: float = Field(default=1.0, ge=0)
    setlistfm_backoff: float = Field(default=2.0, ge=0)
    #: A circuit breaker per upstream, shared by every worker process: this
    #: many calls in a row failing (5xx or network, after their retries)
    #: open it, and for ``breaker_cooldown`` seconds the jobs that would
    #: call that upstream wait instead of failing.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown: float = Field(default=30.0, gt=0)
    #: Album track listings read at once (seed 001: pLimit(10)).
    album_parallelism: int = Field(default=10, ge=1)
    #: Seconds a worker's lock on a job lasts unless renewed (a crashed
    #: worker's jobs run again this long after the crash).
    lock_duration: float = Field(default=10.0, gt=0)
    #: Milliseconds between checks for jobs whose worker died
    #: (``QUEUE_STALLED_INTERVAL``; unset: half the lock duration, 5 s,
    #: where BullMQ's 30 s default would leave a crashed import stranded
    #: for up to 40 s).
    queue_stalled_interval: int | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("SETLIST_QUEUE_STALLED_INTERVAL", "QUEUE_STALLED_INTERVAL"),
    )
    #: Milliseconds one run of a job may take before it is cancelled and
    #: retried (``QUEUE_JOB_TIMEOUT``, the seed's 5 minutes).
    queue_job_timeout: int = Field(
        default=300_000,
        gt=0,
        validation_alias=AliasChoices("SETLIST_QUEUE_JOB_TIMEOUT", "QUEUE_JOB_TIMEOUT"),
    )
    #: Concurrency per queue, by the seed's queue name (``ARTIST_IMPORT``);
    #: read from ``QUEUE_CONCURRENCY_<NAME>``. A queue not named keeps its
    #: default (see ``setlist.queues``).
    queue_concurrency: dict[str, int] = Field(default_factory=dict)
    #: First retry delay of a failed import job, doubling up to 2 minutes.
    retry_backoff: float = Field(default=2.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _queue_concurrency(cls, data: Any) -> Any:
        """``QUEUE_CONCURRENCY_<NAME>`` variables into ``queue_concurrency``
        (values given in code win), each checked against the queue names."""
        if not isinstance(data, dict):
            return data
        prefix = "QUEUE_CONCURRENCY_"
        found = {k[len(prefix) :].upper(): v for k, v in os.environ.items() if k.upper().startswith(prefix)}
        given = data.get("queue_concurrency") or {}
        merged = {**found, **given}
        names = {q.name for q in QueueName}
        unknown = sorted(set(merged) - names)
        if unknown:
            known = ", ".join(sorted(names))
            raise ValueError(
                f"no queue named {', '.join(unknown)} (QUEUE_CONCURRENCY_<NAME>: one of {known})"
            )
        for name, value in merged.items():
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"QUEUE_CONCURRENCY_{name} must be a whole number, not {value!r}") from None
            if number < 1:
                raise ValueError(f"QUEUE_CONCURRENCY_{name} must be at least 1, not {number}")
            merged[name] = number
        return {**data, "queue_concurrency": merged}

    @property
    def job_timeout(self) -> float:
        """``queue_job_timeout`` in seconds."""
        return self.queue_job_timeout / 1000

    @classmethod
    def for_fake(cls, base: str, **overrides: object) -> Settings:
        """Every upstream on the bundled fake served at ``base``."""
        base = base.rstrip("/")
        urls = {
            "ticketmaster_url": f"{base}/ticketmaster/discovery/v2",
            "spotify_url": f"{base}/spotify-api/v1",
            "spotify_accounts_url": f"{base}/spotify-accounts",
            "setlistfm_url": f"{base}/setlistfm/rest/1.0",
        }
        return cls.model_validate({**urls, **overrides})
