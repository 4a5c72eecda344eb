"""Seed 000's fourteen queues, each with its priority class, and the
``QUEUE_*`` settings of seed 001 honoured by the workers."""

from __future__ import annotations

import pytest
import redis.asyncio as aredis
from pydantic import ValidationError

from conveyor import Conveyor, KeepJobs, Priority
from setlist.config import Settings
from setlist.pipeline import Pipeline
from setlist.queues import CLASSES, QUEUES, QueueName, declare
from setlist.services import Services

SEED_QUEUES = {
    "ARTIST_IMPORT",
    "ARTIST_QUICK_SYNC",
    "SPOTIFY_SYNC",
    "SPOTIFY_CATALOG",
    "TICKETMASTER_SYNC",
    "VENUE_SYNC",
    "SETLIST_SYNC",
    "IMAGE_PROCESSING",
    "TRENDING_CALC",
    "CACHE_WARM",
    "SCHEDULED_SYNC",
    "CLEANUP",
    "PROGRESS_UPDATE",
    "WEBHOOK",
}


def test_every_seed_queue_is_declared_with_its_class() -> None:
    assert {q.name for q in QueueName} == SEED_QUEUES | {"VOTES"}
    assert len(set(QUEUES)) == len(QUEUES) == 15
    # the seed's classes: a user's imports first, data syncs normal, the background last
    assert CLASSES[QueueName.ARTIST_IMPORT].priority == Priority.CRITICAL
    assert CLASSES[QueueName.ARTIST_QUICK_SYNC].priority == Priority.HIGH
    for sync in ("SPOTIFY_SYNC", "VENUE_SYNC", "SETLIST_SYNC"):
        assert CLASSES[QueueName[sync]].priority == Priority.NORMAL
    for background in ("IMAGE_PROCESSING", "TRENDING_CALC", "CACHE_WARM", "CLEANUP"):
        assert CLASSES[QueueName[background]].priority == Priority.BACKGROUND
    # the seed's own concurrency figures
    assert {
        n: CLASSES[QueueName[n]].concurrency for n in ("ARTIST_IMPORT", "SPOTIFY_SYNC", "VENUE_SYNC")
    } == {
        "ARTIST_IMPORT": 5,
        "SPOTIFY_SYNC": 3,
        "VENUE_SYNC": 10,
    }


def test_the_queue_settings_come_from_the_seeds_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_CONCURRENCY_ARTIST_IMPORT", "7")
    monkeypatch.setenv("queue_concurrency_venue_sync", "12")  # any case, as the environment allows
    monkeypatch.setenv("QUEUE_JOB_TIMEOUT", "300000")
    monkeypatch.setenv("QUEUE_STALLED_INTERVAL", "30000")
    settings = Settings()
    assert settings.queue_concurrency == {"ARTIST_IMPORT": 7, "VENUE_SYNC": 12}
    assert settings.job_timeout == 300.0

    app = Conveyor()
    queues = declare(app, settings)
    assert set(app.queues) == set(QUEUES)
    imports, venues = queues[QueueName.ARTIST_IMPORT].worker(), queues[QueueName.VENUE_SYNC].worker()
    assert (imports.concurrency, venues.concurrency) == (7, 12)
    assert queues[QueueName.SPOTIFY_SYNC].worker().concurrency == 3  # not named: its class's
    assert imports.stalled_interval == 30.0

    # unset, a crashed worker's job is looked for every half lock, not every 30 s
    monkeypatch.delenv("QUEUE_STALLED_INTERVAL")
    default = declare(Conveyor(), Settings(lock_duration=4.0))
    assert default[QueueName.ARTIST_IMPORT].worker().stalled_interval == 2.0


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("QUEUE_CONCURRENCY_ARTIST_IMPORTS", "5", "no queue named ARTIST_IMPORTS"),
        ("QUEUE_CONCURRENCY_WEBHOOK", "0", "at least 1"),
        ("QUEUE_CONCURRENCY_WEBHOOK", "many", "whole number"),
        ("QUEUE_JOB_TIMEOUT", "-1", "greater than 0"),
        ("QUEUE_STALLED_INTERVAL", "0", "greater than 0"),
    ],
)
def test_a_bad_queue_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=says):
        Settings()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_each_task_runs_at_its_queues_priority_with_the_job_timeout(
    redis: aredis.Redis, database_url: str
) -> None:
    app = Conveyor(redis)
    services = Services.create(redis, settings=Settings(queue_job_timeout=120_000), database_url=database_url)
    Pipeline(app, services)
    await services.aclose()
    tasks = {(t.queue.name, t.name): t.options for q in app.queues.values() for t in q.tasks.values()}
    assert tasks[("artist-import", "bootstrap")]["priority"] == Priority.CRITICAL
    assert tasks[("artist-import", "wrap_up")]["priority"] == Priority.HIGH
    assert tasks[("ticketmaster-sync", "resync_shows")]["priority"] == Priority.NORMAL
    assert tasks[("scheduled-sync", "deep_sync_trending")]["priority"] == Priority.LOW
    assert tasks[("image-processing", "process_images")]["priority"] == Priority.BACKGROUND
    assert {options["timeout"] for options in tasks.values()} == {120.0}
    # seed 001's retention: completed jobs an hour (100 at most), failed ones a day
    assert {(o["remove_on_complete"], o["remove_on_fail"]) for o in tasks.values()} == {
        (KeepJobs(count=100, age=3600), KeepJobs(count=10_000, age=86400))
    }
    # every seed queue has work
    assert {name for name, _ in tasks} == set(QUEUES)
