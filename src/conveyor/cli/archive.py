"""``conveyor archive``: the archive of finished jobs in a process of its
own, so it shares no event loop or core with the workers."""

from __future__ import annotations

import logging

from conveyor.archive import JobArchive
from conveyor.engine.client.connection import connect
from conveyor.engine.queue import Queue
from conveyor.engine.registry import queue_listed, queue_names
from conveyor.engine.signals import stop_on_signals
from conveyor.errors import ConveyorError

log = logging.getLogger("conveyor.archive")


async def run_archive(database: str, names: list[str], *, create_tables: bool, burst: bool) -> JobArchive:
    """Archives ``names`` (every queue Redis knows when empty) to
    ``database`` until SIGTERM or SIGINT, or with ``burst`` until every
    event emitted so far is written; the archive, for its counts."""
    redis = connect()
    try:
        for name in names:
            if not await queue_listed(redis, name):
                raise ConveyorError(f"unknown queue {name!r} (see `conveyor queues`)")
        chosen = names or await queue_names(redis)
        if not chosen:
            raise ConveyorError("no queues to archive yet (see `conveyor queues`)")
        archive = JobArchive(database, [Queue(name, redis) for name in chosen])
        try:
            if create_tables:
                await archive.create_tables()

            async def close() -> None:
                archive.stop()

            stop_on_signals(close)
            log.info("archiving %s to %s", ", ".join(chosen), archive.engine.url.render_as_string())
            await archive.run(burst=burst)
        finally:
            await archive.aclose()
        return archive
    finally:
        await redis.aclose()
