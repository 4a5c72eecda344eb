"""The archive's database side: the cursor, and a batch written with it in
one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from conveyor.archive.rows import Batch, CronRun, metrics_of
from conveyor.archive.tables import ArchiveTables


class CursorMoved(Exception):
    """Raised when another archiver moved a queue's cursor first: this
    batch is not written, and the reader resumes from where the other got."""


class Store:
    def __init__(self, engine: AsyncEngine, tables: ArchiveTables) -> None:
        self.engine, self.tables = engine, tables

    async def cursor(self, queue: str) -> int:
        """The last event archived of ``queue`` (0 when none yet); creates
        the queue's cursor row if it has none."""
        cursors = self.tables.cursors
        async with self.engine.begin() as conn:
            found = await conn.scalar(select(cursors.c.event_id).where(cursors.c.queue == queue))
        if found is not None:
            return int(found)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(cursors).values(queue=queue, event_id=0, updated_at=_now()))
        except IntegrityError:  # another archiver created it meanwhile
            return await self.cursor(queue)
        return 0

    async def write(self, queue: str, after: int, last: int, batch: Batch) -> bool:
        """Writes ``batch`` and moves the cursor from ``after`` to ``last``,
        all or nothing (True); CursorMoved if the cursor is no longer at
        ``after``."""
        async with self.engine.begin() as conn:
            cursors = self.tables.cursors
            moved = await conn.execute(
                update(cursors)
                .where(cursors.c.queue == queue, cursors.c.event_id == after)
                .values(event_id=last, updated_at=_now())
            )
            if moved.rowcount != 1:
                raise CursorMoved(queue)
            if batch.jobs:
                await conn.execute(insert(self.tables.jobs), batch.jobs)
            await self._cron(conn, batch.cron)
        return True

    async def log_cron_runs(self, runs: Iterable[CronRun]) -> None:
        async with self.engine.begin() as conn:
            await self._cron(conn, list(runs))

    async def _cron(self, conn: AsyncConnection, runs: list[CronRun]) -> None:
        if not runs:
            return
        await conn.execute(insert(self.tables.cron_logs), [run.row() for run in runs])
        metrics = self.tables.cron_metrics
        for name, adds in metrics_of(runs).items():
            row = (
                await conn.execute(select(metrics).where(metrics.c.job_name == name).with_for_update())
            ).first()
            if row is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(metrics).values(job_name=name, **adds))
                    continue
                except IntegrityError:  # created meanwhile: add to it instead
                    pass
            await conn.execute(
                update(metrics).where(metrics.c.job_name == name).values(**_added(metrics, adds))
            )


def _added(metrics: Any, adds: dict[str, Any]) -> dict[str, Any]:
    """The UPDATE values that add ``adds``'s counts to a row and set its
    latest run where ``adds`` has a later one."""
    c = metrics.c
    values: dict[str, Any] = {k: c[k] + adds[k] for k in ("total_runs", "successful_runs", "failed_runs")}
    values["total_duration_ms"] = c.total_duration_ms + adds["total_duration_ms"]
    later = or_(c.last_run_at.is_(None), c.last_run_at <= adds["last_run_at"])
    for column in ("last_run_at", "last_status", "last_duration_ms", "last_error"):
        values[column] = case((later, literal(adds[column], c[column].type)), else_=c[column])
    return values


def _now() -> datetime:
    return datetime.now(UTC)
