"""The design's settings by their names, each with its effect, and the
sessions the master keeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from eventhub_env import fast_settings

from conveyor.testing import RedisServer
from eventhub.api import create_api
from eventhub.config import Settings
from eventhub.hub import EVENT_DRIVEN, LONG, QUICK, Connections, Hub

DESIGN = {
    "EVENT_BUS_ENABLED": "false",
    "PUBLISH_EVENTS": "false",
    "STREAM_NAME": "pyairtable-events",
    "CONSUMER_GROUP": "processors",
    "QUEUE_ENABLED": "true",
    "LONG_RUNNING_JOBS_ENABLED": "false",
    "MAX_JOB_DURATION": "1800",
    "CONCURRENCY": "3",
    "DLQ_QUEUE_NAME": "dlq",
    "RETRY_ATTEMPTS": "2",
    "RETRY_DELAY": "60000",
    "REDIS_URL": "redis://master:6382/0",
    "REDIS_STREAMS_URL": "redis://streams:6380/0",
    "REDIS_QUEUE_URL": "redis://queue:6381/0",
}


def test_the_designs_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DESIGN.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.event_bus_enabled, s.publish_events, s.stream, s.group) == (
        False,
        False,
        "pyairtable-events",
        "processors",
    )
    assert (s.queue_enabled, s.long_running_jobs_enabled, s.max_job_duration, s.concurrency) == (
        True,
        False,
        1800,
        3,
    )
    assert (s.dlq_queue, s.retry_attempts, s.dlq_retry_delay) == ("dlq", 2, 60.0)
    assert s.urls == {
        "master": "redis://master:6382/0",
        "streams": "redis://streams:6380/0",
        "queue": "redis://queue:6381/0",
    }
    monkeypatch.setenv("EVENTHUB_CONCURRENCY", "8")
    monkeypatch.setenv("EVENTHUB_DLQ_RETRY_DELAY", "5")
    assert (Settings().concurrency, Settings().dlq_retry_delay) == (8, 5.0)  # ours win


def test_the_streams_and_queue_roles_default_to_the_master(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_STREAMS_URL", "REDIS_QUEUE_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://one:6379/0")
    assert set(Settings().urls.values()) == {"redis://one:6379/0"}


@pytest.fixture
async def flagged(redis_server: RedisServer, hub: Hub) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    """A hub with the design's flags turned off (on an emptied server, as
    ``hub`` leaves it), and a client of its API."""
    settings = fast_settings(
        redis_server.url,
        event_bus_enabled=False,
        long_running_jobs_enabled=False,
        concurrency=3,
        dlq_queue="dlq",
        api_token="t0ken",
    )
    connections = Connections.open(settings)
    hub = Hub(settings, connections)
    transport = httpx.ASGITransport(app=create_api(hub))
    headers = {"authorization": "Bearer t0ken"}
    async with httpx.AsyncClient(transport=transport, base_url="http://hub", headers=headers) as client:
        yield hub, client
    await connections.aclose()


async def test_each_flag_has_its_effect(flagged: tuple[Hub, httpx.AsyncClient]) -> None:
    hub, client = flagged
    assert hub.job_queues == [QUICK, EVENT_DRIVEN]
    assert hub.worker_queues == [QUICK, EVENT_DRIVEN, "dlq"]
    assert {name: q.worker_settings.concurrency for name, q in hub.app.queues.items()} == {
        LONG: 3,
        QUICK: 3,
        EVENT_DRIVEN: 3,
        "dlq": 3,
    }
    event = {"type": "user.created", "data": {"user_id": "u1", "email": "a@example.com"}}
    assert (await client.post("/events", json=event)).status_code == 503
    long = await client.post(f"/jobs/{LONG}", json={"name": "process_dataset", "data": {"dataset_id": "d"}})
    assert long.status_code == 503
    quick = await client.post(
        f"/jobs/{QUICK}", json={"name": "send_welcome", "data": {"user_id": "u", "email": "e"}}
    )
    assert quick.status_code == 202
    assert (await client.post("/jobs/dlq", json={"name": "dead_letter"})).status_code == 404
    assert await hub.redis.streams.exists(hub.bus.keys.stream) == 0  # nothing was published


async def test_queue_enabled_false_takes_no_jobs(redis_server: RedisServer) -> None:
    settings = fast_settings(redis_server.url, queue_enabled=False, publish_events=False)
    connections = Connections.open(settings)
    try:
        hub = Hub(settings, connections)
        assert hub.worker_queues == []
        transport = httpx.ASGITransport(app=create_api(hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            answer = await client.post(f"/jobs/{QUICK}", json={"name": "send_welcome", "data": {}})
            assert answer.status_code == 503
        assert await hub.publish(object()) is None  # type: ignore[arg-type]  # PUBLISH_EVENTS off
    finally:
        await connections.aclose()


async def test_a_session_is_created_touched_expired_and_revoked(hub: Hub) -> None:
    sessions = hub.sessions
    sessions.ttl_ms = 300
    first = await sessions.create("u1")
    second = await sessions.create("u1")
    assert await hub.redis.master.exists(f"eventhub:session:{first.id}") == 1
    await asyncio.sleep(0.2)
    touched = await sessions.touch(first.id)
    assert touched is not None and touched.user_id == "u1"
    await asyncio.sleep(0.2)  # 0.4 s after creation: the touch kept it, the other expired
    assert await sessions.touch(first.id) is not None
    assert await sessions.touch(second.id) is None
    assert await sessions.revoke(first.id) is True
    assert await sessions.touch(first.id) is None and await sessions.revoke(first.id) is False
    sessions.ttl_ms = 60_000
    ids = [(await sessions.create("u2")).id for _ in range(3)]
    assert await sessions.revoke_user("u2") == 3
    assert [await sessions.touch(i) for i in ids] == [None, None, None]
    assert await sessions.touch("") is None and await sessions.touch("x" * 500) is None


async def test_the_api_uses_sessions(redis_server: RedisServer) -> None:
    settings = fast_settings(redis_server.url, api_token="t0ken")
    connections = Connections.open(settings)
    hub = Hub(settings, connections)
    transport = httpx.ASGITransport(app=create_api(hub))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            admin = {"authorization": "Bearer t0ken"}
            assert (await client.post("/sessions", json={"userId": "u1"})).status_code == 401
            created = await client.post("/sessions", json={"userId": "u1"}, headers=admin)
            assert created.status_code == 201
            session = created.json()["sessionId"]
            entries = await hub.redis.streams.xrange(hub.bus.keys.stream)
            (login,) = [json.loads(f[b"data"]) for _, f in entries if f[b"type"] == b"auth.login"]
            assert login["user_id"] == "u1"
            as_user = {"authorization": f"Bearer {session}"}
            event = {"type": "user.updated", "data": {"user_id": "u1", "fields": ["name"]}}
            assert (await client.post("/events", json=event, headers=as_user)).status_code == 202
            assert (await client.get(f"/sessions/{session}")).json()["userId"] == "u1"
            assert (await client.delete(f"/sessions/{session}")).status_code == 204
            assert (await client.post("/events", json=event, headers=as_user)).status_code == 401
            assert (await client.get(f"/sessions/{session}")).status_code == 404
            assert (await client.post("/sessions", json={"userId": ""}, headers=admin)).status_code == 422
    finally:
        await connections.aclose()
