"""The archive's tables, for ``metadata.create_all`` or an app's own
migrations (Alembic's autogenerate sees them once they are in the app's
``MetaData``).

- ``queue_jobs``: one row per finished run of a job (completed, or failed
  for good), with its queue, id, name, attempts, timings and error;
- ``cron_logs``: one row per run of a schedule (a job a schedule started,
  or a run reported with :meth:`JobArchive.log_cron_run`);
- ``cron_metrics``: per schedule, its runs, successes, failures, total and
  last duration, kept up to date with ``cron_logs``;
- ``conveyor_archive_cursors``: per queue, the last queue event archived.
  It moves in the same transaction as the rows, so a batch is written
  exactly once.

The time-based indexes serve the usual questions: what finished in the
last hour, what failed today, a schedule's recent runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: An identifier column: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite.
_ID = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True, slots=True)
class ArchiveTables:
    jobs: Table
    cron_logs: Table
    cron_metrics: Table
    cursors: Table


def archive_tables(metadata: MetaData | None = None, *, prefix: str = "") -> ArchiveTables:
    """The archive's four tables in ``metadata`` (a new one by default),
    named ``queue_jobs``, ``cron_logs``, ``cron_metrics`` and
    ``conveyor_archive_cursors``, each after ``prefix``."""
    md = metadata if metadata is not None else MetaData()
    jobs = Table(
        f"{prefix}queue_jobs",
        md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("queue", String(200), nullable=False),
        Column("job_id", String(512), nullable=False),
        Column("name", String(200), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("error", Text),
        Column("result", Text),
        Column("schedule", String(512)),
        Column("worker_id", String(200)),
        Column("created_at", DateTime(timezone=True)),
        Column("started_at", DateTime(timezone=True)),
        Column("finished_at", DateTime(timezone=True), nullable=False),
        Column("wait_ms", BigInteger),
        Column("duration_ms", BigInteger),
        Column("event_id", BigInteger, nullable=False),
        UniqueConstraint("queue", "event_id", "job_id", name=f"uq_{prefix}queue_jobs_event"),
        Index(f"idx_{prefix}queue_jobs_finished", "finished_at"),
        Index(f"idx_{prefix}queue_jobs_queue_finished", "queue", "finished_at"),
        Index(f"idx_{prefix}queue_jobs_status_finished", "status", "finished_at"),
        Index(f"idx_{prefix}queue_jobs_job", "queue", "job_id"),
    )
    cron_logs = Table(
        f"{prefix}cron_logs",
        md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("job_name", String(512), nullable=False),
        Column("queue", String(200)),
        Column("job_id", String(512)),
        Column("status", String(16), nullable=False),
        Column("started_at", DateTime(timezone=True)),
        Column("completed_at", DateTime(timezone=True), nullable=False),
        Column("duration_ms", BigInteger),
        Column("error_message", Text),
        Column("details", Text),
        Index(f"idx_{prefix}cron_logs_job_started", "job_name", "started_at"),
        Index(f"idx_{prefix}cron_logs_completed", "completed_at"),
        Index(f"idx_{prefix}cron_logs_status_completed", "status", "completed_at"),
    )
    cron_metrics = Table(
        f"{prefix}cron_metrics",
        md,
        Column("job_name", String(512), primary_key=True),
        Column("total_runs", BigInteger, nullable=False),
        Column("successful_runs", BigInteger, nullable=False),
        Column("failed_runs", BigInteger, nullable=False),
        Column("total_duration_ms", BigInteger, nullable=False),
        Column("last_run_at", DateTime(timezone=True)),
        Column("last_status", String(16)),
        Column("last_duration_ms", BigInteger),
        Column("last_error", Text),
        Index(f"idx_{prefix}cron_metrics_last_run", "last_run_at"),
    )
    cursors = Table(
        f"{prefix}conveyor_archive_cursors",
        md,
        Column("queue", String(200), primary_key=True),
        Column("event_id", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    return ArchiveTables(jobs, cron_logs, cron_metrics, cursors)
