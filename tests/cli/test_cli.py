"""The ``conveyor`` command through its real entry point, against the test
Redis (a cluster with ``--redis-cluster``): inspection with --json, admin
actions, check, scheduler, serve and worker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

from conveyor import Discard, EventBus, JobContext, JobState, Queue, Worker, connect
from conveyor.engine.keys import DEFAULT_PREFIX, registry_key
from conveyor.testing import RedisServer, free_port
from faults.processes import stop_gracefully
from polling import wait_until

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def cli(
    url: str, *args: str, check: bool = True, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": url, "COLUMNS": "200"}
    done = subprocess.run(
        [CONVEYOR, *args], capture_output=True, text=True, env=env, timeout=60, input=answer
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def bare(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command run with exactly ``env``."""
    return subprocess.run([CONVEYOR, *args], capture_output=True, text=True, env=env, timeout=60)


def start(url: str, *args: str) -> subprocess.Popen[bytes]:
    """Starts a long-running command (its output discarded)."""
    env = {**os.environ, "REDIS_URL": url}
    return subprocess.Popen([CONVEYOR, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def as_json(url: str, *args: str) -> Any:
    return json.loads(cli(url, *args, "--json").stdout)


async def test_inspection_commands_print_json_for_scripts(redis_url: str, queue: Queue) -> None:
    jobs = await queue.add_bulk([("email", {"n": i}) for i in range(3)])
    listed = {q["name"]: q for q in as_json(redis_url, "queues")}
    assert listed[queue.name]["counts"]["waiting"] == 3
    page = as_json(redis_url, "jobs", queue.name, "--state", "waiting", "--count", "2")
    assert [j["id"] for j in page] == [j.id for j in jobs[:2]]
    one = as_json(redis_url, "job", queue.name, jobs[2].id)
    assert one["data"] == {"n": 2} and one["state"] == "waiting" and one["logs"] == []
    # dates in ISO 8601 as the API gives them; options under their public names
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", one["created_at"]), one["created_at"]
    assert one["options"]["attempts"] == 1 and "a" not in one["options"] and "decoder" not in one
    shown = cli(redis_url, "job", queue.name, jobs[2].id).stdout
    assert re.search(r"created_at\s*│\s*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown), shown
    table = cli(redis_url, "queues").stdout
    assert queue.name in table


async def test_admin_commands_change_the_queue(redis_url: str, queue: Queue) -> None:
    async def refuse(job: JobContext) -> None:
        raise Discard(f"bad input {job.data}")

    await queue.add_bulk([("j", i) for i in range(4)])
    await Worker(queue, refuse).run(burst=True)
    url = redis_url
    cli(url, "pause", queue.name)
    assert await queue.is_paused()
    cli(url, "resume", queue.name)
    assert not await queue.is_paused()
    letters = as_json(url, "dlq", "list", queue.name, "--search", "bad input 2")
    assert [j["data"] for j in letters] == [2]
    # replay and purge ask first, like obliterate: a "no" changes nothing
    for verb in ("replay", "purge"):
        declined = cli(url, "dlq", verb, queue.name, check=False, answer="n\n")
        assert declined.returncode != 0 and "4 dead letters" in declined.stderr
        assert (await queue.counts())[JobState.FAILED] == 4
    assert "4 jobs replayed" in cli(url, "dlq", "replay", queue.name, "--yes").stdout
    assert (await queue.counts())[JobState.WAITING] == 4
    await Worker(queue, refuse).run(burst=True)
    assert "4 jobs removed" in cli(url, "dlq", "purge", queue.name, answer="y\n").stdout
    assert (await queue.counts())[JobState.FAILED] == 0


async def test_one_job_is_retried_promoted_cancelled_or_removed_by_its_id(
    redis_url: str, queue: Queue
) -> None:
    async def refuse(job: JobContext) -> None:
        raise Discard("bad input")

    failed = await queue.add("f", 1)
    await Worker(queue, refuse).run(burst=True)
    later = await queue.add("d", 2, delay=3600)
    waiting = await queue.add("w", 3)

    def refused(*args: str) -> str:
        done = cli(redis_url, *args, check=False)
        assert done.returncode == 1 and done.stdout == "", done
        (line,) = done.stderr.strip().splitlines()
        return line

    # an action on a job in another state, or on no job, changes nothing
    assert refused("retry", queue.name, later.id) == (
        f"error: job {later.id} is delayed: only a failed job can be retried"
    )
    assert refused("promote", queue.name, failed.id) == (
        f"error: job {failed.id} is failed: only a delayed job can be promoted"
    )
    assert refused("cancel", queue.name, failed.id) == f"error: job {failed.id} had already finished (failed)"
    for verb in ("retry", "promote", "cancel", "remove"):
        assert (
            refused(verb, queue.name, "no-such-id") == f"error: no job 'no-such-id' in queue {queue.name!r}"
        )
    assert refused("retry", "no-such-queue", failed.id).startswith("error: unknown queue 'no-such-queue'")
    assert [await queue.get_state(j.id) for j in (failed, later, waiting)] == [
        JobState.FAILED,
        JobState.DELAYED,
        JobState.WAITING,
    ]

    assert (
        cli(redis_url, "retry", queue.name, failed.id).stdout
        == f"{queue.name}/{failed.id}: retried (waiting)\n"
    )
    assert (
        cli(redis_url, "promote", queue.name, later.id).stdout
        == f"{queue.name}/{later.id}: promoted (waiting)\n"
    )
    assert [await queue.get_state(j.id) for j in (failed, later)] == [JobState.WAITING, JobState.WAITING]
    cancelled = cli(redis_url, "cancel", queue.name, waiting.id, "--reason", "asked by support")
    assert cancelled.stdout == f"{queue.name}/{waiting.id}: cancelled (fails now)\n"
    gone = await queue.get_job(waiting.id)
    assert gone is not None and gone.state is JobState.FAILED and gone.error == "asked by support"
    assert cli(redis_url, "remove", queue.name, waiting.id).stdout == f"{queue.name}/{waiting.id}: removed\n"
    assert await queue.get_job(waiting.id) is None


async def test_redis_url_is_taken_anywhere_on_the_line_and_the_default_is_named(
    redis_url: str, queue: Queue
) -> None:
    await queue.register()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    for args in (
        ["queues", "--json", "--redis-url", redis_url],
        ["--redis-url", redis_url, "queues", "--json"],
    ):
        done = bare(env, *args)
        assert done.returncode == 0, done.stderr
        assert queue.name in {q["name"] for q in json.loads(done.stdout)}
        assert "note:" not in done.stderr
    # with no Redis named, the command says which one it uses (then fails or not, as that one allows)
    unnamed = bare(env, "queues", "--json")
    assert unnamed.stderr.splitlines()[0] == (
        "note: no --redis-url, REDIS_URL or REDIS_HOST set: using Redis at 127.0.0.1:6379"
    )


async def test_obliterate_asks_then_deletes_the_queue(redis_url: str, queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(12_000)])

    declined = cli(redis_url, "obliterate", queue.name, check=False, answer="n\n")
    assert declined.returncode == 1 and (await queue.counts())[JobState.WAITING] == 12_000

    done = cli(redis_url, "obliterate", queue.name, "--yes")
    assert f"{queue.name} deleted (12000 jobs)" in done.stdout
    assert sum((await queue.counts()).values()) == 0
    assert queue.name not in {q["name"] for q in as_json(redis_url, "queues")}


async def test_an_unknown_queue_is_a_clear_error(redis_url: str) -> None:
    done = cli(redis_url, "jobs", "no-such-queue", check=False)
    assert done.returncode == 1 and "unknown queue 'no-such-queue'" in done.stderr


def test_check_reports_and_fails_without_redis(redis_url: str) -> None:
    ok = cli(redis_url, "check")
    assert "answers in" in ok.stdout and "maxmemory-policy is noeviction" in ok.stdout
    if redis_url.startswith("redis+cluster://"):
        # the cluster's state, then each primary's findings
        assert "cluster state ok, all 16384 slots served" in ok.stdout
        assert len(re.findall(r"primary [\d.]+:\d+: maxmemory-policy is noeviction", ok.stdout)) == 3
    gone = cli(f"redis://127.0.0.1:{free_port()}", "check", check=False)
    assert gone.returncode == 1 and "fail" in gone.stdout


async def test_the_scheduler_command_fires_schedules_until_sigterm(redis_url: str, queue: Queue) -> None:
    await queue.upsert_schedule("fast", "tick", every=0.05, missed="all")
    proc = start(redis_url, "scheduler", queue.name, "--poll", "0.02")
    try:

        async def ticked() -> bool:
            return (await queue.counts())[JobState.WAITING] >= 3

        await wait_until(ticked, within=20)
    finally:
        stop_gracefully(proc)


async def test_the_serve_command_answers_health_and_stops_on_sigterm(redis_url: str) -> None:
    port = free_port()
    proc = start(redis_url, "serve", "--port", str(port))
    try:
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    health = await client.get(f"http://127.0.0.1:{port}/health")
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the server did not come up"
                    await asyncio.sleep(0.1)
        assert health.status_code == 200 and health.json()["redis"] is True
        # a browser still watching does not hold the server open
        async with held_stream(f"http://127.0.0.1:{port}/api/live/queues"):
            proc.send_signal(signal.SIGTERM)
            # uvicorn shuts down, then re-raises the signal so the exit status tells why it stopped
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_serve_command_reads_event_streams_from_their_own_redis(redis_url: str) -> None:
    port = free_port()
    with RedisServer() as events_server:
        async with aredis.Redis.from_url(events_server.url) as events:
            await EventBus(events, "orders").publish("order.placed", {"n": 1})
        proc = start(redis_url, "serve", "--port", str(port), "--events-url", events_server.url)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def listed() -> bool:
                    try:
                        answer = await client.get("/api/streams")
                    except httpx.ConnectError:  # not listening yet
                        return False
                    return "orders" in answer.json()

                await wait_until(listed, within=20)
                groups = await client.get("/api/streams/orders/groups")
                assert groups.status_code == 200 and groups.json() == []
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.single_node("starts a Redis of its own")
async def test_up_runs_everything_on_a_private_redis_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    proc = start_up(port, tmp_path / "redis")
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()
        assert "started a private redis-server" in first, first
        redis_port = int(first.split("redis://127.0.0.1:")[1].split("/")[0])
        assert "/dashboard" in proc.stdout.readline()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def some_job_completed() -> bool:
                try:
                    queues = (await client.get("/api/queues")).json()
                except httpx.ConnectError:  # not listening yet
                    return False
                return any(q["counts"]["completed"] > 0 for q in queues)

            await wait_until(some_job_completed, within=30)
            assert (await client.get("/dashboard")).status_code == 200
        # Ctrl-C in a terminal: SIGINT to the whole process group, while
        # jobs run and a dashboard watches; the private Redis, in a session
        # of its own, goes last
        async with held_stream(f"http://127.0.0.1:{port}/api/live/queues"):
            asked = time.monotonic()
            out = await interrupt(proc, within=30)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    assert time.monotonic() - asked < 10  # the workers' 5 s grace, and a little
    assert "redis-server stopped" in out
    assert "cannot be reached" not in out and "Error" not in out, out  # Redis outlived its workers
    assert (tmp_path / "redis" / "appendonlydir").exists()  # AOF was on
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/health")
    assert not _listening(redis_port)


@pytest.mark.single_node("starts a Redis of its own")
async def test_a_second_ctrl_c_stops_up_at_once_with_no_job_left_running(tmp_path: Path) -> None:
    port = free_port()
    proc = start_up(port, tmp_path / "redis")
    assert proc.stdout is not None
    try:
        assert "started a private redis-server" in proc.stdout.readline()
        assert "/dashboard" in proc.stdout.readline()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def working() -> bool:
                queues = (await client.get("/api/queues")).json()
                return any(q["counts"]["completed"] > 0 for q in queues)

            await wait_until(working, within=30)
        os.killpg(proc.pid, signal.SIGINT)
        out = await interrupt(proc, within=30)  # the second one
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    assert "stopping" in out and "Traceback" not in out, out
    # what the workers held went back to waiting (the Redis is stopped with
    # up: read its data from the AOF it kept)
    with RedisServer(data_dir=tmp_path / "redis", appendonly=True) as server:
        async with connect(server.url) as redis:
            names: set[Any] = await redis.smembers(registry_key(DEFAULT_PREFIX))
            assert names
            for name in names:
                counts = await Queue(name.decode(), redis).counts()
                assert counts[JobState.ACTIVE] == 0, (name, counts)


@asynccontextmanager
async def held_stream(url: str) -> AsyncIterator[None]:
    """An event stream open at ``url`` for the block, as a browser's; on
    the way out, it must have been ended in order by the server."""
    async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("event:")
        yield
        async for _ in lines:  # raises if the server dropped it instead of ending it
            pass


async def interrupt(proc: subprocess.Popen[str], *, within: float) -> str:
    """Ctrl-C in a terminal: SIGINT to the process group; what it printed
    once it exited."""
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = await asyncio.to_thread(proc.communicate, timeout=within)
    return out


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL to the process group of a command still running."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_up(port: int, data: Path, *args: str) -> subprocess.Popen[str]:
    """``conveyor up`` with no Redis configured, its output readable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(CONVEYOR_DATA=str(data), COLUMNS="200")
    return subprocess.Popen(
        [CONVEYOR, "up", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )


@pytest.mark.single_node("starts a Redis of its own")
async def test_up_runs_its_workers_in_processes_of_their_own(tmp_path: Path) -> None:
    port = free_port()
    proc = start_up(port, tmp_path / "redis", "--processes", "2")
    assert proc.stdout is not None
    try:
        children = []
        for line in iter(proc.stdout.readline, ""):
            found = re.search(r"worker process \d started \(pid (\d+)\)", line)
            if found:
                children.append(int(found.group(1)))
            if "/dashboard" in line:
                break
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def worked_by_both() -> bool:
                queues = (await client.get("/api/queues")).json()
                if not any(q["counts"]["completed"] > 0 for q in queues):
                    return False
                workers = (await client.get("/api/queues/up-emails/workers")).json()
                return {w["pid"] for w in workers if w["alive"]} == set(children)

            await wait_until(worked_by_both, within=30)
        out = await interrupt(proc, within=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    assert len(children) == 2
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


APP_MODULE = """
import asyncio

async def send(job):
    return {"sent": job.data}

def resize(job):  # a plain function: runs in a thread pool
    return job.data * 2

handlers = {"QUEUE-emails": send, "QUEUE-images": resize}
"""


async def test_the_worker_command_runs_an_apps_handlers_until_sigterm(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    (tmp_path / "myapp.py").write_text(APP_MODULE.replace("QUEUE", queue_name))
    from conveyor import connect

    async with connect(redis_url) as redis:
        emails, images = Queue(f"{queue_name}-emails", redis), Queue(f"{queue_name}-images", redis)
        sent = await emails.add("welcome", "ada")
        resized = await images.add("thumb", 21)
        proc = start_in(tmp_path, redis_url, "worker", "myapp:handlers", "--concurrency", "2")
        try:
            assert await emails.wait_until_finished(sent.id, timeout=20) == {"sent": "ada"}
            assert await images.wait_until_finished(resized.id, timeout=20) == 42
        finally:
            stop_gracefully(proc, timeout=20)


CONVEYOR_APP = """
from conveyor import Conveyor, TaskContext

app = Conveyor()
mail = app.queue("QUEUE-mail", concurrency=2)

@mail.task(attempts=2)
async def welcome(ctx: TaskContext, to: str, times: int = 1) -> dict[str, object]:
    await ctx.progress("sending", 50)
    return {"sent": [to] * times}

app.schedule(0.2, welcome, key="ping", kwargs={"to": "ops"})
"""


async def test_the_worker_command_runs_a_conveyor_apps_tasks_and_schedules(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    (tmp_path / "mailapp.py").write_text(CONVEYOR_APP.replace("QUEUE", queue_name))
    from conveyor import connect

    async with connect(redis_url) as redis:
        mail = Queue(f"{queue_name}-mail", redis)
        job = await mail.add("welcome", {"to": "ada", "times": 2})
        proc = start_in(tmp_path, redis_url, "worker", "mailapp:app", "--scheduler")
        try:
            assert await mail.wait_until_finished(job.id, timeout=20) == {"sent": ["ada", "ada"]}

            async def ticked_twice() -> bool:  # the schedule fires every 0.2 s
                return [s.runs >= 2 for s in await mail.get_schedules()] == [True]

            await wait_until(ticked_twice, within=20)
        finally:
            stop_gracefully(proc, timeout=20)


async def test_the_scheduler_command_writes_and_fires_an_apps_schedules(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    (tmp_path / "mailapp.py").write_text(CONVEYOR_APP.replace("QUEUE", queue_name))
    from conveyor import connect

    async with connect(redis_url) as redis:
        mail = Queue(f"{queue_name}-mail", redis)
        proc = start_in(tmp_path, redis_url, "scheduler", "--app", "mailapp:app", "--poll", "0.1")
        try:

            async def piled_up() -> bool:  # nothing works the ticks: they pile up
                return (await mail.counts())[JobState.WAITING] >= 2

            await wait_until(piled_up, within=20)
        finally:
            stop_gracefully(proc, timeout=20)
        waiting = await mail.get_jobs("waiting")
        assert {j.name for j in waiting} == {"welcome"} and all(
            j.data == {"to": "ops", "times": 1} for j in waiting
        )


def test_the_scheduler_command_needs_queues_or_an_app(tmp_path: Path) -> None:
    done = subprocess.run([CONVEYOR, "scheduler"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "name the queues" in done.stderr


def test_the_worker_command_explains_a_bad_app(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP_MODULE)
    (tmp_path / "mailapp.py").write_text(CONVEYOR_APP)
    for args, message in [
        (["nomodule:handlers"], "cannot load"),
        (["myapp"], "module:attribute"),
        (["myapp:handlers", "--queues", "other"], "no handler for queue(s) other"),
        (["myapp:send"], "name its queues with --queues"),
        (["myapp:handlers", "--scheduler"], "--scheduler needs a Conveyor app"),
        (["mailapp:app", "--queues", "nope"], "declares no queue 'nope'"),
    ]:
        env = {**os.environ, "REDIS_URL": redis_url}
        done = subprocess.run(
            [CONVEYOR, "worker", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)


def start_in(cwd: Path, url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": url}
    return subprocess.Popen(
        [CONVEYOR, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
