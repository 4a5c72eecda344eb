"""vote values and show views

A vote is up (1) or down (-1); votes are counted by time for trending
(``idx_votes_created``); a show's page views are counted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:16:05.500161
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE ... ADD COLUMN: SQLite has it, and a batch (copy and
    # move) would reflect the artists table's expression index
    op.add_column("shows", sa.Column("view_count", sa.Integer(), server_default="0", nullable=False))
    op.add_column("votes", sa.Column("value", sa.SmallInteger(), server_default="1", nullable=False))
    op.add_column("votes", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("idx_votes_created", "votes", ["created_at"], unique=False)
    op.create_index("idx_votes_song", "votes", ["song_id"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_votes_song", table_name="votes")
    op.drop_index("idx_votes_created", table_name="votes")
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("value")
    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.drop_column("view_count")
