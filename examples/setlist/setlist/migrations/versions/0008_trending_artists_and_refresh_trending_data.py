"""trending_artists and refresh_trending_data()

Seed 002's ``refresh_trending_data()``: on PostgreSQL a materialized view
of the trending leaderboard, with the unique index a concurrent refresh
needs, and the function refreshing it; on SQLite a table of the same
columns, which the app rewrites (``setlist.trending_view.refresh``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# the query of setlist.trending_view.leaderboard, in PostgreSQL's SQL
VIEW = """
CREATE MATERIALIZED VIEW trending_artists AS
SELECT a.id AS artist_id,
       a.name,
       a.slug,
       a.trending_score,
       row_number() OVER (ORDER BY a.trending_score DESC, a.id) AS rank,
       (SELECT count(*) FROM shows s
         WHERE s.artist_id = a.id
           AND s.local_date >= (now() AT TIME ZONE 'UTC')::date
           AND s.status <> 'cancelled') AS upcoming_shows,
       (SELECT count(*) FROM votes v JOIN shows s ON s.id = v.show_id
         WHERE s.artist_id = a.id AND v.created_at >= now() - interval '7 days') AS recent_votes,
       a.view_count AS views,
       now() AS refreshed_at
  FROM artists a
 WHERE a.import_status = 'complete'
WITH DATA
"""

FUNCTION = """
CREATE FUNCTION refresh_trending_data() RETURNS void LANGUAGE sql AS $$
    REFRESH MATERIALIZED VIEW CONCURRENTLY trending_artists
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(VIEW)
        op.execute("CREATE UNIQUE INDEX idx_trending_artists_artist ON trending_artists (artist_id)")
        op.execute("CREATE INDEX idx_trending_artists_rank ON trending_artists (rank)")
        op.execute(FUNCTION)
        return
    op.create_table(
        "trending_artists",
        sa.Column("artist_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("slug", sa.String(length=320), nullable=True),
        sa.Column("trending_score", sa.Float(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("upcoming_shows", sa.Integer(), nullable=True),
        sa.Column("recent_votes", sa.Integer(), nullable=True),
        sa.Column("views", sa.Integer(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("artist_id"),
    )
    op.create_index("idx_trending_artists_rank", "trending_artists", ["rank"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION refresh_trending_data()")
        op.execute("DROP MATERIALIZED VIEW trending_artists")
        return
    op.drop_index("idx_trending_artists_rank", table_name="trending_artists")
    op.drop_table("trending_artists")
