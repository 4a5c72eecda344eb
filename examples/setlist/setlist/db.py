"""Database access: the engine from ``DATABASE_URL`` (SQLite by default),
migrations with Alembic, and sessions."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_URL = "sqlite+aiosqlite:///setlist.db"


def database_url(url: str | None = None) -> str:
    """``url``, else ``DATABASE_URL`` (``postgresql://`` is read as asyncpg),
    else a SQLite file in the working directory."""
    url = url or os.environ.get("DATABASE_URL") or DEFAULT_URL
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return config


async def migrate(url: str | None = None) -> None:
    """Brings the schema to the latest migration (idempotent)."""
    # Alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, alembic_config(database_url(url)), "head")


def make_engine(url: str | None = None) -> AsyncEngine:
    url = database_url(url)
    if url.startswith("sqlite"):
        # one writer at a time: wait for the lock rather than fail at once
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """Write-ahead logging: readers no longer wait for the writer (the API
    reads while the workers write), and a commit syncs the log only."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
