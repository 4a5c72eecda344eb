"""Import events announced once (``progress-update``) and delivered, signed,
to each registered URL (``webhook``), with retries, to the bundle's
receiver."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from setlist_env import ADMIN, Env

from conveyor import JobState
from setlist.fake.receiver import verify
from setlist.queues import QueueName
from setlist.webhooks import sign

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECRET = "s3cret-of-sixteen-chars"


async def receiver(env: Env, name: str, **config: Any) -> str:
    """Sets up the bundle's receiver ``name``; its URL."""
    answer = await env.upstream.http.post(f"/receiver/{name}/config", json={"secret": SECRET, **config})
    assert answer.status_code == 200
    return str(answer.json()["url"])


async def received(env: Env, name: str) -> dict[str, Any]:
    return dict((await env.upstream.http.get(f"/receiver/{name}")).json())


async def register(admin: httpx.AsyncClient, url: str, **body: Any) -> dict[str, Any]:
    answer = await admin.post(
        "/api/admin/webhooks", headers=ADMIN, json={"url": url, "secret": SECRET, **body}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


@SQLITE
async def test_an_import_is_delivered_once_to_each_webhook_signed_and_retried(
    env: Env, admin: httpx.AsyncClient
) -> None:
    done_hook = await register(admin, await receiver(env, "done", fail_first=1))
    assert done_hook["events"] == ["import.completed", "import.failed"] and done_hook["secret"] == SECRET
    await register(admin, await receiver(env, "steps"), events=["import.progress"])

    artist_id = await env.import_artist("midsize")
    await env.drain()

    done = await received(env, "done")
    assert done["refused"] == 1  # the first try failed (500), the retry was delivered
    (event,) = done["deliveries"]
    assert event["event"] == "import.completed" and not event["duplicate"]
    assert event["artist"] == {"id": artist_id, "name": "Velvet Echo", "slug": "velvet-echo"}
    assert event["data"]["songs"] > 0 and event["delivery"] == event["id"]

    steps = await received(env, "steps")
    stages = [d["data"]["stage"] for d in steps["deliveries"]]
    assert set(stages) == {
        "initializing",
        "syncing-identifiers",
        "importing-shows",
        "importing-songs",
        "creating-setlists",
    }
    assert not any(d["duplicate"] for d in steps["deliveries"])
    ids = {d["id"] for d in done["deliveries"] + steps["deliveries"]}
    assert len(ids) == 1 + len(stages)

    # every announcement fanned out; no delivery is left waiting
    webhook = env.app.queues[QueueName.WEBHOOK].queue
    assert (await webhook.counts())[JobState.FAILED] == 0
    announced = await env.app.queues[QueueName.PROGRESS_UPDATE].queue.get_jobs(JobState.COMPLETED, count=100)
    assert {j.result["event"] for j in announced} == {"import.progress", "import.completed"}


@SQLITE
async def test_a_failed_import_is_announced(env: Env, admin: httpx.AsyncClient) -> None:
    await register(admin, await receiver(env, "failures"))
    await env.run_import("K8vZunknown99")
    await env.drain()
    (event,) = (await received(env, "failures"))["deliveries"]
    assert event["event"] == "import.failed" and "knows no attraction" in event["data"]["error"]


@SQLITE
async def test_a_receiver_that_refuses_is_not_retried_and_one_that_is_gone_is_switched_off(
    env: Env, admin: httpx.AsyncClient
) -> None:
    refusing = await register(admin, await receiver(env, "refusing", fail_first=100, fail_status=422))
    gone = await register(admin, await receiver(env, "gone", fail_first=100, fail_status=410))
    await env.import_artist("sparse")
    await env.drain()

    failed = await env.app.queues[QueueName.WEBHOOK].queue.get_jobs(JobState.FAILED)
    assert sorted((j.data["webhook_id"], j.attempts_made) for j in failed) == sorted(
        [(refusing["id"], 1), (gone["id"], 1)]
    )
    hooks = {h["id"]: h for h in (await admin.get("/api/admin/webhooks", headers=ADMIN)).json()["webhooks"]}
    assert hooks[refusing["id"]]["active"] and not hooks[gone["id"]]["active"]
    assert all("secret" not in h for h in hooks.values())  # shown once, when registered


async def test_webhooks_are_registered_by_an_admin_with_checked_input(
    env: Env, admin: httpx.AsyncClient
) -> None:
    assert (await admin.post("/api/admin/webhooks", json={"url": "http://x.example/h"})).status_code == 401
    for bad in (
        {"url": "not a url"},
        {"url": "ftp://x.example/h"},
        {"url": "http://x.example/h", "events": ["import.nope"]},
        {"url": "http://x.example/h", "events": []},
        {"url": "http://x.example/h", "secret": "short"},
        {"url": "http://x.example/h", "extra": 1},
    ):
        assert (await admin.post("/api/admin/webhooks", headers=ADMIN, json=bad)).status_code == 422, bad
    made = await admin.post("/api/admin/webhooks", headers=ADMIN, json={"url": "http://x.example/h"})
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    hook_id = made.json()["id"]
    assert (await admin.delete(f"/api/admin/webhooks/{hook_id}", headers=ADMIN)).status_code == 204
    assert (await admin.delete(f"/api/admin/webhooks/{hook_id}", headers=ADMIN)).status_code == 404
    assert (await admin.get("/api/admin/webhooks", headers=ADMIN)).json() == {"webhooks": []}

    # a delivery queued before its webhook was removed is dropped, not sent
    result = await env.pipeline.webhooks.post(hook_id, {"id": "x", "event": "import.completed"})
    assert result == {"skipped": "the webhook was removed or switched off"}


def test_the_signature_covers_the_body_and_the_time() -> None:
    body = json.dumps({"id": "1", "event": "import.completed"}).encode()
    now = int(time.time())
    header = sign(SECRET, now, body)
    assert verify(SECRET, header, body, now=now)
    assert not verify(SECRET, header, body + b" ", now=now)  # tampered
    assert not verify("another-secret-value", header, body, now=now)
    assert not verify(SECRET, header, body, now=now + 301)  # replayed later
    assert not verify(SECRET, "v1=abc", body, now=now)
