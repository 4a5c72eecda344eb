"""The HTTP API: bearer token on every route, the health counts, the
publish flow end to end, and clear 4xx for bad input that writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from distribution_env import Env
from sqlalchemy import func, select

from distribution.api import create_api
from distribution.models import Schedule

AUTH = {"authorization": "Bearer s3cret"}


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(env.service, token=env.settings.api_token)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as http:
        yield http


async def schedules(env: Env) -> int:
    async with env.store.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Schedule))).scalar_one())


@pytest.mark.parametrize("header", [None, "Bearer wrong", "s3cret", "Bearer s3cret "])
async def test_every_route_needs_the_bearer_token(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"authorization": header} if header else {}
    for method, path in [
        ("GET", "/api/queue/health"),
        ("POST", "/api/posts"),
        ("POST", "/api/connections"),
        ("POST", "/api/posts/1/dispatch"),
        ("GET", "/api/schedules/1"),
        ("POST", "/api/dispatches/1/retry"),
    ]:
        request = client.build_request(method, path, json={}, headers=headers)
        request.headers.pop("authorization", None)
        if header:
            request.headers["authorization"] = header
        response = await client.send(request)
        assert response.status_code == 401, (method, path)
    dashboard = await client.get("/admin/queues/api/queues", headers={"authorization": "Bearer wrong"})
    assert dashboard.status_code == 401


async def test_health_reports_each_queue(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/queue/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and set(body["queues"]) == {"dispatch", "scheduled", "tokenRefresh"}
    assert body["queues"]["dispatch"] == {
        "waiting": 0,
        "active": 0,
        "completed": 0,
        "failed": 0,
        "delayed": 0,
    }
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None


async def test_a_post_is_published_through_the_api(env: Env, client: httpx.AsyncClient) -> None:
    ids = []
    for network in ("mastodon", "bluesky"):
        created = await client.post("/api/connections", json={"network": network, "account": "@ada"})
        assert created.status_code == 201
        ids.append(created.json()["id"])
    post = (await client.post("/api/posts", json={"body": "Hello"})).json()["id"]
    started = await client.post(f"/api/posts/{post}/dispatch", json={"connectionIds": ids})
    assert started.status_code == 202
    body = started.json()
    assert body["status"] == "publishing" and len(body["jobs"]) == 2
    health = (await client.get("/api/queue/health")).json()
    assert health["queues"]["dispatch"]["waiting"] == 2

    assert await env.work_until_settled(body["scheduleId"]) == "published"
    schedule = (await client.get(f"/api/schedules/{body['scheduleId']}")).json()
    assert schedule["status"] == "published"
    assert [d["status"] for d in schedule["dispatches"]] == ["sent", "sent"]
    assert {d["externalId"] for d in schedule["dispatches"]} == {p["id"] for p in env.networks.posts}
    # each account got its daily token refresh
    refresh = await env.app.queues["distribution:token-refresh"].queue.get_schedules()
    assert sorted(s.key for s in refresh) == [f"token-refresh-{i}" for i in sorted(ids)]
    health = (await client.get("/api/queue/health")).json()
    assert health["queues"]["dispatch"]["completed"] == 2

    later = datetime.now(UTC) + timedelta(hours=1)
    scheduled = await client.post(
        f"/api/posts/{post}/dispatch", json={"connectionIds": ids[:1], "scheduledFor": later.isoformat()}
    )
    assert scheduled.status_code == 202 and scheduled.json()["status"] == "scheduled"
    assert (await client.get("/api/queue/health")).json()["queues"]["scheduled"]["delayed"] == 1


async def test_a_failed_dispatch_is_retried_through_the_api(env: Env, client: httpx.AsyncClient) -> None:
    env.networks.fail["mastodon"] = [503] * 4
    schedule_id, _ = await env.publish()
    assert await env.work_until_settled(schedule_id) == "failed"
    (dispatch,) = (await client.get(f"/api/schedules/{schedule_id}")).json()["dispatches"]
    assert dispatch["status"] == "failed" and "503" in dispatch["error"]
    assert (await client.get("/api/queue/health")).json()["queues"]["dispatch"]["failed"] == 1
    assert (await client.post(f"/api/dispatches/{dispatch['id']}/retry")).status_code == 202
    await env.app.run_worker(burst=True)
    (dispatch,) = (await client.get(f"/api/schedules/{schedule_id}")).json()["dispatches"]
    assert dispatch["status"] == "sent"
    again = await client.post(f"/api/dispatches/{dispatch['id']}/retry")
    assert again.status_code == 409 and "sent" in again.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/posts", None),
        ("/api/posts", b"{oops"),
        ("/api/posts", {"body": ""}),
        ("/api/posts", {"body": "x", "extra": 1}),
        ("/api/connections", {"network": "myspace", "account": "@ada"}),
        ("/api/connections", {"network": "mastodon"}),
        ("/api/posts/1/dispatch", {"connectionIds": []}),
        ("/api/posts/1/dispatch", {"connectionIds": ["a"]}),
        ("/api/posts/1/dispatch", {"connectionIds": [1], "scheduledFor": "2030-01-01T09:00:00"}),
        ("/api/posts/1/dispatch", {"connectionIds": [1], "scheduledFor": "tomorrow"}),
    ],
)
async def test_bad_bodies_are_refused_and_write_nothing(
    env: Env, client: httpx.AsyncClient, path: str, body: Any
) -> None:
    if isinstance(body, bytes):
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = await client.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["detail"]
    assert await schedules(env) == 0
    assert (await env.service.get_queue_status("dispatch")).waiting == 0


async def test_unknown_posts_connections_and_schedules_are_404(env: Env, client: httpx.AsyncClient) -> None:
    connection = (await env.connect()).id
    post = (await client.post("/api/posts", json={"body": "Hi"})).json()["id"]
    missing_post = await client.post("/api/posts/999/dispatch", json={"connectionIds": [connection]})
    assert missing_post.status_code == 404 and "no post 999" in missing_post.json()["detail"]
    missing = await client.post(f"/api/posts/{post}/dispatch", json={"connectionIds": [connection, 77]})
    assert missing.status_code == 404 and "no connection 77" in missing.json()["detail"]
    assert await schedules(env) == 0
    assert (await client.get("/api/schedules/5")).status_code == 404
    assert (await client.post("/api/dispatches/5/retry")).status_code == 404
