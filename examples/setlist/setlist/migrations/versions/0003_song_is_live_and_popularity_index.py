"""the seed's Song.isLive and its popularity index

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("songs") as batch_op:
        batch_op.add_column(sa.Column("is_live", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index("idx_song_pop", ["popularity"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("songs") as batch_op:
        batch_op.drop_index("idx_song_pop")
        batch_op.drop_column("is_live")
