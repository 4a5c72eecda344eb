"""The migrations build exactly the model's schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from setlist.db import make_engine, migrate
from setlist.models import Base


async def test_migrations_match_the_models_and_run_twice(database_url: str) -> None:
    await migrate(database_url)  # already at head: nothing to do

    engine = make_engine(database_url)

    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with engine.connect() as connection:
        diff = await connection.run_sync(differences)
    await engine.dispose()
    assert diff == []
