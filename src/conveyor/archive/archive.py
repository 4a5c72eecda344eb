"""The archive's runner: one reader per queue follows the queue's events
and writes each page's finished runs in one transaction.

Workers take no part: they go on at full speed whether the database is
up, slow or down. While the database is down the archive waits and tries
the same batch again, and the events wait in the queue's stream; only
events the stream's cap drops before the archive reads them are lost, and
those are counted (``missed``) and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from conveyor.archive.rows import Batch, CronRun, batch_of, finished_ids
from conveyor.archive.store import CursorMoved, Store
from conveyor.archive.tables import ArchiveTables, archive_tables
from conveyor.engine.events import QueueEvents
from conveyor.engine.job import Job
from conveyor.engine.queue import Queue
from conveyor.engine.queue.reading import read_job_fields
from conveyor.errors import ConnectionFailed, InvalidArgument, check_int, check_seconds

log = logging.getLogger("conveyor.archive")
T = TypeVar("T")
#: The job hash's fields a row needs: name, created, started, attempts made
#: and started, the lease token (its worker).
_FIELDS = ("name", "ts", "pon", "atm", "ats", "tk")


@dataclass(slots=True)
class ArchiveStats:
    """What the archive has done since it started."""

    #: Rows written to ``queue_jobs`` and ``cron_logs``.
    jobs: int = 0
    cron_runs: int = 0
    #: Transactions committed.
    batches: int = 0
    #: Failed tries to write (the batch was tried again).
    write_failures: int = 0
    #: Events the streams dropped before the archive read them.
    missed: int = 0
    last_error: str | None = None


class JobArchive:
    """Writes every finished run of the given queues' jobs to ``queue_jobs``,
    and every schedule run to ``cron_logs`` and ``cron_metrics``.

    ``database``: an SQLAlchemy ``AsyncEngine``, or a URL with an async
    driver (``sqlite+aiosqlite:///jobs.db``, ``postgresql+asyncpg://...``).
    ``tables``: from :func:`archive_tables` when the app names or migrates
    them itself. ``result_chars``: the longest result kept, as JSON (0: no
    results). ``batch``: events read per transaction. ``retry_max``: the
    longest wait between tries while the database is down.

    Each queue's place is kept in the database with the rows, so a restart
    resumes where the last commit left off and nothing is written twice;
    more than one archive may run (only one writes a given page).
    """

    def __init__(
        self,
        database: AsyncEngine | str,
        queues: Iterable[Queue],
        *,
        tables: ArchiveTables | None = None,
        result_chars: int = 10_000,
        batch: int = 500,
        block: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        self.queues = list(queues)
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise InvalidArgument(f"each queue once: {names}")
        check_int(result_chars, "result_chars", 0)
        check_int(batch, "batch", 1)
        self.block = check_seconds(block, "block")
        self.retry_max = check_seconds(retry_max, "retry_max")
        self.result_chars, self.batch = result_chars, batch
        self._owns_engine = isinstance(database, str)
        self.engine = create_async_engine(database) if isinstance(database, str) else database
        self.tables = tables or archive_tables()
        self.store = Store(self.engine, self.tables)
        self.stats = ArchiveStats()
        self._stopping = asyncio.Event()
        self._readers: set[QueueEvents] = set()

    async def create_tables(self) -> None:
        """Creates the archive's tables where they do not exist (apps with
        migrations create them there instead)."""
        metadata = self.tables.jobs.metadata
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all, tables=list(self._all_tables()))

    async def run(self, *, burst: bool = False) -> None:
        """Archives until :meth:`stop`; with ``burst``, until every event
        emitted so far is archived."""
        self._stopping.clear()
        async with asyncio.TaskGroup() as group:
            for queue in self.queues:
                group.create_task(self._follow(queue, burst))

    def stop(self) -> None:
        """Ends :meth:`run` (within ``block`` seconds); a batch being
        written is committed or rolled back, never half-written."""
        self._stopping.set()
        for reader in self._readers:
            reader.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[JobArchive]:
        """Archives in the background for the block, then stops."""
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            self.stop()
            await task

    async def log_cron_run(
        self,
        job_name: str,
        *,
        status: str,
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        error: str | None = None,
        details: str | None = None,
    ) -> None:
        """Records one run of a job that no schedule of Conveyor's started
        (an external cron calling the app, say) in ``cron_logs`` and
        ``cron_metrics``; raises what the database raises."""
        if status not in ("completed", "failed"):
            raise InvalidArgument(f"status must be 'completed' or 'failed', not {status!r}")
        if not job_name:
            raise InvalidArgument("job_name must not be empty")
        run = CronRun(job_name, status, completed_at or datetime.now(UTC), started_at, error, details)
        await self.store.log_cron_runs([run])
        self.stats.cron_runs += 1

    async def aclose(self) -> None:
        """Stops, and disposes of the engine when the archive made it."""
        self.stop()
        if self._owns_engine:
            await self.engine.dispose()

    # -- one queue ---------------------------------------------------------

    async def _follow(self, queue: Queue, burst: bool) -> None:
        while not self._stopping.is_set():
            try:
                after = await self._retrying(queue.name, partial(self._start, queue))
                if after is None:
                    return
                await self._archive(queue, after, burst)
                return
            except CursorMoved:
                log.info("archive of %s: another archive moved ahead; resuming from its place", queue.name)
            except ConnectionFailed as exc:
                self.stats.last_error = str(exc)
                log.warning("archive of %s: %s; trying again", queue.name, exc)
                await self._pause(1.0)

    async def _start(self, queue: Queue) -> int:
        after = await self.store.cursor(queue.name)
        position = await QueueEvents(queue).position()
        if after > position:  # the queue was obliterated and its events began again
            log.warning("archive of %s: the queue's events restarted; archiving from the first", queue.name)
            await self.store.write(queue.name, after, 0, Batch())
            after = 0
        return after

    async def _archive(self, queue: Queue, after: int, burst: bool) -> None:
        reader = QueueEvents(queue, after=str(after), count=self.batch, block=self.block, follow=not burst)
        self._readers.add(reader)
        try:
            async for page in reader.pages():
                jobs = await self._jobs(queue, finished_ids(page))
                batch = batch_of(queue.name, page, jobs, result_chars=self.result_chars)
                last = int(page[-1].id)
                written = await self._retrying(
                    queue.name, partial(self.store.write, queue.name, after, last, batch)
                )
                if written is None:  # stopped while the database was down: not written
                    return
                after = last
                self._count(queue.name, batch)
        finally:
            self._readers.discard(reader)

    async def _jobs(self, queue: Queue, ids: list[str]) -> dict[str, Job]:
        """What the archive needs of each job that still exists (its data
        and result are not read: the events carry the result)."""
        found = await read_job_fields(queue, ids, _FIELDS)
        jobs = {}
        for job_id, values in found.items():
            fields = {f.encode(): v for f, v in zip(_FIELDS, values, strict=True) if v is not None}
            jobs[job_id] = Job.from_hash(queue.name, job_id, fields)
        return jobs

    async def _retrying(self, queue: str, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """``attempt()``'s value (never None), tried again while the
        database fails; None if stopped meanwhile."""
        wait = 0.5
        while True:
            try:
                return await attempt()
            except (SQLAlchemyError, OSError) as exc:
                self.stats.write_failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "archive of %s: the database failed (%s); trying again in %.1fs", queue, exc, wait
                )
            if await self._pause(wait):
                return None
            wait = min(wait * 2, self.retry_max)

    async def _pause(self, seconds: float) -> bool:
        """Waits ``seconds``; True if stopped meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _count(self, queue: str, batch: Batch) -> None:
        self.stats.batches += 1
        self.stats.jobs += len(batch.jobs)
        self.stats.cron_runs += len(batch.cron)
        if batch.missed:
            self.stats.missed += batch.missed
            log.warning("archive of %s: %d events were dropped before they were read", queue, batch.missed)

    def _all_tables(self) -> Iterable[Any]:
        t = self.tables
        return (t.jobs, t.cron_logs, t.cron_metrics, t.cursors)
