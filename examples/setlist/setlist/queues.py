"""The app's queues: seed 000's fourteen queue types, under the seed's
names, each declared with its concurrency (``QUEUE_CONCURRENCY_<NAME>``)
and the priority class of its jobs, plus the votes queue of the show pages.

A priority orders the jobs of one queue: a user's import (CRITICAL) runs
before the daily deep sync's re-imports (LOW) waiting on the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from conveyor import Conveyor, Priority, TaskQueue

if TYPE_CHECKING:  # the settings read the queue names
    from setlist.config import Settings


class QueueName(StrEnum):
    """Seed 000's queue types; a queue's Redis name is its value."""

    # high priority: what a user started
    ARTIST_IMPORT = "artist-import"
    ARTIST_QUICK_SYNC = "artist-quick-sync"
    # data sync
    SPOTIFY_SYNC = "spotify-sync"
    SPOTIFY_CATALOG = "spotify-catalog"
    TICKETMASTER_SYNC = "ticketmaster-sync"
    VENUE_SYNC = "venue-sync"
    SETLIST_SYNC = "setlist-sync"
    # background
    IMAGE_PROCESSING = "image-processing"
    TRENDING_CALC = "trending-calc"
    CACHE_WARM = "cache-warm"
    # scheduled
    SCHEDULED_SYNC = "scheduled-sync"
    CLEANUP = "cleanup"
    # communication
    PROGRESS_UPDATE = "progress-update"
    WEBHOOK = "webhook"
    # the show pages' votes, written to the database in batches
    VOTES = "setlist-votes"

    @property
    def env(self) -> str:
        """The variable that sets its concurrency."""
        return f"QUEUE_CONCURRENCY_{self.name}"


@dataclass(frozen=True, slots=True)
class QueueClass:
    """What a queue is for: its jobs' priority and its default concurrency."""

    priority: Priority
    concurrency: int


#: Each queue's class. The seed's own figures where it gives them
#: (ARTIST_IMPORT 5, SPOTIFY_SYNC 3, VENUE_SYNC 10); the upstream queues
#: wait on the shared rate limits more than on their slots.
CLASSES: dict[QueueName, QueueClass] = {
    QueueName.ARTIST_IMPORT: QueueClass(Priority.CRITICAL, 5),
    QueueName.ARTIST_QUICK_SYNC: QueueClass(Priority.HIGH, 5),
    QueueName.SPOTIFY_SYNC: QueueClass(Priority.NORMAL, 3),
    QueueName.SPOTIFY_CATALOG: QueueClass(Priority.HIGH, 8),
    QueueName.TICKETMASTER_SYNC: QueueClass(Priority.HIGH, 8),
    QueueName.VENUE_SYNC: QueueClass(Priority.NORMAL, 10),
    QueueName.SETLIST_SYNC: QueueClass(Priority.NORMAL, 3),
    QueueName.IMAGE_PROCESSING: QueueClass(Priority.BACKGROUND, 2),
    QueueName.TRENDING_CALC: QueueClass(Priority.BACKGROUND, 1),
    QueueName.CACHE_WARM: QueueClass(Priority.BACKGROUND, 2),
    QueueName.SCHEDULED_SYNC: QueueClass(Priority.NORMAL, 2),
    QueueName.CLEANUP: QueueClass(Priority.BACKGROUND, 1),
    QueueName.PROGRESS_UPDATE: QueueClass(Priority.HIGH, 5),
    QueueName.WEBHOOK: QueueClass(Priority.NORMAL, 10),
    QueueName.VOTES: QueueClass(Priority.NORMAL, 1),
}

QUEUES: tuple[str, ...] = tuple(q.value for q in QueueName)


def concurrency(name: QueueName, settings: Settings) -> int:
    """The queue's concurrency: ``QUEUE_CONCURRENCY_<NAME>``, else its class's."""
    return settings.queue_concurrency.get(name.name, CLASSES[name].concurrency)


def declare(app: Conveyor, settings: Settings) -> dict[QueueName, TaskQueue]:
    """Every queue of the app, declared on ``app`` with the settings'
    concurrency, lock duration and stalled-job check."""
    stalled = settings.queue_stalled_interval / 1000 if settings.queue_stalled_interval else None
    return {
        name: app.queue(
            name.value,
            concurrency=concurrency(name, settings),
            lock_duration=settings.lock_duration,
            stalled_interval=stalled,
        )
        for name in QueueName
    }
