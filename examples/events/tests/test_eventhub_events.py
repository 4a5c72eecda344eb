"""The event processor and the dead-letter processor: events routed to jobs
(once per subject however often delivered), a poison event dead-lettered
and discarded with an alert, a passing failure replayed."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conveyor import Event, JobState
from conveyor.server.hosting import quiet_server
from conveyor.testing import free_port
from eventhub.events import AuthFailed, AuthLogin, UserCreated, WorkspaceCreated
from eventhub.hub import CACHE, EVENT_DRIVEN, QUICK, Hub


async def drain(hub: Hub, **options: Any) -> None:
    """Consumes every event, then works every job."""
    await hub.consumer(**options).run(burst=True)
    await hub.app.run_worker(burst=True)


async def test_events_are_routed_to_jobs_and_counters(hub: Hub) -> None:
    cache = hub.redis.master
    await hub.publisher.publish_many(
        [
            UserCreated(user_id="u1", email="ada@example.com"),
            UserCreated(user_id="u1", email="ada@example.com"),  # published twice: one job
            UserCreated(user_id="u2", email="grace@example.com"),
            WorkspaceCreated(workspace_id="w1", owner_id="u1", name="Research"),
            AuthFailed(email="ada@example.com", ip="10.0.0.1", reason="password"),
            AuthFailed(email="ada@example.com", ip="10.0.0.1", reason="password"),
            AuthLogin(user_id="u1", ip="10.0.0.1"),
        ]
    )
    await drain(hub)
    await drain(hub)  # the job.finished events the jobs published
    assert await cache.hgetall(f"{CACHE}:welcomed") == {
        b"u1": b"ada@example.com",
        b"u2": b"grace@example.com",
    }
    assert await cache.hgetall(f"{CACHE}:workspaces") == {b"w1": b"u1"}
    welcome = await hub.app.queues[QUICK].queue.get_jobs(JobState.COMPLETED)
    assert sorted(j.id for j in welcome) == ["welcome-u1", "welcome-u2"]
    assert (await hub.app.queues[EVENT_DRIVEN].queue.counts())[JobState.COMPLETED] == 1
    assert await cache.get(f"{CACHE}:auth-failures:ada@example.com") == b"2"
    assert [a.split()[1] for a in (x.decode() for x in await cache.lrange(f"{CACHE}:audit", 0, -1))] == [
        "auth.login"
    ]
    assert await cache.hgetall(f"{CACHE}:job-events") == {b"job.finished": b"1"}
    info = await hub.bus.info()
    assert info.dead_letters == 0 and all(g.pending == 0 for g in info.groups)


async def test_a_poison_event_is_dead_lettered_then_discarded_with_an_alert(hub: Hub) -> None:
    await hub.bus.publish("user.created", {"user_id": "", "email": "not-an-address"})
    await hub.bus.redis.xadd(hub.bus.keys.stream, {"type": "workspace.created", "data": b"\xff{not json"})
    await hub.publisher.publish(UserCreated(user_id="u3", email="ok@example.com"))
    await drain(hub)

    letters = await hub.bus.dead_letters(group=hub.settings.group)
    assert sorted(str(letter.type) for letter in letters) == ["user.created", "workspace.created"]
    assert all(letter.deliveries == 1 for letter in letters)  # not retried: retrying cannot help
    assert await hub.redis.master.hget(f"{CACHE}:welcomed", "u3") == b"ok@example.com"  # the group went on

    assert await hub.process_dead_letters() == {"replayed": 0, "discarded": 2}
    assert await hub.bus.dead_letters() == []
    alerts = await hub.alerts()
    assert sorted(a["type"] for a in alerts) == ["user.created", "workspace.created"]
    assert all(a["error"] and a["reason"] == "invalid" for a in alerts)


async def test_a_passing_failure_is_replayed_and_a_lasting_one_gives_up(hub: Hub) -> None:
    calls: dict[str, int] = {}

    @hub.router.on("billing.sync")
    async def flaky(event: Event[dict[str, Any]]) -> None:
        account = event.data["account"]
        calls[account] = calls.get(account, 0) + 1
        if account == "bug":
            raise RuntimeError("no such plan")  # a bug: replaying cannot help
        if account == "down" or calls[account] == 1:
            raise ConnectionError("billing service unreachable")

    await hub.bus.publish_many(
        [
            ("billing.sync", {"account": "once"}),
            ("billing.sync", {"account": "down"}),
            ("billing.sync", {"account": "bug"}),
        ]
    )
    await hub.consumer(max_deliveries=1).run(burst=True)
    assert len(await hub.bus.dead_letters()) == 3

    outcomes = []
    for _ in range(hub.settings.retry_attempts + 1):
        outcomes.append(await hub.process_dead_letters())
        await hub.consumer(max_deliveries=1).run(burst=True)
    assert outcomes[0] == {"replayed": 2, "discarded": 1}
    assert outcomes[-1] == {"replayed": 0, "discarded": 1}
    assert calls == {"once": 2, "down": 1 + hub.settings.retry_attempts, "bug": 1}
    bug, down = sorted(await hub.alerts(), key=lambda a: a["reason"])
    assert (bug["reason"], bug["replays"]) == ("error", 0) and "no such plan" in bug["error"]
    assert down["reason"] == "transient" and "ConnectionError" in down["error"]
    assert down["replays"] == hub.settings.retry_attempts
    assert await hub.bus.dead_letters() == []


async def test_alerts_are_posted_to_the_webhook(hub: Hub) -> None:
    # Given a webhook that fails once with a 503, then accepts
    received: list[dict[str, Any]] = []

    async def webhook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({}, status_code=503 if len(received) == 1 else 202)

    port = free_port()
    server = quiet_server(Starlette(routes=[Route("/alerts", webhook, methods=["POST"])]), "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    await server.wait_started()
    hooked = Hub(
        hub.settings.model_copy(update={"alert_webhook": f"http://127.0.0.1:{port}/alerts"}), hub.redis
    )
    try:
        # When a poison event is discarded
        await hooked.bus.publish("user.created", {"user_id": 42})
        await hooked.consumer().run(burst=True)
        assert await hooked.process_dead_letters() == {"replayed": 0, "discarded": 1}
    finally:
        server.should_exit = True
        await serving
    # Then the alert reached the webhook on the second try, and is kept
    assert len(received) == 2 and received[0] == received[1]
    assert [a["event"] for a in await hub.alerts()] == [received[1]["alert"]["event"]]
    body = received[1]
    assert body["source"] == "eventhub"
    assert (body["alert"]["type"], body["alert"]["reason"]) == ("user.created", "invalid")
