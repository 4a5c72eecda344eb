"""The HTTP API through httpx's ASGI transport: every route, auth, and bad
input that must answer 4xx and change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

from conveyor import Discard, JobContext, JobState, Queue, RateLimit, RedisSettings, Worker, connect
from conveyor.realtime.progress import ProgressBus
from conveyor.server import create_app
from polling import wait_until

TOKEN = "s3cret-token"


@pytest.fixture
async def api(redis: aredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(redis, token=TOKEN, max_body=64 * 1024)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
        yield client


async def test_every_route_but_health_needs_the_token(
    api: httpx.AsyncClient, redis: aredis.Redis, queue: Queue
) -> None:
    # Every operation of the app's own OpenAPI document, not a hand-picked
    # list: a route added later is covered without touching this test.
    job = await queue.add("j", 1)
    await queue.upsert_schedule("tick", "t", every=60)
    paths = create_app(redis, token=TOKEN).openapi()["paths"]
    values = {"name": queue.name, "job_id": job.id, "key": "tick", "stream": "s", "subject": "x"}
    checked = 0
    for template, operations in paths.items():
        path = template.format(**values)
        for method in operations:
            for headers in (
                {"Authorization": ""},
                {"Authorization": "Bearer wrong"},
                {"Authorization": "Basic x"},
                {"Authorization": "", "Cookie": "conveyor_token=wrong"},
            ):
                answer = await api.request(method.upper(), path, headers=headers, json={})
                expected = 200 if template == "/health" else 401
                assert answer.status_code == expected, (method, path, headers)
            checked += 1
    assert checked >= 25
    # nothing a refused request asked for happened
    assert not await queue.is_paused()
    assert await queue.get_state(job.id) is JobState.WAITING
    assert await queue.get_schedule("tick") is not None
    by_cookie = {"Authorization": "", "Cookie": f"conveyor_token={TOKEN}"}
    assert (await api.get("/api/queues", headers=by_cookie)).status_code == 200
    # the dashboard sends a visitor without the cookie to its login page
    for cookie in ("", "conveyor_token=wrong"):
        page = await api.get("/dashboard", headers={"Authorization": "", "Cookie": cookie})
        assert page.status_code == 303 and page.headers["location"].endswith("/dashboard/login")


async def test_queues_are_listed_with_counts_and_limits(api: httpx.AsyncClient, queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(3)])
    await queue.add("later", 1, delay=60)
    await queue.set_rate_limit(RateLimit(5, per=2))
    listed = {q["name"]: q for q in (await api.get("/api/queues")).json()}
    mine = listed[queue.name]
    assert mine["counts"]["waiting"] == 3 and mine["counts"]["delayed"] == 1
    assert mine["rate_limit"] == {"max": 5, "per": 2.0} and mine["paused"] is False
    assert (await api.get(f"/api/queues/{queue.name}")).json()["counts"] == mine["counts"]
    assert (await api.get("/api/queues/no-such-queue")).status_code == 404


async def test_more_queues_than_the_connection_pool_holds_are_listed(
    api: httpx.AsyncClient, redis: aredis.Redis, queue_name: str
) -> None:
    # redis-py's pool holds 100 connections: the list must not take one per queue
    names = [f"{queue_name}-{i}" for i in range(150)]
    for name in names:
        await Queue(name, redis).add("j", 1)
    answer = await api.get("/api/queues")
    assert answer.status_code == 200
    listed = {q["name"]: q for q in answer.json()}
    assert all(listed[name]["counts"]["waiting"] == 1 for name in names)
    for name in names:
        await Queue(name, redis).obliterate(force=True)


async def test_adding_a_job_validates_the_body_and_writes_nothing_on_error(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.register()
    url = f"/api/queues/{queue.name}/jobs"
    made = await api.post(
        url, json={"name": "email", "data": {"to": "ada"}, "options": {"priority": 5, "attempts": 3}}
    )
    assert made.status_code == 201
    job = made.json()
    assert (job["name"], job["data"], job["state"], job["priority"]) == ("email", {"to": "ada"}, "waiting", 5)
    bad = [
        (b"{not json", 422),
        (b'{"data": 1}', 422),  # no name
        (b'{"name": "x", "colour": "red"}', 422),  # unknown field
        (b'{"name": "x", "options": {"attempts": 0}}', 422),
        (b'{"name": "x", "options": {"wobble": true}}', 422),
        (b'{"name": "x", "options": {"run_at": "tomorrow"}}', 422),
        (b'{"name": "x", "options": {"delay": 1e20}}', 422),
        (b'{"name": "x", "options": {"delay": -1}}', 422),
        (b'{"name": "x", "options": {"backoff": 1e308}}', 422),
        (b'{"name": "x", "options": {"timeout": 0}}', 422),
        (b'{"name": "x", "options": {"dedup_key": "k", "dedup_ttl": 1e20}}', 422),
        (b'{"name": "x", "options": {"run_at": "1960-01-01T00:00:00+00:00"}}', 422),
        (b'{"name": "x", "options": {"run_at": "9999-01-01T00:00:00+00:00"}}', 422),
        (b'{"name": "x", "data": NaN}', 422),  # not JSON, though Python's parser takes it
        (b'{"name": "x", "data": {"v": [1, Infinity]}}', 422),
        (b'{"name": "x", "data": "' + b"a" * 70_000 + b'"}', 413),  # over the body limit
    ]
    for body, code in bad:
        answer = await api.post(url, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == code, (body[:40], answer.text)
        assert "detail" in answer.json()
    assert (await api.post("/api/queues/nowhere/jobs", json={"name": "x"})).status_code == 404
    counts = await queue.counts()
    assert counts[JobState.WAITING] == 1 and sum(counts.values()) == 1


async def test_a_failed_job_shows_its_error_traceback_logs_and_can_be_retried(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    async def broken(job: JobContext) -> None:
        await job.log("calling upstream")
        raise Discard("upstream said 404")

    job = await queue.add("fetch", {"id": 7})
    await Worker(queue, broken).run(burst=True)
    detail = (await api.get(f"/api/queues/{queue.name}/jobs/{job.id}")).json()
    assert detail["state"] == "failed" and "upstream said 404" in detail["error"]
    assert "Traceback" in detail["traceback"] and detail["logs"] == ["calling upstream"]
    assert [h["error"] for h in detail["history"]] == ["Discard: upstream said 404"]
    letters = (await api.get(f"/api/queues/{queue.name}/dead-letters", params={"search": "404"})).json()
    assert [j["id"] for j in letters] == [job.id]
    assert (await api.post(f"/api/queues/{queue.name}/jobs/{job.id}/retry")).json() == {"count": 1}
    assert await queue.get_state(job.id) is JobState.WAITING
    assert (await api.get(f"/api/queues/{queue.name}/jobs/nope")).status_code == 404


async def test_jobs_are_paged_by_state_and_searchable(api: httpx.AsyncClient, queue: Queue) -> None:
    jobs = await queue.add_bulk([("email", {"to": f"user{i}@example.com"}) for i in range(30)])
    await queue.add("sms", {"to": "+33"}, job_id="sms-1")
    url = f"/api/queues/{queue.name}/jobs"
    page = (await api.get(url, params={"state": "waiting", "start": 10, "count": 5})).json()
    assert [j["id"] for j in page["jobs"]] == [j.id for j in jobs[10:15]]
    assert [j["id"] for j in (await api.get(url, params={"search": "sms-1"})).json()["jobs"]] == ["sms-1"]
    assert [j["data"]["to"] for j in (await api.get(url, params={"search": "USER7@"})).json()["jobs"]] == [
        "user7@example.com"
    ]
    assert (await api.get(url, params={"state": "sleeping"})).status_code == 422
    assert (await api.get(url, params={"count": 0})).status_code == 422


async def test_admin_actions(api: httpx.AsyncClient, queue: Queue) -> None:
    base = f"/api/queues/{queue.name}"
    delayed = await queue.add("later", 1, delay=600)
    doomed = await queue.add("doomed", 2)
    assert (await api.post(f"{base}/pause")).status_code == 204
    assert await queue.is_paused()
    assert (await api.post(f"{base}/resume")).status_code == 204
    assert (await api.post(f"{base}/jobs/{delayed.id}/promote")).json() == {"count": 1}
    assert (
        await api.post(f"{base}/jobs/{doomed.id}/cancel", json={"reason": "no longer needed"})
    ).json() == {"count": 1}
    assert (await queue.get_job(doomed.id)).error == "no longer needed"  # type: ignore[union-attr]
    assert (await api.post(f"{base}/dead-letters/replay")).json() == {"count": 1}
    assert (await api.delete(f"{base}/jobs/{doomed.id}")).status_code == 204
    assert await queue.get_job(doomed.id) is None
    assert (await api.delete(f"{base}/jobs/{doomed.id}")).status_code == 404
    assert (await api.post(f"{base}/clean", json={"state": "waiting"})).json() == {"count": 1}
    assert (await api.post(f"{base}/clean", json={"state": "active"})).status_code == 422
    assert (await api.delete(f"{base}/dead-letters")).json() == {"count": 0}


async def test_a_running_job_cannot_be_removed(api: httpx.AsyncClient, queue: Queue) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: JobContext) -> None:
        started.set()
        await release.wait()

    job = await queue.add("slow", 1)
    worker = Worker(queue, slow)
    task = asyncio.create_task(worker.run())
    await started.wait()
    answer = await api.delete(f"/api/queues/{queue.name}/jobs/{job.id}")
    assert answer.status_code == 409 and "cancel it first" in answer.json()["detail"]

    async def listed() -> bool:
        seen = (await api.get(f"/api/queues/{queue.name}/workers")).json()
        return len(seen) == 1 and seen[0]["jobs"] == [job.id]

    await wait_until(listed, within=5)
    (seen,) = (await api.get(f"/api/queues/{queue.name}/workers")).json()
    assert seen["alive"] is True and seen["jobs"] == [job.id]
    release.set()
    await worker.close()
    await task


async def test_schedules_groups_and_streams(api: httpx.AsyncClient, queue: Queue) -> None:
    base = f"/api/queues/{queue.name}"
    await queue.upsert_schedule("hourly", "tick", cron="0 * * * *", tz="Europe/Berlin")
    (schedule,) = (await api.get(f"{base}/schedules")).json()
    assert schedule["key"] == "hourly" and len(schedule["upcoming"]) == 5
    assert (await api.delete(f"{base}/schedules/hourly")).status_code == 204
    assert (await api.delete(f"{base}/schedules/hourly")).status_code == 404
    await queue.add("j", 1, group="tenant-1")
    assert (await api.get(f"{base}/groups")).json() == [
        {"name": "tenant-1", "waiting": 1, "active": 0, "state": "ready"}
    ]
    listed = (await api.get("/api/streams")).json()  # the streams used under the prefix, if any
    assert listed == sorted(listed) and "none" not in listed
    assert (await api.get("/api/streams/none/groups")).status_code == 404


async def test_health_and_metrics(api: httpx.AsyncClient, queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(4)])

    async def ok(job: JobContext) -> None:
        return None

    await Worker(queue, ok).run(burst=True)
    await queue.add("j", 5)
    health = (await api.get("/health")).json()
    assert health["status"] == "ok" and health["redis"] is True and queue.name in health["queues"]
    text = (await api.get("/metrics")).text
    assert f'conveyor_jobs{{queue="{queue.name}",state="waiting"}} 1.0' in text
    assert f'conveyor_jobs_completed_total{{queue="{queue.name}"}} 4.0' in text
    assert f'conveyor_job_run_seconds_bucket{{le="+Inf",queue="{queue.name}"}} 4.0' in text
    assert f'conveyor_job_wait_seconds_count{{queue="{queue.name}"}} 4.0' in text
    assert f'conveyor_job_run_seconds_bucket{{le="0.25",queue="{queue.name}"}} 4.0' in text  # no-op jobs


async def test_health_answers_503_when_redis_is_gone() -> None:
    from conveyor.testing import free_port

    client = connect(f"redis://127.0.0.1:{free_port()}", settings=RedisSettings(timeout=0.5))
    app = create_app(client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        answer = await http.get("/health")
    assert answer.status_code == 503 and answer.json()["status"] == "down"
    await client.aclose()


async def test_progress_polling(api: httpx.AsyncClient, redis: aredis.Redis) -> None:
    bus = ProgressBus(redis)
    await bus.report("artist:42", "shows", 40, "page 2 of 5")
    status = (await api.get("/api/progress/artist:42")).json()
    assert (status["stage"], status["percent"]) == ("shows", 40)
    assert (await api.get("/api/progress/artist:43")).status_code == 404


async def test_the_openapi_document_describes_the_api(api: httpx.AsyncClient) -> None:
    doc: dict[str, Any] = (await api.get("/openapi.json")).json()
    assert "/api/queues/{name}/jobs" in doc["paths"]
    assert "post" in doc["paths"]["/api/queues/{name}/jobs"]
    assert "/health" in doc["paths"] and "/metrics" in doc["paths"]


async def test_event_stream_groups_report_lag_and_pending(redis: aredis.Redis, queue_name: str) -> None:
    from conveyor import EventBus

    bus = EventBus(redis, f"{queue_name}-events")
    await bus.create_group("mailer")
    await bus.publish_many([("user.created", {"n": i}) for i in range(3)])
    app = create_app(redis, token=TOKEN, streams=[bus.keys.name])
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
        assert bus.keys.name in (await client.get("/api/streams")).json()
        (group,) = (await client.get(f"/api/streams/{bus.keys.name}/groups")).json()
    assert (group["name"], group["lag"], group["pending"]) == ("mailer", 3, 0)


async def test_the_app_mounts_inside_another_app(redis: aredis.Redis, queue: Queue) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    await queue.add("j", 1)
    outer = Starlette(routes=[Mount("/jobs", app=create_app(redis))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://site") as client:
        listed = (await client.get("/jobs/api/queues")).json()
    assert queue.name in {q["name"] for q in listed}


async def test_active_progress_is_listed(api: httpx.AsyncClient, redis: aredis.Redis) -> None:
    bus = ProgressBus(redis)
    await bus.report("import:1", "shows", 20)
    await bus.report("import:2", "done", 100, finished=True)
    subjects = {s["subject"] for s in (await api.get("/api/progress")).json()}
    assert "import:1" in subjects and "import:2" not in subjects
