"""venue details, artist images and webhooks

The venue sync's columns (address, postal code, upcoming events, when it
last ran), the resized artist images of the image-processing queue and
the webhooks that import events are delivered to.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 03:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN, as in 0006: SQLite has it
    op.add_column("venues", sa.Column("address", sa.String(length=300), nullable=True))
    op.add_column("venues", sa.Column("postal_code", sa.String(length=20), nullable=True))
    op.add_column("venues", sa.Column("upcoming_events", sa.Integer(), nullable=True))
    op.add_column("venues", sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "artist_images",
        sa.Column("artist_id", sa.String(length=36), nullable=False),
        sa.Column("size", sa.String(length=10), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["artist_id"], ["artists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("artist_id", "size"),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("webhooks")
    op.drop_table("artist_images")
    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.drop_column("synced_at")
        batch_op.drop_column("upcoming_events")
        batch_op.drop_column("postal_code")
        batch_op.drop_column("address")
