"""The dead-letter processor on jobs: a job of the job queues that fails
for good becomes a ``dead-letter-queue`` job, which replays a passing
fault (up to ``RETRY_ATTEMPTS`` times) and discards anything else with an
alert; its records live on the master. Event dead letters are seen and
handled from outside the consumer too: the dashboard's API and the
``conveyor events`` command line on the streams Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import JobState, TaskContext
from conveyor.testing import RedisServer
from eventhub.api import create_api
from eventhub.dlq import ALERTS, RECORDS, classify_job
from eventhub.hub import QUICK, Hub


def flaky_task(hub: Hub, fail: dict[str, list[BaseException]]) -> Any:
    """A task on the quick queue that raises what ``fail[key]`` lists, in
    turn, then succeeds."""

    @hub.app.queues[QUICK].task(name="flaky", attempts=1)
    async def flaky(ctx: TaskContext, key: str) -> str:
        if fail[key]:
            raise fail[key].pop(0)
        return key

    return flaky


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("TimeoutError: job timed out after 5 s", "transient"),
        ("ConnectionError: Error 111 connecting", "transient"),
        ("Retry: later", "transient"),
        ("stalled more than 1 times", "stalled"),
        ("ValueError: bad plan", "permanent"),
        ("Discard: refused", "permanent"),
        ("KeyError", "permanent"),
    ],
)
def test_a_dead_job_is_classified_by_its_exception(error: str, reason: str) -> None:
    assert classify_job(error) == reason


async def test_a_permanent_failure_is_discarded_with_an_alert(hub: Hub) -> None:
    flaky = flaky_task(hub, {"plan": [ValueError("no such plan")]})
    listener = hub.redis.master.pubsub()
    await listener.subscribe(ALERTS)
    job = await flaky.with_options(job_id="bad-plan").enqueue(key="plan")
    await hub.app.run_worker([QUICK], burst=True)  # dead: the hook adds its dead letter
    assert (await hub.app.queues[QUICK].queue.get_job(job.id)).state is JobState.FAILED  # type: ignore[union-attr]
    dlq = hub.app.queues[hub.settings.dlq_queue].queue
    assert (await dlq.counts())[JobState.WAITING] == 1

    assert await hub.process_dead_letters() == {"replayed": 0, "discarded": 1}
    assert await hub.app.queues[QUICK].queue.get_job(job.id) is None  # out of the dead-letter set
    (alert,) = await hub.alerts()
    assert alert["job"] == "bad-plan" and alert["queue"] == QUICK and alert["reason"] == "permanent"
    assert alert["data"] == {"key": "plan"} and "no such plan" in alert["error"]
    (record,) = await hub.dead_letters.records()
    assert (record["kind"], record["outcome"], record["source"]) == ("job", "discarded", QUICK)
    assert await hub.redis.master.llen(ALERTS) == 1 and await hub.redis.master.llen(RECORDS) == 1
    assert await hub.process_dead_letters() == {"replayed": 0, "discarded": 0}  # once only
    live = None
    async with asyncio.timeout(5):  # the alert was published live on the master too
        while live is None:
            live = await listener.get_message(ignore_subscribe_messages=True, timeout=1.0)
    assert json.loads(live["data"]) == alert
    await listener.aclose()
    transport = httpx.ASGITransport(app=create_api(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        assert (await client.get("/alerts")).json() == [alert]


async def test_a_passing_fault_is_replayed_until_the_job_succeeds(hub: Hub) -> None:
    flaky = flaky_task(hub, {"net": [ConnectionError("down")]})
    job = await flaky.with_options(job_id="net").enqueue(key="net")
    await hub.app.run_worker([QUICK], burst=True)  # dead
    assert await hub.process_dead_letters() == {"replayed": 1, "discarded": 0}
    await hub.app.run_worker([QUICK], burst=True)  # a fresh attempt succeeds
    done = await hub.app.queues[QUICK].queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == "net"
    assert await hub.alerts() == []


async def test_a_fault_that_outlasts_its_replays_is_discarded(hub: Hub) -> None:
    flaky = flaky_task(hub, {"slow": [TimeoutError("upstream")] * (hub.settings.retry_attempts + 1)})
    job = await flaky.with_options(job_id="slow").enqueue(key="slow")
    outcomes = []
    for _ in range(hub.settings.retry_attempts + 1):
        await hub.app.run_worker([QUICK], burst=True)
        outcomes.append(await hub.process_dead_letters())
    assert outcomes == [{"replayed": 1, "discarded": 0}] * hub.settings.retry_attempts + [
        {"replayed": 0, "discarded": 1}
    ]
    (alert,) = await hub.alerts()
    assert alert["job"] == job.id and alert["reason"] == "transient" and alert["replays"] == 3


async def test_the_sweep_finds_a_dead_job_the_hook_missed(hub: Hub) -> None:
    flaky = flaky_task(hub, {"k": [ValueError("x")]})
    await flaky.with_options(job_id="missed").enqueue(key="k")
    await hub.app.run_worker([QUICK], burst=True)
    await hub.app.queues[hub.settings.dlq_queue].queue.drain()  # as if the hook's add was lost
    assert await hub.dead_letters.collect() == 1
    assert await hub.dead_letters.collect() == 1  # found again, added once
    assert (await hub.app.queues[hub.settings.dlq_queue].queue.counts())[JobState.WAITING] == 1
    assert await hub.process_dead_letters() == {"replayed": 0, "discarded": 1}


async def test_event_dead_letters_are_seen_from_the_dashboard_and_the_command_line(
    redis_server: RedisServer, hub: Hub
) -> None:
    await hub.bus.publish("user.created", {"user_id": 1})  # not a valid user.created
    await hub.consumer().run(burst=True)
    transport = httpx.ASGITransport(app=create_api(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        assert (await client.get("/admin/queues/api/streams")).json() == [hub.settings.stream]
        (letter,) = (await client.get(f"/admin/queues/api/streams/{hub.settings.stream}/dead-letters")).json()
        assert letter["type"] == "user.created" and letter["reason"] == "invalid"
    env = {**os.environ, "REDIS_URL": redis_server.url, "COLUMNS": "200"}
    conveyor = str(Path(sys.executable).parent / "conveyor")
    listed = await asyncio.to_thread(
        subprocess.run,
        [conveyor, "events", "dead-letters", hub.settings.stream],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0 and letter["id"] in listed.stdout, listed.stderr
