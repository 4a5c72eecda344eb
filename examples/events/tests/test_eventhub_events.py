"""The event processor and the dead-letter processor: events routed to jobs
(once per subject however often delivered), a poison event dead-lettered
and discarded with an alert, a passing failure replayed."""

from __future__ import annotations

from typing import Any

from conveyor import Event, JobState
from eventhub.events import AuthFailed, AuthLogin, UserCreated, WorkspaceCreated
from eventhub.hub import CACHE, EVENT_DRIVEN, QUICK, Hub


async def drain(hub: Hub, **options: Any) -> None:
    """Consumes every event, then works every job."""
    await hub.consumer(**options).run(burst=True)
    await hub.app.run_worker(burst=True)


async def test_events_are_routed_to_jobs_and_counters(hub: Hub) -> None:
    cache = hub.redis.cache
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
    assert await hub.redis.cache.hget(f"{CACHE}:welcomed", "u3") == b"ok@example.com"  # the group went on

    assert await hub.process_dead_letters() == {"replayed": 0, "discarded": 2}
    assert await hub.bus.dead_letters() == []
    alerts = await hub.alerts()
    assert sorted(a["type"] for a in alerts) == ["user.created", "workspace.created"]
    assert all(a["error"] for a in alerts)


async def test_a_passing_failure_is_replayed_and_a_lasting_one_gives_up(hub: Hub) -> None:
    calls: dict[str, int] = {}

    @hub.router.on("billing.sync")
    async def flaky(event: Event[dict[str, Any]]) -> None:
        account = event.data["account"]
        calls[account] = calls.get(account, 0) + 1
        if account == "down" or calls[account] == 1:
            raise ConnectionError("billing service unreachable")

    await hub.bus.publish_many([("billing.sync", {"account": "once"}), ("billing.sync", {"account": "down"})])
    await hub.consumer(max_deliveries=1).run(burst=True)
    assert len(await hub.bus.dead_letters()) == 2

    outcomes = []
    for _ in range(hub.settings.dlq_max_replays + 1):
        outcomes.append(await hub.process_dead_letters())
        await hub.consumer(max_deliveries=1).run(burst=True)
    assert outcomes[0] == {"replayed": 2, "discarded": 0}
    assert outcomes[-1] == {"replayed": 0, "discarded": 1}
    assert calls == {"once": 2, "down": 1 + hub.settings.dlq_max_replays}
    (alert,) = await hub.alerts()
    assert alert["type"] == "billing.sync" and "ConnectionError" in alert["error"]
    assert alert["replays"] == hub.settings.dlq_max_replays
    assert await hub.bus.dead_letters() == []
