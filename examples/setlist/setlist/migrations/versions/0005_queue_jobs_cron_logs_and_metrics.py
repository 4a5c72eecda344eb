"""queue jobs, cron logs and metrics (Conveyor's archive)

Seed 002's ``queue_jobs``, ``cron_logs`` and ``cron_metrics``, with the
time-based indexes, as ``conveyor.archive.archive_tables`` defines them,
and the archive's place per queue.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 00:02:13.251114
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conveyor_archive_cursors",
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("queue"),
    )
    op.create_table(
        "cron_logs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("job_name", sa.String(length=512), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=True),
        sa.Column("job_id", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cron_logs", schema=None) as batch_op:
        batch_op.create_index("idx_cron_logs_completed", ["completed_at"], unique=False)
        batch_op.create_index("idx_cron_logs_job_started", ["job_name", "started_at"], unique=False)
        batch_op.create_index("idx_cron_logs_status_completed", ["status", "completed_at"], unique=False)

    op.create_table(
        "cron_metrics",
        sa.Column("job_name", sa.String(length=512), nullable=False),
        sa.Column("total_runs", sa.BigInteger(), nullable=False),
        sa.Column("successful_runs", sa.BigInteger(), nullable=False),
        sa.Column("failed_runs", sa.BigInteger(), nullable=False),
        sa.Column("total_duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("last_duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job_name"),
    )
    with op.batch_alter_table("cron_metrics", schema=None) as batch_op:
        batch_op.create_index("idx_cron_metrics_last_run", ["last_run_at"], unique=False)

    op.create_table(
        "queue_jobs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("job_id", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("schedule", sa.String(length=512), nullable=True),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wait_ms", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("queue", "event_id", "job_id", name="uq_queue_jobs_event"),
    )
    with op.batch_alter_table("queue_jobs", schema=None) as batch_op:
        batch_op.create_index("idx_queue_jobs_finished", ["finished_at"], unique=False)
        batch_op.create_index("idx_queue_jobs_job", ["queue", "job_id"], unique=False)
        batch_op.create_index("idx_queue_jobs_queue_finished", ["queue", "finished_at"], unique=False)
        batch_op.create_index("idx_queue_jobs_status_finished", ["status", "finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("queue_jobs", schema=None) as batch_op:
        batch_op.drop_index("idx_queue_jobs_status_finished")
        batch_op.drop_index("idx_queue_jobs_queue_finished")
        batch_op.drop_index("idx_queue_jobs_job")
        batch_op.drop_index("idx_queue_jobs_finished")

    op.drop_table("queue_jobs")
    with op.batch_alter_table("cron_metrics", schema=None) as batch_op:
        batch_op.drop_index("idx_cron_metrics_last_run")

    op.drop_table("cron_metrics")
    with op.batch_alter_table("cron_logs", schema=None) as batch_op:
        batch_op.drop_index("idx_cron_logs_status_completed")
        batch_op.drop_index("idx_cron_logs_job_started")
        batch_op.drop_index("idx_cron_logs_completed")

    op.drop_table("cron_logs")
    op.drop_table("conveyor_archive_cursors")
