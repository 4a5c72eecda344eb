"""Airtable webhooks as events.

Airtable tells a webhook's ``notificationUrl`` that a base changed (a
small signed ping, ``X-Airtable-Content-MAC: hmac-sha256=<hex>``, keyed
with the webhook's base64 ``macSecretBase64``); the changes themselves are
fetched from ``GET /v0/bases/{base}/webhooks/{webhook}/payloads?cursor=N``.

- :func:`verify` checks a notification's MAC.
- :class:`Mirror` keeps each table's records from the record events, in
  the order of their transactions, not of their delivery.
- :class:`AirtableSync` fetches the payloads after the last cursor it
  stored (on the master Redis), publishes one event per created, changed
  or destroyed record, then ``airtable.base.synced``, and stores the new
  cursor. One sync per webhook runs at a time (a lock on the master); a
  crash between publishing and storing the cursor publishes those changes
  again, which the event handlers take in their stride (they set state,
  they do not count).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from eventhub.events import (
    AirtableBaseSynced,
    AirtableRecord,
    AirtableRecordCreated,
    AirtableRecordDeleted,
    AirtableRecordUpdated,
    PlatformEvent,
    Publisher,
)

CURSOR = "eventhub:airtable:cursor:"
LOCK = "eventhub:airtable:lock:"
MAC_HEADER = "X-Airtable-Content-MAC"


def sign(secret_b64: str, body: bytes) -> str:
    """The ``X-Airtable-Content-MAC`` value of ``body``."""
    digest = hmac.new(base64.b64decode(secret_b64), body, hashlib.sha256).hexdigest()
    return f"hmac-sha256={digest}"


def verify(secret_b64: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret_b64, body), header)


def events_of(base_id: str, payload: dict[str, Any]) -> list[PlatformEvent]:
    """The record events of one webhook payload (``changedTablesById``),
    each stamped with the payload's ``baseTransactionNumber``. An update's
    cells are its ``unchanged`` ones (sent when the webhook asks for every
    field's value) overlaid with its ``current`` ones."""
    out: list[PlatformEvent] = []
    txn = int(payload.get("baseTransactionNumber") or 0)
    for table_id, table in (payload.get("changedTablesById") or {}).items():
        where = {"base_id": base_id, "table_id": table_id, "transaction": txn}
        for record_id, record in (table.get("createdRecordsById") or {}).items():
            cells = record.get("cellValuesByFieldId") or {}
            out.append(AirtableRecordCreated(**where, record_id=record_id, fields=cells))
        for record_id, change in (table.get("changedRecordsById") or {}).items():
            current, previous, unchanged = (
                (change.get(part) or {}).get("cellValuesByFieldId") or {}
                for part in ("current", "previous", "unchanged")
            )
            out.append(
                AirtableRecordUpdated(
                    **where,
                    record_id=record_id,
                    fields={**unchanged, **current},
                    changed=sorted(set(current) | set(previous)),
                )
            )
        for record_id in table.get("destroyedRecordIds") or []:
            out.append(AirtableRecordDeleted(**where, record_id=record_id))
    return out


#: Sets (or with no cells, deletes) one record of the mirror unless the
#: mirror already holds a later transaction of it; deletions leave their
#: transaction behind, so a late update cannot bring the record back.
_APPLY = """
-- KEYS[1] the mirror (record id -> cells as JSON)
-- KEYS[2] the transactions (record id -> the last one applied)
-- ARGV[1] record id, ARGV[2] transaction, ARGV[3] cells as JSON, or '' to delete
-- Returns 1 when applied, 0 when a later transaction was there first
local seen = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')
if tonumber(ARGV[2]) < seen then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
"""

#: Raises a hash field to a number, never lowers it; returns the field's value.
_RAISE = """
-- KEYS[1] the hash; ARGV[1] field, ARGV[2] number
local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) <= seen then return seen end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return tonumber(ARGV[2])
"""


class Mirror:
    """Each Airtable table's records, kept on ``redis`` under ``prefix``
    from the record events, whatever order they arrive in: a change older
    than the one a record holds is dropped (events of one record may be
    handled by different consumers at once, or redelivered late)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix
        self._apply = redis.register_script(_APPLY)
        self._raise = redis.register_script(_RAISE)

    def table(self, base_id: str, table_id: str) -> str:
        """The key of one table's records."""
        return f"{self.prefix}:airtable:{base_id}:{table_id}"

    async def apply(self, record: AirtableRecord) -> bool:
        """Writes the record's change; False when a later one was there."""
        table = self.table(record.base_id, record.table_id)
        cells = "" if isinstance(record, AirtableRecordDeleted) else json.dumps(getattr(record, "fields", {}))
        keys = [table, f"{table}:transactions"]
        return bool(await self._apply(keys=keys, args=[record.record_id, record.transaction, cells]))

    async def synced(self, synced: AirtableBaseSynced) -> int:
        """Records that a base is published up to a cursor; the base's cursor."""
        key = f"{self.prefix}:airtable:synced"
        return int(await self._raise(keys=[key], args=[synced.base_id, synced.cursor]))


class Busy(Exception):
    """Another sync of the same webhook is running."""


@dataclass
class AirtableSync:
    master: Any
    publisher: Publisher
    api_url: str
    token: str | None = None
    lock_seconds: float = 60.0

    async def sync(
        self, base_id: str, webhook_id: str, http: httpx.AsyncClient | None = None
    ) -> dict[str, int]:
        """Publishes the webhook's changes since the stored cursor; Busy when
        another sync of it holds the lock."""
        lock = f"{LOCK}{webhook_id}"
        if not await self.master.set(lock, "1", nx=True, px=round(self.lock_seconds * 1000)):
            raise Busy(webhook_id)
        try:
            async with _client(http, self.api_url, self.token) as client:
                return await self._sync(client, base_id, webhook_id)
        finally:
            await self.master.delete(lock)

    async def _sync(self, client: httpx.AsyncClient, base_id: str, webhook_id: str) -> dict[str, int]:
        cursor = int(await self.master.get(CURSOR + webhook_id) or 1)
        changes = 0
        while True:
            response = await client.get(
                f"/v0/bases/{base_id}/webhooks/{webhook_id}/payloads", params={"cursor": cursor}
            )
            response.raise_for_status()
            page = response.json()
            events: list[PlatformEvent] = []
            for payload in page.get("payloads", []):
                events += events_of(base_id, payload)
            if events:
                await self.publisher.publish_many(events)
            changes += len(events)
            cursor = int(page["cursor"])
            await self.master.set(CURSOR + webhook_id, cursor)
            if not page.get("mightHaveMore"):
                break
        await self.publisher.publish(
            AirtableBaseSynced(base_id=base_id, webhook_id=webhook_id, cursor=cursor, changes=changes)
        )
        return {"changes": changes, "cursor": cursor}


@asynccontextmanager
async def _client(
    http: httpx.AsyncClient | None, base_url: str, token: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    """The given client, or one of our own for the block."""
    if http is not None:
        yield http
        return
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as own:
        yield own
