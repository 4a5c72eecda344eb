"""Long-running jobs: the lock is renewed (no false stall), and a worker
killed mid-job leaves the job to another worker, which resumes from the
checkpoint or reruns it per policy; events survive a consumer crash; queued
jobs and events survive a Redis restart; the API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest
from eventhub_env import eventually, fast_settings

from conveyor import JobState, connect
from conveyor.testing import RedisServer
from eventhub.api import create_api
from eventhub.events import UserCreated
from eventhub.hub import CACHE, LONG, QUICK, Connections, Hub


async def steps_done(hub: Hub, dataset: str) -> list[int]:
    return [int(s) for s in await hub.redis.master.lrange(f"{CACHE}:steps:{dataset}", 0, -1)]


async def test_a_long_job_keeps_its_lock_while_it_runs(hub: Hub) -> None:
    # 1.5 s of work under a 1 s lock: renewed, never taken for stalled
    job = await hub.process_dataset.enqueue(dataset_id="d1", steps=6, step_seconds=0.25)
    await hub.app.run_worker([LONG], burst=True)
    done = await hub.app.queues[LONG].queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    # no failed attempt, no second start (a stalled job would resume past step 0)
    assert done.attempts_made == 0 and done.result == {"dataset": "d1", "steps": 6, "resumedAt": 0}
    assert await steps_done(hub, "d1") == list(range(6))
    assert done.progress["percent"] == 100


async def _spawn(url: str, role: str, **env: str) -> asyncio.subprocess.Process:
    variables = {
        **os.environ,
        "REDIS_URL": url,
        "EVENTHUB_LOCK_DURATION": "1",
        "EVENTHUB_CLAIM_IDLE": "1",
        **env,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventhub.cli",
        role,
        env=variables,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


@pytest.mark.parametrize("policy", ["resume", "rerun"])
async def test_a_long_job_outlives_its_worker(redis_server: RedisServer, hub: Hub, policy: str) -> None:
    job = await hub.process_dataset.enqueue(dataset_id="d2", steps=10, step_seconds=0.3)
    worker = await _spawn(redis_server.url, "worker", EVENTHUB_RESTART_POLICY=policy)
    try:

        async def three_steps() -> bool:
            return len(await steps_done(hub, "d2")) >= 3

        await eventually(three_steps)
        worker.kill()  # SIGKILL mid-job
        await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    before = len(await steps_done(hub, "d2"))

    hub.settings.restart_policy = policy  # type: ignore[assignment]
    runner = asyncio.create_task(hub.app.run_worker([LONG]))
    queue = hub.app.queues[LONG].queue
    try:

        async def finished() -> bool:
            found = await queue.get_job(job.id)
            return found is not None and found.state is JobState.COMPLETED

        await eventually(finished, within=30)
    finally:
        await hub.app.close()
        await runner
    done = await queue.get_job(job.id)
    assert done is not None and done.result is not None
    steps = await steps_done(hub, "d2")
    assert sorted(set(steps)) == list(range(10))  # every step done; the job was not lost
    if policy == "resume":
        assert done.result["resumedAt"] >= before - 1 >= 2
        assert len(steps) <= 11  # at most the step in flight at the kill ran twice
    else:
        assert done.result["resumedAt"] == 0 and len(steps) == before + 10


async def test_events_outlive_a_consumer_crash(redis_server: RedisServer, hub: Hub) -> None:
    await hub.bus.create_group(hub.settings.group)
    processor = await _spawn(redis_server.url, "processor", EVENTHUB_HANDLER_DELAY="0.5")
    try:
        await hub.publisher.publish_many(
            [UserCreated(user_id=f"u{i}", email=f"u{i}@example.com") for i in range(20)]
        )

        async def some_in_hand() -> bool:
            info = await hub.bus.info()
            return any(g.pending > 0 for g in info.groups)

        await eventually(some_in_hand)
        processor.kill()
        await processor.wait()
    finally:
        if processor.returncode is None:
            processor.kill()
            await processor.wait()
    queue = hub.app.queues[QUICK].queue
    assert (await queue.counts())[JobState.WAITING] < 20  # the crash left events unhandled

    consumer = hub.consumer()
    running = asyncio.create_task(consumer.run())
    try:

        async def all_handled() -> bool:
            info = await hub.bus.info()
            return (await queue.counts())[JobState.WAITING] == 20 and all(g.pending == 0 for g in info.groups)

        await eventually(all_handled, within=30)
    finally:
        await consumer.close()
        await running
    jobs = await queue.get_jobs(JobState.WAITING, 0, 100)
    assert sorted(j.id for j in jobs) == sorted(f"welcome-u{i}" for i in range(20))  # one each
    assert (await hub.bus.info()).dead_letters == 0


async def test_jobs_and_events_survive_a_redis_restart(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always").start()
    connections = Connections.open(fast_settings(server.url))
    try:
        hub = Hub(fast_settings(server.url), connections)
        await hub.process_dataset.enqueue(dataset_id="d3", steps=2, step_seconds=0.01)
        await hub.send_welcome.with_options(delay=0.5).enqueue(user_id="u9", email="u9@example.com")
        await hub.publisher.publish(UserCreated(user_id="u8", email="u8@example.com"))
        server.kill()
        server.start()
        assert (await hub.app.queues[LONG].queue.counts())[JobState.WAITING] == 1
        assert (await hub.app.queues[QUICK].queue.counts())[JobState.DELAYED] == 1
        assert (await hub.bus.info()).length == 1
        await hub.consumer().run(burst=True)
        await hub.app.run_worker(burst=True)
        worker = asyncio.create_task(hub.app.run_worker())
        try:

            async def welcomed() -> bool:
                return await hub.redis.master.hlen(f"{CACHE}:welcomed") == 2

            await eventually(welcomed)
        finally:
            await hub.app.close()
            await worker
        assert await steps_done(hub, "d3") == [0, 1]
    finally:
        await connections.aclose()
        server.cleanup()


async def test_the_api_submits_jobs_publishes_events_and_reports(redis_server: RedisServer) -> None:
    async with connect(redis_server.url) as client:
        await client.flushdb()
    settings = fast_settings(redis_server.url, api_token="t0ken")
    connections = Connections.open(settings)
    hub = Hub(settings, connections)
    auth = {"authorization": "Bearer t0ken"}
    transport = httpx.ASGITransport(app=create_api(hub))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", headers=auth) as http:
            body = {"name": "send_welcome", "data": {"user_id": "u1", "email": "a@example.com"}}
            created = await http.post("/jobs/async-processing", json=body)
            assert created.status_code == 202 and created.json()["state"] == "waiting"
            assert (await http.post("/jobs/nope", json=body)).status_code == 404
            for bad in (
                {"name": "nope"},
                {"name": "send_welcome", "data": {"user_id": "u1"}},
                {"name": "send_welcome", "data": {"user_id": "u1", "email": "x", "more": 1}},
                {"name": "send_welcome", "extra": True},
            ):
                response = await http.post("/jobs/async-processing", json=bad)
                assert response.status_code == 422, bad
            denied = await http.post(
                "/jobs/async-processing", json=body, headers={"authorization": "Bearer x"}
            )
            assert denied.status_code == 401

            event = {"type": "user.created", "data": {"user_id": "u2", "email": "b@example.com"}}
            assert (await http.post("/events", json=event)).status_code == 202
            assert (await http.post("/events", json={"type": "user.gone", "data": {}})).status_code == 422
            bad_event = {"type": "user.created", "data": {"user_id": "u2"}}
            assert (await http.post("/events", json=bad_event)).status_code == 422

            health = await http.get("/health")
            assert health.status_code == 200
            assert health.json()["redis"] == {"master": "ok", "streams": "ok", "queue": "ok"}
            stats = (await http.get("/stats")).json()
            assert stats["queues"][QUICK]["waiting"] == 1 and stats["stream"]["length"] == 1
            assert (
                await http.get("/admin/queues/api/queues", headers={"authorization": ""})
            ).status_code == 401
            assert (await http.get("/admin/queues/api/queues")).status_code == 200
    finally:
        await connections.aclose()
