"""Airtable webhooks as events.

Airtable tells a webhook's ``notificationUrl`` that a base changed (a
small signed ping, ``X-Airtable-Content-MAC: hmac-sha256=<hex>``, keyed
with the webhook's base64 ``macSecretBase64``); the changes themselves are
fetched from ``GET /v0/bases/{base}/webhooks/{webhook}/payloads?cursor=N``.

- :func:`verify` checks a notification's MAC.
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from eventhub.events import (
    AirtableBaseSynced,
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
    """The record events of one webhook payload (``changedTablesById``)."""
    out: list[PlatformEvent] = []
    for table_id, table in (payload.get("changedTablesById") or {}).items():
        for record_id, record in (table.get("createdRecordsById") or {}).items():
            cells = record.get("cellValuesByFieldId") or {}
            out.append(
                AirtableRecordCreated(base_id=base_id, table_id=table_id, record_id=record_id, fields=cells)
            )
        for record_id, change in (table.get("changedRecordsById") or {}).items():
            current = (change.get("current") or {}).get("cellValuesByFieldId") or {}
            previous = (change.get("previous") or {}).get("cellValuesByFieldId") or {}
            out.append(
                AirtableRecordUpdated(
                    base_id=base_id,
                    table_id=table_id,
                    record_id=record_id,
                    fields=current,
                    changed=sorted(set(current) | set(previous)),
                )
            )
        for record_id in table.get("destroyedRecordIds") or []:
            out.append(AirtableRecordDeleted(base_id=base_id, table_id=table_id, record_id=record_id))
    return out


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
