"""sync jobs, their progress, system health

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 21:33:23.644470
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_health",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("redis_ok", sa.Boolean(), nullable=False),
        sa.Column("redis_used_memory", sa.BigInteger(), nullable=True),
        sa.Column("database_ok", sa.Boolean(), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("system_health", schema=None) as batch_op:
        batch_op.create_index("idx_system_health_checked", ["checked_at"], unique=False)

    op.create_table(
        "sync_jobs",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("artist_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["artist_id"], ["artists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.create_index("idx_sync_jobs_artist_created", ["artist_id", "created_at"], unique=False)
        batch_op.create_index("idx_sync_jobs_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "sync_progress",
        sa.Column("sync_job_id", sa.String(length=200), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["sync_job_id"], ["sync_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sync_job_id", "phase"),
    )


def downgrade() -> None:
    op.drop_table("sync_progress")
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.drop_index("idx_sync_jobs_status_created")
        batch_op.drop_index("idx_sync_jobs_artist_created")

    op.drop_table("sync_jobs")
    with op.batch_alter_table("system_health", schema=None) as batch_op:
        batch_op.drop_index("idx_system_health_checked")

    op.drop_table("system_health")
