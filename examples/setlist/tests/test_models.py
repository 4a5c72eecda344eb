"""The migrations build exactly the model's schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from setlist.db import make_engine, migrate
from setlist.models import Base
from setlist.trending_view import is_view_object


async def test_migrations_match_the_models_and_run_twice(database_url: str) -> None:
    await migrate(database_url)  # already at head: nothing to do

    engine = make_engine(database_url)

    def differences(connection: Connection) -> list[object]:
        with warnings.catch_warnings():  # reflection skips expression indexes: checked below
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
            warnings.filterwarnings(
                "ignore", "autogenerate skipping metadata-specified expression-based index"
            )
            # the trending leaderboard is a view on PostgreSQL, kept out of the models
            skip = {"include_object": lambda obj, name, kind, *_: not is_view_object(name, kind)}
            return list(compare_metadata(MigrationContext.configure(connection, opts=skip), Base.metadata))

    async with engine.connect() as connection:
        diff = await connection.run_sync(differences)
        catalog = (
            "SELECT name FROM sqlite_master WHERE type = 'index'"
            if connection.dialect.name == "sqlite"
            else "SELECT indexname FROM pg_indexes"
        )
        indexes = set((await connection.execute(text(catalog))).scalars())
    await engine.dispose()
    assert diff == []
    assert "uq_artists_tm_attraction_lower" in indexes
