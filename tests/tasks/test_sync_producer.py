"""Enqueueing from blocking code: a script or a WSGI view adds typed jobs
and waits for their results without an event loop, many threads add at
once, bad input is refused before anything is sent, a forked process
gets a connection of its own, and the blocking API refuses to block a
running event loop."""

from __future__ import annotations

import asyncio
import os
import socketserver
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
import redis.asyncio as aredis
from pydantic import BaseModel

from conveyor import (
    Conveyor,
    InvalidArgument,
    InvalidJobOptions,
    JobFailed,
    JobState,
    Queue,
    SyncProducer,
    TaskContext,
    WaitTimeout,
)


class Report(BaseModel):
    artist: str
    since: date


def build(redis_url: str, queue_name: str) -> tuple[Conveyor, Any, Any]:
    app = Conveyor(redis_url)
    work = app.queue(queue_name)

    @work.task(attempts=2, backoff=0)
    async def report(ctx: TaskContext, artist: str, since: date) -> Report:
        return Report(artist=artist, since=since)

    @work.task
    async def broken(ctx: TaskContext) -> None:
        raise LookupError("no such artist")

    return app, report, broken


def work_in_background(app: Conveyor) -> threading.Thread:
    """A burst worker on a thread with an event loop of its own."""

    async def burst() -> None:
        await app.run_worker(burst=True)
        await app.aclose()

    thread = threading.Thread(target=asyncio.run, args=(burst(),))
    thread.start()
    return thread


@pytest.fixture
def producer(redis_url: str, queue_name: str) -> Iterator[tuple[SyncProducer, Conveyor, Any, Any]]:
    app, report, broken = build(redis_url, queue_name)
    with SyncProducer(app) as made:
        yield made, app, report, broken


def test_a_script_adds_typed_jobs_and_waits_for_their_typed_results(
    producer: tuple[SyncProducer, Conveyor, Any, Any], queue_name: str
) -> None:
    sync, app, report, broken = producer
    job = sync.enqueue(report, "Low", since="1994-05-01")
    urgent = sync.enqueue(
        report.with_options(priority=5, job_id="urgent-1"), artist="Nina", since=date(1958, 1, 1)
    )
    failing = sync.enqueue(broken)
    plain = sync.add(queue_name, "report", {"artist": "Sade", "since": "1984-02-01"})
    assert job.data == {"artist": "Low", "since": "1994-05-01"} and job.options["a"] == 2
    assert urgent.id == "urgent-1" and urgent.priority == 5

    with pytest.raises(WaitTimeout):
        sync.wait_until_finished(job, timeout=0.1)  # no worker yet: the job waits on
    worker = work_in_background(app)
    try:
        assert sync.wait_until_finished(job, timeout=20) == Report(artist="Low", since=date(1994, 5, 1))
        assert sync.wait_until_finished(urgent, timeout=20).since == date(1958, 1, 1)
        assert sync.wait_until_finished(plain, timeout=20) == {"artist": "Sade", "since": "1984-02-01"}
        with pytest.raises(JobFailed, match="no such artist"):
            sync.wait_until_finished(failing, timeout=20)
    finally:
        worker.join(30)
    found = sync.get_job(queue_name, job.id)
    assert found is not None and found.state is JobState.COMPLETED
    assert sync.get_state(queue_name, failing.id) is JobState.FAILED
    assert sync.get_job(queue_name, "nope") is None


def test_bad_input_is_refused_before_anything_is_sent(
    producer: tuple[SyncProducer, Conveyor, Any, Any], queue_name: str
) -> None:
    sync, _, report, _ = producer
    with pytest.raises(InvalidJobOptions, match="since"):
        sync.enqueue(report, "Low", since="not a date")
    with pytest.raises(InvalidJobOptions, match="unknown job option"):
        sync.add(queue_name, "report", {}, priorty=1)  # type: ignore[call-arg]
    with pytest.raises(InvalidJobOptions, match="header"):
        sync.add(queue_name, "report", {}, headers={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidJobOptions):
        sync.add_bulk(queue_name, [("report", {}), ("report", {}, {"attempts": 0})])
    assert sync.add_bulk(queue_name, []) == []
    assert sync.get_job(queue_name, "1") is None  # nothing was written


def test_many_threads_add_at_once(producer: tuple[SyncProducer, Conveyor, Any, Any], queue_name: str) -> None:
    sync, _, report, _ = producer

    def add_fifty(thread: int) -> list[str]:
        ids = [sync.enqueue(report, f"artist-{thread}-{i}", since="2000-01-01").id for i in range(50)]
        ids += [
            j.id for j in sync.add_bulk(queue_name, [("report", {"artist": "x", "since": "2000-01-01"})] * 10)
        ]
        return ids

    with ThreadPoolExecutor(8) as pool:
        ids = [i for chunk in pool.map(add_fifty, range(8)) for i in chunk]
    assert len(ids) == len(set(ids)) == 8 * 60
    assert all(sync.get_state(queue_name, i) is JobState.WAITING for i in ids[::37])


def test_a_forked_process_adds_through_a_connection_of_its_own(
    producer: tuple[SyncProducer, Conveyor, Any, Any], queue_name: str
) -> None:
    sync, _, report, _ = producer
    before = sync.enqueue(report, "parent", since="2000-01-01")
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the child uses none of them
        pid = os.fork()
    if pid == 0:  # the child: the parent's loop and connection are not usable here
        try:
            os.close(read)
            os.write(write, sync.enqueue(report, "child", since="2000-01-01").id.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as said:
        child_id = said.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = sync.get_job(queue_name, child_id)
    assert child is not None and child.data["artist"] == "child" and child.id != before.id
    assert sync.enqueue(report, "parent again", since="2000-01-01").id  # the parent's connection still works


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_wsgi_view_enqueues_from_its_request_threads(
    producer: tuple[SyncProducer, Conveyor, Any, Any], queue_name: str
) -> None:
    # what a Flask or Django view does: a blocking request thread adds a job
    sync, app, report, _ = producer

    def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        artist = environ["PATH_INFO"].strip("/")
        try:
            job = sync.enqueue(report, artist, since="2001-01-01")
        except InvalidJobOptions as exc:
            start_response("422 Unprocessable Content", [("Content-Type", "text/plain")])
            return [str(exc).encode()]
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [job.id.encode()]

    server = make_server("127.0.0.1", 0, view, server_class=ThreadingWSGIServer, handler_class=Quiet)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda n: httpx.post(f"{base}/artist-{n}", timeout=10), range(30)))
    finally:
        server.shutdown()
        server.server_close()
    assert {a.status_code for a in answers} == {202}
    ids = [a.text for a in answers]
    assert len(set(ids)) == 30
    worker = work_in_background(app)
    worker.join(30)
    assert sync.get_state(queue_name, ids[0]) is JobState.COMPLETED


async def test_the_blocking_api_refuses_to_block_a_running_loop(
    redis: aredis.Redis, redis_url: str, queue_name: str
) -> None:
    app, report, _ = build(redis_url, queue_name)
    sync = SyncProducer(app)
    try:
        with pytest.raises(RuntimeError, match="await the async one"):
            sync.add(queue_name, "report", {})
        job = await asyncio.to_thread(sync.enqueue, report, "Low", since="2000-01-01")  # off the loop: fine
        assert job.id
    finally:
        await asyncio.to_thread(sync.close)
    with pytest.raises(InvalidArgument, match="give SyncProducer the redis_url"):
        SyncProducer(Conveyor(redis))
    assert SyncProducer(Conveyor(redis), redis_url=redis_url).redis_url == redis_url


async def test_an_app_connected_from_the_environment_keeps_its_producer(
    redis: aredis.Redis, redis_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app that found its Redis in REDIS_URL and has been used on a loop
    was not given a client: a producer created afterwards connects where the
    app does, on its own loop."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    app = Conveyor()
    queue = app.queue(queue_name)

    @queue.task()
    async def ping(ctx: TaskContext, n: int) -> int:
        return n

    await ping.enqueue(1)  # the app connects lazily, on this loop
    sync = SyncProducer(app)
    try:
        job = await asyncio.to_thread(sync.enqueue, ping, 2)
        assert await Queue(queue_name, redis).get_state(job.id) is JobState.WAITING
    finally:
        await asyncio.to_thread(sync.close)
        await app.aclose()
