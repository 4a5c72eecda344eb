"""Airtable events: the fake Airtable's signed webhook notifications start
a sync job, which fetches the payloads after its cursor and publishes a
record event per change and ``airtable.base.synced``; the event processor
keeps a mirror of the records on the master. Bad notifications start
nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor import JobState
from conveyor.server.hosting import quiet_server
from conveyor.testing import free_port
from eventhub.airtable import CURSOR, LOCK, MAC_HEADER, Busy, events_of, sign
from eventhub.api import create_api, register_airtable_webhook
from eventhub.events import (
    EVENT_TYPES,
    AirtableBaseSynced,
    AirtableRecordCreated,
    AirtableRecordDeleted,
    AirtableRecordUpdated,
)
from eventhub.fake_airtable import FakeAirtable, create_fake_airtable
from eventhub.hub import CACHE, EVENT_DRIVEN, Hub


@pytest.fixture
async def served(hub: Hub) -> AsyncIterator[tuple[Hub, FakeAirtable, httpx.AsyncClient, str]]:
    """The hub's API and the fake Airtable, each on a port; a client of the
    fake; the webhook's id."""
    fake = FakeAirtable(page=2)  # several pages per sync
    airtable_port, api_port = free_port(), free_port()
    hub.settings = hub.settings.model_copy(update={"airtable_api_url": f"http://127.0.0.1:{airtable_port}"})
    hub.airtable.api_url = hub.settings.airtable_api_url
    servers = [
        quiet_server(create_fake_airtable(fake), "127.0.0.1", airtable_port, lifespan="off"),
        quiet_server(create_api(hub), "127.0.0.1", api_port, lifespan="off"),
    ]
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    for server in servers:
        await server.wait_started()
    async with httpx.AsyncClient(base_url=hub.settings.airtable_api_url) as client:
        webhook = await register_airtable_webhook(
            hub, "appX", f"http://127.0.0.1:{api_port}/webhooks/airtable", client
        )
        try:
            yield hub, fake, client, webhook
        finally:
            await fake.settled()
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*tasks)


async def test_record_changes_become_events_and_a_mirror(
    served: tuple[Hub, FakeAirtable, httpx.AsyncClient, str],
) -> None:
    hub, fake, airtable, webhook = served
    created = await airtable.post(
        "/v0/appX/tblA", json={"records": [{"fields": {"Name": n}} for n in ("one", "two", "three")]}
    )
    one, two, three = (r["id"] for r in created.json()["records"])
    await airtable.patch("/v0/appX/tblA", json={"records": [{"id": one, "fields": {"Done": True}}]})
    await airtable.delete("/v0/appX/tblA", params={"records[]": [two]})
    await fake.settled()
    assert [status for _, status in fake.sent] == ["200"] * 3  # each notification accepted
    await hub.app.run_worker(
        [EVENT_DRIVEN], burst=True
    )  # the syncs (one per notification, deduplicated while waiting)
    await hub.consumer().run(burst=True)

    mirror = await hub.redis.master.hgetall(f"{CACHE}:airtable:appX:tblA")
    assert {k.decode(): json.loads(v) for k, v in mirror.items()} == {
        one: {"Name": "one", "Done": True},
        three: {"Name": "three"},
    }
    assert int(await hub.redis.master.get(CURSOR + webhook)) == 4  # three payloads read
    assert await hub.redis.master.hget(f"{CACHE}:airtable:synced", "appX") == b"4"
    syncs = await hub.app.queues[EVENT_DRIVEN].queue.get_jobs(JobState.COMPLETED)
    assert (
        sum(j.result["changes"] for j in syncs if j.name == "sync_airtable") == 5
    )  # 3 created, 1 updated, 1 deleted
    assert (await hub.bus.info()).dead_letters == 0


async def test_bad_notifications_start_nothing(
    served: tuple[Hub, FakeAirtable, httpx.AsyncClient, str],
) -> None:
    hub, _, _, webhook = served
    transport = httpx.ASGITransport(app=create_api(hub))
    body = json.dumps({"base": {"id": "appX"}, "webhook": {"id": webhook}, "timestamp": "now"}).encode()
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        wrong = await client.post("/webhooks/airtable", content=body, headers={MAC_HEADER: "hmac-sha256=00"})
        assert wrong.status_code == 401
        unsigned = await client.post("/webhooks/airtable", content=body)
        assert unsigned.status_code == 401
        other = json.dumps({"base": {"id": "appX"}, "webhook": {"id": "achNope"}}).encode()
        unknown = await client.post(
            "/webhooks/airtable", content=other, headers={MAC_HEADER: sign("AAAA", other)}
        )
        assert unknown.status_code == 404
        assert (await client.post("/webhooks/airtable", content=b"{not json")).status_code == 400
    assert (await hub.app.queues[EVENT_DRIVEN].queue.counts())[JobState.WAITING] == 0


async def test_one_sync_per_webhook_at_a_time(
    served: tuple[Hub, FakeAirtable, httpx.AsyncClient, str],
) -> None:
    hub, _, _, webhook = served
    await hub.redis.master.set(LOCK + webhook, "1", px=5000)
    with pytest.raises(Busy):
        await hub.airtable.sync("appX", webhook)


async def test_the_mirror_keeps_the_latest_transaction_whatever_the_order(hub: Hub) -> None:
    """One record's events handled out of order (by two consumers at once,
    or redelivered late) leave the mirror as the last transaction left it."""
    where = {"base_id": "appX", "table_id": "tblA", "record_id": "rec1"}
    created = AirtableRecordCreated(**where, transaction=1, fields={"Name": "one"})
    updated = AirtableRecordUpdated(
        **where, transaction=2, fields={"Name": "one", "Done": True}, changed=["Done"]
    )
    deleted = AirtableRecordDeleted(**where, transaction=3)
    table = hub.mirror.table("appX", "tblA")

    assert await hub.mirror.apply(updated)
    assert not await hub.mirror.apply(created)  # older: dropped
    assert json.loads(await hub.redis.master.hget(table, "rec1")) == {"Name": "one", "Done": True}
    assert await hub.mirror.apply(deleted)
    assert not await hub.mirror.apply(updated)  # a late update does not bring it back
    assert not await hub.mirror.apply(created)
    assert await hub.redis.master.hget(table, "rec1") is None
    assert await hub.mirror.apply(deleted)  # a redelivery of the same change is harmless

    synced = {"base_id": "appX", "webhook_id": "achX", "changes": 1}
    assert await hub.mirror.synced(AirtableBaseSynced(**synced, cursor=5)) == 5
    assert await hub.mirror.synced(AirtableBaseSynced(**synced, cursor=3)) == 5  # never lowered


def test_a_payload_becomes_events_stamped_with_its_transaction() -> None:
    payload = {
        "baseTransactionNumber": 7,
        "changedTablesById": {
            "tblA": {
                "changedRecordsById": {
                    "rec1": {
                        "current": {"cellValuesByFieldId": {"Done": True}},
                        "previous": {"cellValuesByFieldId": {"Done": False}},
                        "unchanged": {"cellValuesByFieldId": {"Name": "one"}},
                    }
                },
                "destroyedRecordIds": ["rec2"],
            }
        },
    }
    updated, deleted = events_of("appX", payload)
    assert isinstance(updated, AirtableRecordUpdated) and isinstance(deleted, AirtableRecordDeleted)
    assert updated.fields == {"Name": "one", "Done": True} and updated.changed == ["Done"]
    assert updated.transaction == deleted.transaction == 7


def test_the_airtable_event_types_are_known() -> None:
    assert {t for t in EVENT_TYPES if t.startswith("airtable.")} == {
        "airtable.record.created",
        "airtable.record.updated",
        "airtable.record.deleted",
        "airtable.base.synced",
    }
