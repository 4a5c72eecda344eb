"""The archive of finished jobs: every completed or failed-for-good run in
``queue_jobs``, every schedule run in ``cron_logs`` and ``cron_metrics``,
written once each, on SQLite and PostgreSQL, while the workers go on
whatever the database does."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aredis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from conveyor import Discard, Fixed, JobContext, Queue, Worker
from conveyor.archive import JobArchive, archive_tables
from conveyor.engine.clock import ManualClock
from conveyor.engine.scheduler import Scheduler
from conveyor.engine.schedules import schedule_of, tick_job_id
from conveyor.errors import InvalidArgument
from polling import wait_until

PG_ADMIN = os.environ.get("CONVEYOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _pg_available() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database of each kind with the archive's tables. PostgreSQL
    needs a server (``CONVEYOR_TEST_PG``, by default the local one); under
    CI a missing one is an error, elsewhere the test is skipped."""
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
        await _create(engine)
        yield engine
        await engine.dispose()
        return
    if not await _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}")
        pytest.skip("PostgreSQL is not reachable")
    name = f"conveyor_archive_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(f"{base}/{name}")
    try:
        await _create(engine)
        yield engine
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _create(engine: AsyncEngine) -> None:
    tables = archive_tables()
    async with engine.begin() as conn:
        await conn.run_sync(tables.jobs.metadata.create_all)


async def _rows(engine: AsyncEngine, table: str, order: str = "id") -> list[dict[str, object]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
        return [dict(r._mapping) for r in result]


async def _true(value: bool) -> bool:
    return value


async def _handler(job: JobContext) -> object:
    if job.data == "discard":
        raise Discard("bad input")
    if job.data == "flaky" and job.attempt < 2:
        raise ConnectionError("upstream down")
    return {"echo": job.data}


async def test_finished_runs_are_archived_with_their_outcome(database: AsyncEngine, queue: Queue) -> None:
    ok = await queue.add("echo", "one")
    flaky = await queue.add("echo", "flaky", attempts=2, backoff=Fixed(0))
    dead = await queue.add("echo", "discard", attempts=3)
    await Worker(queue, _handler).run(burst=True)

    archive = JobArchive(database, [queue])
    await archive.run(burst=True)

    rows = {r["job_id"]: r for r in await _rows(database, "queue_jobs")}
    assert set(rows) == {ok.id, flaky.id, dead.id}
    assert rows[ok.id]["status"] == "completed" and rows[ok.id]["result"] == '{"echo":"one"}'
    assert rows[ok.id]["name"] == "echo" and rows[ok.id]["queue"] == queue.name
    assert rows[flaky.id]["status"] == "completed" and rows[flaky.id]["attempts"] == 2
    assert rows[dead.id]["status"] == "failed" and rows[dead.id]["attempts"] == 1
    assert "bad input" in str(rows[dead.id]["error"]) and rows[dead.id]["result"] is None
    for row in rows.values():
        assert row["finished_at"] is not None and row["started_at"] is not None
        assert isinstance(row["duration_ms"], int) and row["duration_ms"] >= 0
        assert row["schedule"] is None and row["worker_id"]
    assert (archive.stats.jobs, archive.stats.missed) == (3, 0)


async def test_a_restart_resumes_and_writes_nothing_twice(database: AsyncEngine, queue: Queue) -> None:
    for i in range(5):
        await queue.add("echo", i)
    await Worker(queue, _handler).run(burst=True)
    await JobArchive(database, [queue], batch=2).run(burst=True)
    await JobArchive(database, [queue], batch=2).run(burst=True)  # nothing new: nothing written
    for i in range(5, 8):
        await queue.add("echo", i)
    await Worker(queue, _handler).run(burst=True)
    await JobArchive(database, [queue]).run(burst=True)

    rows = await _rows(database, "queue_jobs")
    assert len(rows) == 8 and len({r["job_id"] for r in rows}) == 8


async def test_two_archives_at_once_write_each_run_once(database: AsyncEngine, queue: Queue) -> None:
    for i in range(40):
        await queue.add("echo", i)
    await Worker(queue, _handler).run(burst=True)
    first, second = (JobArchive(database, [queue], batch=3) for _ in range(2))
    await asyncio.gather(first.run(burst=True), second.run(burst=True))

    rows = await _rows(database, "queue_jobs")
    assert len(rows) == 40 and len({r["job_id"] for r in rows}) == 40
    assert first.stats.jobs + second.stats.jobs == 40


async def test_schedule_runs_go_to_cron_logs_and_metrics(
    database: AsyncEngine, redis: aredis.Redis, queue_name: str
) -> None:
    clock = ManualClock()
    queue = Queue(queue_name, redis, clock=clock)
    await queue.upsert_schedule("nightly-cleanup", "cleanup", "ok", every=60)
    await queue.upsert_schedule("resync", "resync", "discard", every=60)
    scheduler = Scheduler([queue])
    for _ in range(3):
        clock.advance(60)
        await scheduler.tick()
    await Worker(queue, _handler).run(burst=True)
    await JobArchive(database, [queue]).run(burst=True)

    logs = await _rows(database, "cron_logs")
    assert sorted((r["job_name"], r["status"]) for r in logs) == sorted(
        [("nightly-cleanup", "completed")] * 3 + [("resync", "failed")] * 3
    )
    assert all(r["queue"] == queue_name and str(r["job_id"]).startswith("repeat:") for r in logs)
    metrics = {r["job_name"]: r for r in await _rows(database, "cron_metrics", "job_name")}
    assert (metrics["nightly-cleanup"]["total_runs"], metrics["nightly-cleanup"]["successful_runs"]) == (3, 3)
    assert (metrics["resync"]["failed_runs"], metrics["resync"]["last_status"]) == (3, "failed")
    assert "bad input" in str(metrics["resync"]["last_error"])
    jobs = await _rows(database, "queue_jobs")
    assert {r["schedule"] for r in jobs} == {"nightly-cleanup", "resync"}


async def test_log_cron_run_records_an_outside_run(database: AsyncEngine, queue: Queue) -> None:
    archive = JobArchive(database, [queue])
    start = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    await archive.log_cron_run(
        "calculate-trending", status="completed", started_at=start, completed_at=start + timedelta(seconds=2)
    )
    await archive.log_cron_run(
        "calculate-trending",
        status="failed",
        started_at=start + timedelta(hours=1),
        completed_at=start + timedelta(hours=1, seconds=1),
        error="timeout",
    )
    with pytest.raises(InvalidArgument):
        await archive.log_cron_run("calculate-trending", status="maybe")
    with pytest.raises(InvalidArgument):
        await archive.log_cron_run("", status="completed")

    logs = await _rows(database, "cron_logs")
    assert [(r["status"], r["duration_ms"]) for r in logs] == [("completed", 2000), ("failed", 1000)]
    (metrics,) = await _rows(database, "cron_metrics", "job_name")
    assert (metrics["total_runs"], metrics["successful_runs"], metrics["failed_runs"]) == (2, 1, 1)
    assert (metrics["total_duration_ms"], metrics["last_status"], metrics["last_error"]) == (
        3000,
        "failed",
        "timeout",
    )


async def test_the_workers_go_on_while_the_database_is_down_and_the_archive_catches_up(
    tmp_path: Path, queue: Queue
) -> None:
    path = tmp_path / "jobs.db"
    # a short busy timeout: a locked database fails a write at once, as a down one would
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.05})
    await _create(engine)
    archive = JobArchive(engine, [queue], block=0.05, retry_max=0.1)
    blocker = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with blocker.connect() as locked:
            await locked.execute(text("BEGIN EXCLUSIVE"))  # the database refuses every writer
            async with archive.running():
                for i in range(20):
                    await queue.add("echo", i)
                await Worker(queue, _handler).run(burst=True)  # every job finishes meanwhile
                await wait_until(lambda: _true(archive.stats.write_failures >= 2), within=10)
                await locked.execute(text("ROLLBACK"))  # the database is back
                await wait_until(lambda: _true(archive.stats.jobs >= 20), within=10)
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(archive.tables.jobs)) == 20
        assert archive.stats.last_error is not None and "locked" in archive.stats.last_error
    finally:
        await blocker.dispose()
        await engine.dispose()


async def test_events_dropped_before_they_were_read_are_counted(database: AsyncEngine, queue: Queue) -> None:
    await queue.set_events_max(5)  # trimmed by whole stream nodes (100 entries) at a time
    for i in range(300):
        await queue.add("echo", i)
    await Worker(queue, _handler).run(burst=True)
    archive = JobArchive(database, [queue])
    await archive.run(burst=True)
    assert archive.stats.missed > 0
    assert archive.stats.jobs < 300


async def test_an_obliterated_queue_is_archived_again_from_its_first_event(
    database: AsyncEngine, queue: Queue
) -> None:
    for i in range(3):
        await queue.add("echo", i)
    await Worker(queue, _handler).run(burst=True)
    await JobArchive(database, [queue]).run(burst=True)
    await queue.obliterate()
    await queue.add("echo", "again")
    await Worker(queue, _handler).run(burst=True)
    await JobArchive(database, [queue]).run(burst=True)
    assert len(await _rows(database, "queue_jobs")) == 4


def test_bad_settings_are_refused(queue: Queue) -> None:
    for bad in ({"batch": 0}, {"result_chars": -1}, {"block": -1}, {"retry_max": float("nan")}):
        with pytest.raises(InvalidArgument):
            JobArchive("sqlite+aiosqlite://", [queue], **bad)
    with pytest.raises(InvalidArgument):
        JobArchive("sqlite+aiosqlite://", [queue, queue])


def test_a_tick_job_id_names_its_schedule() -> None:
    assert schedule_of(tick_job_id("sync:eu", 1_700_000_000_000)) == "sync:eu"
    for other in ("repeat:", "repeat:nightly", "repeat:nightly:soon", "job-1"):
        assert schedule_of(other) is None


async def test_a_job_removed_as_it_completed_is_archived_from_its_event(
    database: AsyncEngine, queue: Queue
) -> None:
    gone = await queue.add("echo", "brief", remove_on_complete=True)
    await Worker(queue, _handler).run(burst=True)
    assert await queue.get_job(gone.id) is None

    await JobArchive(database, [queue]).run(burst=True)

    (row,) = await _rows(database, "queue_jobs")
    assert (row["job_id"], row["name"], row["status"]) == (gone.id, "echo", "completed")
    assert row["result"] == '{"echo":"brief"}' and row["started_at"] is not None
    assert row["duration_ms"] is not None and row["created_at"] is None  # the event does not carry it


CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def _archive_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run([CONVEYOR, "archive", *args], capture_output=True, text=True, env=env, timeout=60)


def _start_archive(redis_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.Popen([CONVEYOR, "archive", *args], env=env, stdout=subprocess.PIPE, text=True)


async def test_the_command_archives_what_finished_then_exits(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    for i in range(3):
        await queue.add("echo", i)
    await Worker(queue, _handler).run(burst=True)
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"

    unknown = _archive_cli(redis_url, url, "--queues", "no-such-queue", "--burst", "--create-tables")
    assert unknown.returncode == 1 and unknown.stderr.strip().splitlines() == [
        "error: unknown queue 'no-such-queue' (see `conveyor queues`)"
    ]
    done = _archive_cli(redis_url, url, "--queues", queue.name, "--burst", "--create-tables")
    assert done.returncode == 0, done.stderr
    assert "archived 3 jobs and 0 schedule runs" in done.stdout

    engine = create_async_engine(url)
    try:
        assert len(await _rows(engine, "queue_jobs")) == 3
    finally:
        await engine.dispose()


async def test_the_command_follows_until_it_is_told_to_stop(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    engine = create_async_engine(url)
    await _create(engine)
    await queue.add("echo", "first")  # the queue exists before the command starts
    proc = _start_archive(redis_url, url, "--queues", queue.name)
    try:
        for i in range(4):
            await queue.add("echo", i)
        await Worker(queue, _handler).run(burst=True)

        async def archived() -> bool:
            return len(await _rows(engine, "queue_jobs")) == 5

        await wait_until(archived, within=30)
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0 and "archived 5 jobs" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await engine.dispose()
