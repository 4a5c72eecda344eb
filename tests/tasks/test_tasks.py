"""The app object: typed tasks checked at enqueue and at run, queue limits
and schedules written on start, progress on the bus, unknown or bad jobs
discarded with a clear error."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis
from pydantic import BaseModel

from conveyor import (
    Conveyor,
    ConveyorError,
    Exponential,
    InvalidJobOptions,
    InvalidSchedule,
    JobState,
    RateLimit,
    TaskContext,
)


class Summary(BaseModel):
    artist: str
    albums: int
    since: date


def make_app(redis: aredis.Redis, queue_name: str) -> tuple[Conveyor, Any, Any]:
    app = Conveyor(redis, progress_namespace=queue_name)
    sync = app.queue(queue_name, concurrency=2, rate_limit=RateLimit(50, per=1.0), global_concurrency=4)

    @sync.task(attempts=3, backoff=Exponential(0.01))
    async def import_catalog(ctx: TaskContext, artist_id: str, since: date, full: bool = False) -> Summary:
        await ctx.progress("albums", 50, "listing albums")
        return Summary(artist=artist_id, albums=2 if full else 1, since=since)

    @sync.task(name="flaky")
    async def sometimes(ctx: TaskContext, fail_until: int) -> int:
        if ctx.attempt < fail_until:
            raise RuntimeError(f"attempt {ctx.attempt} failed")
        return ctx.attempt

    return app, import_catalog, sometimes


async def test_enqueued_arguments_are_checked_and_the_task_gets_typed_values(
    redis: aredis.Redis, queue_name: str
) -> None:
    app, import_catalog, _ = make_app(redis, queue_name)

    job = await import_catalog.enqueue("abc", since="2020-01-31", full=True)
    assert job.name == "import_catalog"
    assert job.data == {"artist_id": "abc", "since": "2020-01-31", "full": True}
    await app.run_worker(burst=True)

    done = await app.queues[queue_name].queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.result == {"artist": "abc", "albums": 2, "since": "2020-01-31"}
    assert done.progress == {"stage": "albums", "percent": 50, "message": "listing albums"}


async def test_many_calls_are_enqueued_at_once_each_checked_first(
    redis: aredis.Redis, queue_name: str
) -> None:
    app, import_catalog, _ = make_app(redis, queue_name)
    queue = app.queues[queue_name].queue

    # one bad call among many: nothing is written
    with pytest.raises(InvalidJobOptions, match="since"):
        await import_catalog.enqueue_many(
            [{"artist_id": "a", "since": "2020-01-01"}, {"artist_id": "b", "since": "?"}]
        )
    with pytest.raises(InvalidJobOptions, match="keyword arguments"):
        await import_catalog.enqueue_many([("a", "2020-01-01")])
    assert sum((await queue.counts()).values()) == 0

    calls = [({"artist_id": f"a{i}", "since": "2020-01-31"}, {"job_id": f"sync-{i}"}) for i in range(1500)]
    jobs = await import_catalog.enqueue_many([*calls, {"artist_id": "plain", "since": date(2021, 1, 1)}])
    assert [j.id for j in jobs[:2]] == ["sync-0", "sync-1"] and len(jobs) == 1501
    assert jobs[-1].data == {"artist_id": "plain", "since": "2021-01-01", "full": False}
    # the same ids again add nothing; options bound first apply under each call's
    again = await import_catalog.with_options(priority=5).enqueue_many(
        [*calls[:2], ({"artist_id": "x", "since": "2020-01-01"}, {"job_id": "x"})]
    )
    assert [j.id for j in again] == ["sync-0", "sync-1", "x"]
    assert (await queue.counts())[JobState.WAITING] == 1502
    bound = await import_catalog.get_job("x")
    assert bound is not None and bound.priority == 5

    last = await import_catalog.get_job("sync-1499")  # past the first thousand: the second add
    assert last is not None and last.data == {"artist_id": "a1499", "since": "2020-01-31", "full": False}


async def test_bad_arguments_raise_at_enqueue_and_write_nothing(redis: aredis.Redis, queue_name: str) -> None:
    app, import_catalog, _ = make_app(redis, queue_name)
    queue = app.queues[queue_name].queue

    with pytest.raises(InvalidJobOptions, match="since"):
        await import_catalog.enqueue("abc", since="not a date")
    with pytest.raises(InvalidJobOptions, match="missing a required argument"):
        await import_catalog.enqueue(since="2020-01-01")
    with pytest.raises(InvalidJobOptions, match="unexpected keyword"):
        await import_catalog.enqueue("abc", since="2020-01-01", colour="red")

    assert sum((await queue.counts()).values()) == 0


async def test_task_options_apply_and_with_options_adds_per_call_ones(
    redis: aredis.Redis, queue_name: str
) -> None:
    app, import_catalog, sometimes = make_app(redis, queue_name)

    job = await import_catalog.with_options(job_id="import:abc", delay=timedelta(hours=1)).enqueue(
        "abc", since=date(2020, 1, 1)
    )
    again = await import_catalog.with_options(job_id="import:abc").enqueue("abc", since=date(2020, 1, 1))
    flaky = await sometimes.enqueue(fail_until=3)
    await app.run_worker(burst=True)

    assert job.id == again.id == "import:abc"
    queue = app.queues[queue_name].queue
    delayed = await queue.get_job("import:abc")
    assert delayed is not None and delayed.state is JobState.DELAYED and delayed.options["a"] == 3
    finished = await queue.get_job(flaky.id)
    # "flaky" has its own options: one attempt, so the first failure is final
    assert finished is not None and finished.state is JobState.FAILED and finished.attempts_made == 1


async def test_a_job_with_an_unknown_name_or_bad_data_fails_without_retry(
    redis: aredis.Redis, queue_name: str
) -> None:
    app, _, _ = make_app(redis, queue_name)
    queue = app.queues[queue_name].queue

    stranger = await queue.add("no_such_task", {}, attempts=5)
    garbled = await queue.add("import_catalog", {"artist_id": 1, "since": "yesterday"}, attempts=5)
    not_an_object = await queue.add("import_catalog", [1, 2], attempts=5)
    await app.run_worker(burst=True)

    for job_id, reason in (
        (stranger.id, "has no task named 'no_such_task'"),
        (garbled.id, "bad arguments"),
        (not_an_object.id, "must be an object"),
    ):
        failed = await queue.get_job(job_id)
        assert failed is not None and failed.state is JobState.FAILED
        assert failed.attempts_made == 1
        assert reason in (failed.error or "")


async def test_starting_a_worker_writes_declared_limits_and_schedules(
    redis: aredis.Redis, queue_name: str
) -> None:
    app, import_catalog, _ = make_app(redis, queue_name)
    app.schedule(
        "0 * * * *", import_catalog, key="hourly", kwargs={"artist_id": "abc", "since": "2020-01-01"}
    )

    await app.setup()
    await app.setup()  # idempotent

    queue = app.queues[queue_name].queue
    limits = await queue.limits()
    assert limits.rate_limit == RateLimit(50, per=1.0) and limits.concurrency == 4
    schedules = await queue.get_schedules()
    assert [(s.key, s.name, s.data, s.cron) for s in schedules] == [
        ("hourly", "import_catalog", {"artist_id": "abc", "since": "2020-01-01", "full": False}, "0 * * * *")
    ]
    assert schedules[0].options.get("attempts") == 3


async def test_bad_declarations_fail_at_declaration(redis: aredis.Redis, queue_name: str) -> None:
    app, import_catalog, _ = make_app(redis, queue_name)
    queue = app.queues[queue_name]

    with pytest.raises(InvalidSchedule):
        app.schedule(
            "61 * * * *", import_catalog, key="bad", kwargs={"artist_id": "a", "since": "2020-01-01"}
        )
    with pytest.raises(InvalidJobOptions, match="since"):
        app.schedule("@daily", import_catalog, key="bad", kwargs={"artist_id": "a"})
    with pytest.raises(InvalidJobOptions):
        queue.task(attempts=0)(_plain_task)
    with pytest.raises(TypeError, match="must take a SyncTaskContext"):  # a plain def's context
        queue.task(_sync_task)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\*args"):
        queue.task(_variadic_task)
    with pytest.raises(ValueError, match="twice"):
        app.queue(queue_name)
    assert app.schedules == {}


async def _plain_task(ctx: TaskContext) -> None:
    return None


def _sync_task(ctx: TaskContext) -> None:
    return None


async def _variadic_task(ctx: TaskContext, *names: str) -> None:
    return None


async def test_task_progress_reaches_the_progress_bus(redis: aredis.Redis, queue_name: str) -> None:
    app, import_catalog, _ = make_app(redis, queue_name)

    job = await import_catalog.enqueue("abc", since="2020-01-01")
    await app.run_worker(burst=True)

    # the task's stage reached the bus, and the job's end closed it
    status = await app.progress.get(f"job:{queue_name}:{job.id}")
    assert status is not None
    assert (status.stage, status.percent, status.finished, status.job_id) == ("completed", 100, True, job.id)
    assert [s.name for s in status.stages] == ["albums", "completed"]


async def test_a_reporter_publishes_under_the_tasks_own_subject(redis: aredis.Redis, queue_name: str) -> None:
    app = Conveyor(redis, progress_namespace=queue_name)
    imports = app.queue(queue_name)

    @imports.task
    async def import_artist(ctx: TaskContext, artist_id: str) -> None:
        reporter = ctx.reporter(f"artist:{artist_id}")
        await reporter.report("shows", 40, "page 2 of 5")
        await reporter.finish()

    job = await import_artist.enqueue("a1")
    await app.run_worker(burst=True)

    status = await app.progress.get("artist:a1")
    assert status is not None and status.stage == "done" and status.finished
    stored = await imports.queue.get_job(job.id)
    assert stored is not None and stored.progress == {"stage": "done", "percent": 100, "message": "done"}


async def test_tasks_make_flows_whose_parent_reads_the_childrens_results(
    redis: aredis.Redis, queue_name: str
) -> None:
    app = Conveyor(redis, progress_namespace=queue_name)
    imports, shows = app.queue(queue_name), app.queue(f"{queue_name}-shows")

    @shows.task(attempts=2)
    async def sync_shows(ctx: TaskContext, artist_id: str, page: int) -> int:
        return page * 10

    @imports.task
    async def wrap_up(ctx: TaskContext, artist_id: str) -> list[int]:
        return sorted((await ctx.children()).results.values())

    def flow() -> Any:
        return wrap_up.node(
            {"artist_id": "a1"},
            job_id="wrap-a1",
            children=[
                sync_shows.node({"artist_id": "a1", "page": p}, job_id=f"shows-a1-{p}", priority=3)
                for p in (1, 2)
            ],
        )

    node = await app.add_flow(flow())
    await app.add_flow(flow())  # the same ids again: nothing new
    assert [child.job.priority for child in node.children] == [3, 3]
    assert (await shows.queue.counts())[JobState.WAITING] == 2
    await app.run_worker(burst=True)
    parent = await imports.queue.get_job("wrap-a1")
    assert parent is not None and parent.result == [10, 20]

    with pytest.raises(InvalidJobOptions, match="page"):
        sync_shows.node({"artist_id": "a1", "page": "two"})


async def test_the_task_can_be_called_directly(redis: aredis.Redis, queue_name: str) -> None:
    app, _, _ = make_app(redis, queue_name)
    queue = app.queues[queue_name]

    @queue.task
    async def double(ctx: TaskContext, n: int) -> int:
        return n * 2

    assert await double(None, 21) == 42  # type: ignore[arg-type]


async def test_an_app_built_from_a_url_closes_its_own_client(
    redis_url: str, redis: aredis.Redis, queue_name: str
) -> None:
    app = Conveyor(redis_url)
    app.queue(queue_name)

    await app.setup()
    assert await redis.sismember("conveyor:queues", queue_name)
    await app.aclose()

    with pytest.raises(ConveyorError, match="declares no queue 'other'"):
        await app.setup(["other"])


async def test_a_close_that_arrives_while_the_worker_starts_stops_it(
    redis: aredis.Redis, queue_name: str
) -> None:
    # a SIGTERM right after launch: the close lands while the run sets up
    app, import_catalog, _ = make_app(redis, queue_name)
    job = await import_catalog.enqueue("abc", since="2020-01-31")
    running = asyncio.create_task(app.run_worker())
    await asyncio.sleep(0)  # the run has started and waits on its first round trip
    await app.close()
    await asyncio.wait_for(running, 10)
    assert await app.queues[queue_name].queue.get_state(job.id) is JobState.WAITING  # nothing claimed

    scheduling = asyncio.create_task(app.run_scheduler())
    await asyncio.sleep(0)
    await app.close()
    await asyncio.wait_for(scheduling, 10)

    # a close with no run going is not kept for the next run
    await app.close()
    await app.run_worker(burst=True)
    assert await app.queues[queue_name].queue.get_state(job.id) is JobState.COMPLETED
