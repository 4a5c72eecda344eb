"""The service's reads and writes (SQLAlchemy 2, SQLite by default,
PostgreSQL through ``DATABASE_URL``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from distribution.models import Base, Connection, Dispatch, Post, Schedule, utcnow

DEFAULT_URL = "sqlite+aiosqlite:///distribution.db"


def database_url(url: str | None = None) -> str:
    """``url``, else ``DATABASE_URL``, else a SQLite file here; plain
    ``postgresql://`` and ``sqlite:///`` get their async drivers."""
    url = url or os.environ.get("DATABASE_URL") or DEFAULT_URL
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _sqlite_pragmas(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str | None = None) -> AsyncEngine:
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _dispatch_to(session: AsyncSession, schedule_id: int, connection_id: int) -> Dispatch | None:
    """The dispatch of a schedule to one account."""
    query = select(Dispatch).where(
        Dispatch.schedule_id == schedule_id, Dispatch.connection_id == connection_id
    )
    return (await session.execute(query)).scalar_one_or_none()


class NotFound(LookupError):
    pass


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def aclose(self) -> None:
        await self.engine.dispose()

    # -- connections and posts -------------------------------------------

    async def add_connection(
        self, network: str, account: str, access_token: str, refresh_token: str, expires_at: datetime
    ) -> Connection:
        row = Connection(
            network=network,
            account=account,
            access_token=access_token,
            refresh_token=refresh_token,
            token_expires_at=expires_at,
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return row

    async def connection(self, connection_id: int) -> Connection | None:
        async with self.sessions() as session:
            return await session.get(Connection, connection_id)

    async def connections(self) -> list[Connection]:
        async with self.sessions() as session:
            return list((await session.execute(select(Connection).order_by(Connection.id))).scalars())

    async def set_token(self, connection_id: int, access_token: str, expires_at: datetime) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(Connection)
                .where(Connection.id == connection_id)
                .values(access_token=access_token, token_expires_at=expires_at, refreshed_at=utcnow())
            )

    async def add_post(self, body: str) -> Post:
        row = Post(body=body)
        async with self.sessions.begin() as session:
            session.add(row)
        return row

    # -- schedules and dispatches ----------------------------------------

    async def add_schedule(
        self,
        post_id: int,
        connection_ids: Sequence[int],
        *,
        scheduled_for: datetime | None,
        custom_message: str | None,
        request_ai_assets: bool,
        job_ids: Callable[[int, int], str] | None = None,
    ) -> tuple[Schedule, list[Dispatch]]:
        """A schedule of ``post_id`` to each connection, with a queued
        dispatch per connection, in one transaction; NotFound names a
        missing post or account. ``job_ids(schedule id, connection id)``
        gives each dispatch its job's id at once."""
        async with self.sessions.begin() as session:
            if await session.get(Post, post_id) is None:
                raise NotFound(f"no post {post_id}")
            known = set(
                (
                    await session.execute(select(Connection.id).where(Connection.id.in_(connection_ids)))
                ).scalars()
            )
            if missing := [c for c in connection_ids if c not in known]:
                raise NotFound(f"no connection {', '.join(map(str, missing))}")
            schedule = Schedule(
                post_id=post_id,
                scheduled_for=scheduled_for,
                status="scheduled" if scheduled_for else "publishing",
                custom_message=custom_message,
                request_ai_assets=request_ai_assets,
            )
            session.add(schedule)
            await session.flush()
            dispatches = [
                Dispatch(
                    schedule_id=schedule.id,
                    connection_id=c,
                    job_id=job_ids(schedule.id, c) if job_ids else None,
                )
                for c in dict.fromkeys(connection_ids)
            ]
            session.add_all(dispatches)
        return schedule, dispatches

    async def schedule(self, schedule_id: int) -> tuple[Schedule, list[Dispatch]] | None:
        async with self.sessions() as session:
            schedule = await session.get(Schedule, schedule_id)
            if schedule is None:
                return None
            query = select(Dispatch).where(Dispatch.schedule_id == schedule_id).order_by(Dispatch.id)
            return schedule, list((await session.execute(query)).scalars())

    async def dispatch(self, schedule_id: int, connection_id: int) -> Dispatch | None:
        async with self.sessions() as session:
            return await _dispatch_to(session, schedule_id, connection_id)

    async def start_dispatch(
        self, schedule_id: int, connection_id: int, *, post_id: int, attempt: int, job_id: str
    ) -> tuple[Dispatch, Post | None, Connection | None] | None:
        """One transaction: the dispatch (None when there is none), and
        unless it was sent already, its post and account, with the
        dispatch marked ``sending`` by this attempt of ``job_id``."""
        async with self.sessions.begin() as session:
            row = await _dispatch_to(session, schedule_id, connection_id)
            if row is None or row.status == "sent":
                return (row, None, None) if row else None
            post, connection = await session.get(Post, post_id), await session.get(Connection, connection_id)
            if post is not None and connection is not None:
                row.status, row.attempts, row.job_id = "sending", attempt, job_id
            return row, post, connection

    async def finish_dispatch(self, dispatch_id: int, schedule_id: int, external_id: str) -> str:
        """One transaction: the dispatch recorded as sent, and its schedule
        settled; returns the schedule's status."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(Dispatch)
                .where(Dispatch.id == dispatch_id)
                .values(status="sent", external_id=external_id, error=None, sent_at=utcnow())
            )
            return await self._settle(session, schedule_id)

    async def dispatch_by_id(self, dispatch_id: int) -> Dispatch | None:
        async with self.sessions() as session:
            return await session.get(Dispatch, dispatch_id)

    async def dispatch_by_job(self, job_id: str) -> Dispatch | None:
        async with self.sessions() as session:
            query = select(Dispatch).where(Dispatch.job_id == job_id)
            return (await session.execute(query)).scalar_one_or_none()

    async def update_dispatch(self, dispatch_id: int, **values: object) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(Dispatch).where(Dispatch.id == dispatch_id).values(**values))

    async def set_schedule_status(self, schedule_id: int, status: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(Schedule).where(Schedule.id == schedule_id).values(status=status))

    async def settle_schedule(self, schedule_id: int) -> str:
        """Sets the schedule's status from its dispatches once none is
        pending; returns the status."""
        async with self.sessions.begin() as session:
            return await self._settle(session, schedule_id)

    @staticmethod
    async def _settle(session: AsyncSession, schedule_id: int) -> str:
        # The schedule's row lock first: two dispatches of one schedule
        # finishing at once settle one after the other, each seeing the
        # other's status.
        schedule = await session.get(Schedule, schedule_id, with_for_update=True)
        if schedule is None:
            raise NotFound(f"no schedule {schedule_id}")
        query = select(Dispatch.status).where(Dispatch.schedule_id == schedule_id)
        statuses = list((await session.execute(query)).scalars())
        if statuses and all(s in ("sent", "failed") for s in statuses):
            sent = statuses.count("sent")
            schedule.status = "published" if sent == len(statuses) else "partial" if sent else "failed"
        return schedule.status
