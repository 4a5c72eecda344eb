"""Typed tasks from the user's side: a job's result comes back as the
task's declared return type, a wait that times out says so with its own
error, a task that forgot its context is refused where it is declared,
and jobs added through the HTTP API to an app's queue are checked by its
tasks like ``enqueue`` checks them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import redis.asyncio as aredis
from pydantic import BaseModel

from conveyor import (
    Conveyor,
    InvalidArgument,
    InvalidJobOptions,
    InvalidTask,
    Job,
    JobState,
    Queue,
    ResultMismatch,
    TaskContext,
    WaitTimeout,
    Worker,
)
from conveyor.server import create_app


class Report(BaseModel):
    artist: str
    shows: int
    first: datetime


@dataclass
class Tally:
    counted: int
    ratio: Decimal


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


def typed_app(redis: aredis.Redis, queue_name: str) -> tuple[Conveyor, Any]:
    app = Conveyor(redis)
    work = app.queue(queue_name)
    tasks: dict[str, Any] = {}

    @work.task(attempts=5)
    async def report(ctx: TaskContext, artist: str, shows: int = 3) -> Report:
        return Report(artist=artist, shows=shows, first=datetime(2024, 5, 1, 20, 30, tzinfo=UTC))

    @work.task
    async def tally(ctx: TaskContext, counted: int) -> Tally:
        return Tally(counted, Decimal("0.125"))

    @work.task
    async def when(ctx: TaskContext) -> datetime:
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    @work.task
    async def pairs(ctx: TaskContext) -> list[tuple[Colour, UUID]]:
        return [(Colour.BLUE, UUID(int=7))]

    @work.task
    async def nothing(ctx: TaskContext) -> None:
        return None

    @work.task
    async def untyped(ctx: TaskContext):  # type: ignore[no-untyped-def]
        return {"as": "stored"}

    tasks.update(report=report, tally=tally, when=when, pairs=pairs, nothing=nothing, untyped=untyped)
    return app, tasks


async def test_results_come_back_as_the_declared_return_types(redis: aredis.Redis, queue_name: str) -> None:
    app, tasks = typed_app(redis, queue_name)
    jobs: dict[str, Job[Any]] = {
        "report": await tasks["report"].enqueue("Low", shows=2),
        "tally": await tasks["tally"].enqueue(4),
        "when": await tasks["when"].enqueue(),
        "pairs": await tasks["pairs"].enqueue(),
        "nothing": await tasks["nothing"].enqueue(),
        "untyped": await tasks["untyped"].enqueue(),
    }
    await app.run_worker(burst=True)

    report = await jobs["report"].wait_until_finished(timeout=5)
    assert report == Report(artist="Low", shows=2, first=datetime(2024, 5, 1, 20, 30, tzinfo=UTC))
    assert await jobs["tally"].wait_until_finished(timeout=5) == Tally(4, Decimal("0.125"))
    assert await jobs["when"].wait_until_finished(timeout=5) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert await jobs["pairs"].wait_until_finished(timeout=5) == [(Colour.BLUE, UUID(int=7))]
    assert await jobs["nothing"].wait_until_finished(timeout=5) is None
    assert await jobs["untyped"].wait_until_finished(timeout=5) == {"as": "stored"}

    # stored as JSON, read back typed by the task from any process
    stored = await app.queues[queue_name].queue.get_job(jobs["report"].id)
    assert stored is not None and stored.result["first"] == "2024-05-01T20:30:00Z"
    again = await tasks["report"].get_job(jobs["report"].id)
    assert again is not None and await again.wait_until_finished() == report
    assert await tasks["report"].get_job("no-such-job") is None
    with pytest.raises(InvalidArgument, match="is a 'tally' job, not 'report'"):
        await tasks["report"].get_job(jobs["tally"].id)


async def test_a_stored_result_that_does_not_fit_raises_result_mismatch(
    redis: aredis.Redis, queue_name: str
) -> None:
    app, tasks = typed_app(redis, queue_name)
    queue = app.queues[queue_name].queue
    # a job of the task's name finished by a handler of another shape (an older deploy, say)
    added = await queue.add("tally", {"counted": 1})
    worker = Worker(queue, lambda job: {"counted": "many"})
    await worker.run(burst=True)

    job = await tasks["tally"].get_job(added.id)
    assert job is not None
    with pytest.raises(ResultMismatch, match="counted") as caught:
        await job.wait_until_finished(timeout=5)
    assert caught.value.result == {"counted": "many"} and caught.value.job_id == added.id
    # the untyped reading of the same job still has the stored value
    assert await queue.wait_until_finished(added.id, timeout=5) == {"counted": "many"}


async def test_a_wait_that_times_out_raises_wait_timeout_and_changes_nothing(queue: Queue) -> None:
    job = await queue.add("slow", {})
    with pytest.raises(WaitTimeout, match=f"job {job.id} did not finish within 0.05 s") as caught:
        await job.wait_until_finished(timeout=0.05)
    assert isinstance(caught.value, TimeoutError)  # code catching TimeoutError keeps working
    assert caught.value.job_id == job.id and caught.value.timeout == 0.05
    assert await queue.get_state(job.id) is JobState.WAITING
    # a timeout that is not a number of seconds is refused before anything is read
    for bad in (-1, math.nan, math.inf, "5", True):
        with pytest.raises(InvalidJobOptions, match="timeout"):
            await queue.wait_until_finished(job.id, timeout=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("async def f(n: int) -> int: ...", "its first parameter 'n' is typed int"),
        ("async def f() -> int: ...", "must take a TaskContext as its first parameter"),
        ("async def f(*, ctx: TaskContext) -> int: ...", "'ctx' cannot be it"),
        ("async def f(ctx: TaskContext = None) -> int: ...", "'ctx' cannot be it"),
        ("async def f(*args: int) -> int: ...", "'args' cannot be it"),
        ("async def f(ctx: TaskContext) -> Opaque: ...", "its return type Opaque cannot be stored as JSON"),
    ],
)
def test_a_task_that_cannot_run_is_refused_where_it_is_declared(source: str, says: str) -> None:
    class Opaque:
        pass

    scope: dict[str, Any] = {"TaskContext": TaskContext, "Opaque": Opaque}
    exec(source, scope)
    app = Conveyor()
    with pytest.raises(InvalidTask, match=says):  # a ConveyorError, and a TypeError
        app.queue("declared").task(scope["f"])
    assert app.queues["declared"].tasks == {}
    assert issubclass(InvalidTask, TypeError)


async def test_jobs_added_through_the_api_are_checked_by_the_apps_tasks(
    redis: aredis.Redis, queue_name: str
) -> None:
    app, _ = typed_app(redis, queue_name)
    queue = app.queues[queue_name].queue
    other = Queue(f"{queue_name}-plain", redis)
    await other.register()
    api = create_app(tasks=app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as client:
        url = f"/api/queues/{queue_name}/jobs"
        refused = [
            ({"name": "report", "data": {"artist": 5}}, "artist"),
            ({"name": "report", "data": {"artist": "Low", "colour": "red"}}, "colour"),
            ({"name": "report", "data": ["Low"]}, "must be an object of arguments"),
            ({"name": "reprot", "data": {"artist": "Low"}}, "has no task named 'reprot'"),
        ]
        for body, says in refused:
            answer = await client.post(url, json=body)
            assert answer.status_code == 422 and says in answer.json()["detail"], answer.text
        assert sum((await queue.counts()).values()) == 0  # nothing written

        added = await client.post(
            url, json={"name": "report", "data": {"artist": "Low"}, "options": {"priority": 2}}
        )
        assert added.status_code == 201, added.text
        job = await queue.get_job(added.json()["id"])
        assert job is not None
        assert job.data == {"artist": "Low", "shows": 3}  # the task's defaults applied
        assert job.options["a"] == 5 and job.priority == 2  # the task's options, then the request's

        # a queue the app does not declare takes any job, as before
        plain = await client.post(f"/api/queues/{other.name}/jobs", json={"name": "anything", "data": [1]})
        assert plain.status_code == 201, plain.text
    await app.run_worker(burst=True)
    assert await app.queues[queue_name].tasks["report"].get_job(job.id) is not None
    assert await queue.get_state(job.id) is JobState.COMPLETED


async def test_an_apps_queue_is_served_before_any_worker_registered_it(redis: aredis.Redis) -> None:
    app = Conveyor(redis)
    name = f"fresh-{uuid4().hex[:8]}"
    work = app.queue(name)

    @work.task
    async def hello(ctx: TaskContext, who: str) -> str:
        return f"hello {who}"

    api = create_app(tasks=app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as client:
        added = await client.post(f"/api/queues/{name}/jobs", json={"name": "hello", "data": {"who": "you"}})
        assert added.status_code == 201, added.text
    await app.run_worker(burst=True)
    job = await hello.get_job(added.json()["id"])
    assert job is not None and await job.wait_until_finished(timeout=5) == "hello you"
