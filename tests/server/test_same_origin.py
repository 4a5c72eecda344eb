"""Another site cannot change anything through a visitor's browser: form
posts and cross-origin requests are refused, and nothing they asked for
happens; the dashboard's own requests and clients without a browser pass.
And an anonymous caller's /health does not name the queues."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aredis

from conveyor import JobContext, JobState, Queue, Worker
from conveyor.server import create_app

EVIL = "https://evil.example"


@pytest.fixture
async def open_api(redis: aredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    """A server with no token, as on loopback."""
    transport = httpx.ASGITransport(app=create_app(redis, token=""))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


async def failed_job(queue: Queue) -> str:
    async def broken(job: JobContext) -> None:
        raise ValueError("boom")

    job = await queue.add("j", 1)
    await Worker(queue, broken).run(burst=True)
    return job.id


FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({**FORM, "origin": EVIL}, 403),  # an HTML form on another site
        ({"content-type": "text/plain", "origin": EVIL}, 403),
        ({"content-type": "application/json", "origin": EVIL}, 403),
        ({"content-type": "application/json", "origin": "null"}, 403),  # a sandboxed frame
        ({**FORM, "sec-fetch-site": "cross-site"}, 403),
        (FORM, 415),  # a form body, whoever sends it
        ({"content-type": "multipart/form-data; boundary=x"}, 415),
        ({"content-type": "text/plain"}, 415),
    ],
)
async def test_cross_site_and_form_requests_change_nothing(
    open_api: httpx.AsyncClient, queue: Queue, headers: dict[str, str], code: int
) -> None:
    dead = await failed_job(queue)
    waiting = await queue.add("j", 2)
    base = f"/api/queues/{queue.name}"
    for path in (
        f"{base}/pause",
        f"{base}/jobs/{waiting.id}/cancel",
        f"{base}/dead-letters/replay",
        f"{base}/jobs/{waiting.id}",
    ):
        method = "DELETE" if path.endswith(waiting.id) else "POST"
        answer = await open_api.request(method, path, headers=headers, content=b"reason=x")
        assert answer.status_code == code, (path, answer.text)
    assert not await queue.is_paused()
    assert await queue.get_state(waiting.id) is JobState.WAITING
    assert await queue.get_state(dead) is JobState.FAILED


async def test_the_sites_own_json_requests_and_plain_clients_pass(
    open_api: httpx.AsyncClient, queue: Queue
) -> None:
    base = f"/api/queues/{queue.name}"
    await queue.register()
    same = {
        "origin": "http://127.0.0.1:8000",
        "content-type": "application/json",
        "sec-fetch-site": "same-origin",
    }
    assert (await open_api.post(f"{base}/pause", headers=same)).status_code == 204
    assert (await open_api.post(f"{base}/resume")).status_code == 204  # curl: no Origin, no body
    made = await open_api.post(
        f"{base}/jobs", json={"name": "j"}, headers={"origin": "http://127.0.0.1:8000"}
    )
    assert made.status_code == 201
    assert (await open_api.get(f"{base}/jobs", headers={"origin": EVIL})).status_code == 200  # reads pass


async def test_an_allowed_cors_origin_may_change_things(redis: aredis.Redis, queue: Queue) -> None:
    await queue.register()
    app = create_app(redis, token="", cors_origins=["https://ops.example"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        answer = await client.post(
            f"/api/queues/{queue.name}/pause", headers={"origin": "https://ops.example"}
        )
    assert answer.status_code == 204


async def test_the_dashboard_login_form_works_from_its_own_page_only(redis: aredis.Redis) -> None:
    app = create_app(redis, token="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        own = await client.post(
            "/dashboard/login", data={"token": "s3cret"}, headers={"origin": "http://api"}
        )
        assert own.status_code == 303 and "conveyor_token" in own.headers.get("set-cookie", "")
        foreign = await client.post("/dashboard/login", data={"token": "s3cret"}, headers={"origin": EVIL})
        assert foreign.status_code == 403


async def test_health_names_queues_only_to_callers_with_the_token(redis: aredis.Redis, queue: Queue) -> None:
    await queue.register()
    app = create_app(redis, token="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        anonymous = (await client.get("/health")).json()
        known = (await client.get("/health", headers={"authorization": "Bearer s3cret"})).json()
    assert anonymous["status"] == "ok" and anonymous["queues"] == {}
    assert queue.name in known["queues"]
