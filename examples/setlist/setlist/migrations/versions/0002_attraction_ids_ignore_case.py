"""attraction ids are unique whatever their letter case

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 21:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_artists_tm_attraction_lower", "artists", [sa.text("lower(tm_attraction_id)")], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_artists_tm_attraction_lower", table_name="artists")
