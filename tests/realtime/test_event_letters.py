"""The event bus's dead letters from outside a consumer: the streams in
use are found without being configured, and their dead letters are
listed, replayed and purged through the HTTP API and the command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

from conveyor import Discard, Event, EventBus, EventRouter
from conveyor.server import create_app

TOKEN = "letters-token"
CONVEYOR = str(Path(sys.executable).parent / "conveyor")


@pytest.fixture
def bus(redis: aredis.Redis) -> EventBus:
    return EventBus(redis, f"bus-{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def api(redis: aredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(redis, token=TOKEN)  # no streams named: it finds them
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
        yield client


async def poison(bus: EventBus, *groups: str, events: int = 3) -> list[str]:
    """``events`` events that every group in ``groups`` gives up on at once."""
    ids = [await bus.publish("order.placed", {"n": n}) for n in range(events)]
    router = EventRouter()

    @router.on("order.placed")
    async def refuse(event: Event[Any]) -> None:
        raise Discard(f"order {event.data['n']} has no lines")

    for group in groups:
        async with asyncio.timeout(10):
            await bus.consumer(group, router=router, start="first").run(burst=True)
    return ids


def cli(url: str, *args: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [CONVEYOR, *args], capture_output=True, text=True, env=env, timeout=60, input=answer
    )


async def test_a_stream_is_listed_once_published_to_or_consumed(
    api: httpx.AsyncClient, redis: aredis.Redis, bus: EventBus
) -> None:
    assert bus.name not in (await api.get("/api/streams")).json()
    await bus.publish("order.placed", {"n": 1})
    quiet = EventBus(redis, f"{bus.name}-quiet")
    await quiet.create_group("audit")  # consumed, never published to
    listed = (await api.get("/api/streams")).json()
    assert {bus.name, quiet.name} <= set(listed)
    (group,) = (await api.get(f"/api/streams/{quiet.name}/groups")).json()
    assert group["name"] == "audit"
    assert (await api.get("/api/streams/never-used/dead-letters")).status_code == 404


async def test_the_api_lists_replays_and_purges_a_streams_dead_letters(
    api: httpx.AsyncClient, bus: EventBus
) -> None:
    # Given three events that two groups each gave up on
    await poison(bus, "mailer", "billing")
    route = f"/api/streams/{bus.name}/dead-letters"
    letters = (await api.get(route)).json()
    assert len(letters) == 6
    assert {(d["group"], d["reason"], d["type"]) for d in letters} == {
        ("mailer", "discarded", "order.placed"),
        ("billing", "discarded", "order.placed"),
    }
    assert letters[0]["time"].endswith("Z") or "+00:00" in letters[0]["time"]
    # paged and filtered as the engine does
    mailer = (await api.get(route, params={"group": "mailer", "search": "order 1 "})).json()
    assert [d["data"] for d in mailer] == [{"n": 1}]
    first = (await api.get(route, params={"count": 4})).json()
    rest = (await api.get(route, params={"count": 4, "before": first[-1]["id"]})).json()
    assert [d["id"] for d in first + rest] == [d["id"] for d in letters]

    # When one is replayed by id, then the rest of one group's
    one = await api.post(f"{route}/replay", json={"ids": [mailer[0]["id"]]})
    assert one.json() == {"count": 1}
    again = await api.post(f"{route}/replay", json={"ids": [mailer[0]["id"]]})
    assert again.json() == {"count": 0}  # it is no longer a dead letter
    assert (await api.post(f"{route}/replay", json={"group": "mailer"})).json() == {"count": 2}

    # Then only billing's are left, and they can be purged one by one or all
    left = (await api.get(route)).json()
    assert {d["group"] for d in left} == {"billing"} and len(left) == 3
    removed = await api.delete(route, params={"id": left[0]["id"]})
    assert removed.json() == {"count": 1}
    assert (await api.delete(route)).json() == {"count": 2}
    assert (await api.get(route)).json() == []


async def test_bad_input_changes_nothing(api: httpx.AsyncClient, bus: EventBus) -> None:
    await poison(bus, "mailer", events=1)
    route = f"/api/streams/{bus.name}/dead-letters"
    assert (await api.post(f"{route}/replay", json={"ids": ["not-an-id"]})).status_code == 422
    assert (await api.post(f"{route}/replay", json={"everything": True})).status_code == 422
    assert (await api.delete(route, params={"id": "0-0 OR *"})).status_code == 422
    assert (await api.get(route, params={"count": 0})).status_code == 422
    assert len((await api.get(route)).json()) == 1
    async with httpx.AsyncClient(transport=api._transport, base_url="http://api") as anonymous:
        assert (await anonymous.get(route)).status_code == 401
        assert (await anonymous.delete(route)).status_code == 401
    assert len((await api.get(route)).json()) == 1


async def test_the_command_line_lists_replays_and_purges_them(redis_url: str, bus: EventBus) -> None:
    await poison(bus, "mailer", "billing", events=2)

    listed = cli(redis_url, "events", "dead-letters", bus.name, "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert len(letters) == 4 and letters[0]["time"].endswith("Z")
    table = cli(redis_url, "events", "dead-letters", bus.name, "--group", "billing")
    assert table.returncode == 0 and "order 1 has no lines" in table.stdout and "mailer" not in table.stdout

    # replaying or purging every letter asks first; no changes nothing
    for verb in ("replay", "purge"):
        declined = cli(redis_url, "events", verb, bus.name, answer="n\n")
        assert declined.returncode == 1 and "4 dead letters" in declined.stderr
    assert len(await bus.dead_letters()) == 4

    one = cli(redis_url, "events", "replay", bus.name, letters[0]["id"])
    assert one.returncode == 0 and "1 events replayed" in one.stdout
    group = cli(redis_url, "events", "replay", bus.name, "--group", "mailer", "--yes")
    billing = [d for d in letters if d["group"] == "billing"]
    mailer_left = 2 - sum(1 for d in letters[:1] if d["group"] == "mailer")
    assert group.returncode == 0 and f"{mailer_left} events replayed" in group.stdout
    purged = cli(redis_url, "events", "purge", bus.name, answer="y\n")
    assert (
        purged.returncode == 0
        and f"{len(billing) - (letters[0]['group'] == 'billing')} dead letters deleted" in purged.stdout
    )
    assert await bus.dead_letters() == []

    unknown = cli(redis_url, "events", "dead-letters", "never-used")
    assert unknown.returncode == 1 and "unknown event stream 'never-used'" in unknown.stderr


async def test_streams_on_a_redis_of_their_own_are_served_from_it(redis: aredis.Redis) -> None:
    from conveyor.testing import RedisServer

    with RedisServer() as events_server:
        async with aredis.Redis.from_url(events_server.url) as events:
            bus = EventBus(events, "apart")
            await poison(bus, "billing", events=2)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            apart = httpx.ASGITransport(app=create_app(redis, token=TOKEN, events_redis=events))
            together = httpx.ASGITransport(app=create_app(redis, token=TOKEN))
            async with (
                httpx.AsyncClient(transport=apart, base_url="http://api", headers=headers) as client,
                httpx.AsyncClient(transport=together, base_url="http://api", headers=headers) as same,
            ):
                assert "apart" in (await client.get("/api/streams")).json()
                letters = (await client.get("/api/streams/apart/dead-letters")).json()
                assert len(letters) == 2
                assert "apart" not in (await same.get("/api/streams")).json()
                assert (await same.get("/api/streams/apart/dead-letters")).status_code == 404
            assert await redis.exists(bus.keys.stream) == 0  # nothing was written to the queues' Redis


async def test_the_root_opens_the_dashboard_where_the_app_is_mounted(redis: aredis.Redis) -> None:
    from fastapi import FastAPI

    outer = FastAPI()
    outer.mount("/admin/queues", create_app(redis, token=TOKEN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://api") as client:
        first = await client.get("/admin/queues/")
        assert first.status_code == 307 and first.headers["location"] == "/admin/queues/dashboard"
        page = await client.get("/admin/queues", follow_redirects=True)
        assert page.url.path == "/admin/queues/dashboard/login"  # not signed in yet
        assert page.status_code == 200
