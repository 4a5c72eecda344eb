"""A fake Airtable for offline runs and tests: records of bases and
tables, webhooks on a base, their payloads, and signed notifications,
shaped as Airtable's API has them.

- ``POST /v0/bases/{base}/webhooks {notificationUrl}``: a webhook, with
  its ``id`` and ``macSecretBase64``;
- ``POST /v0/{base}/{table} {records: [{fields}]}``, ``PATCH
  /v0/{base}/{table} {records: [{id, fields}]}``, ``DELETE
  /v0/{base}/{table}?records[]=ID``: change records; each change becomes a
  payload of every webhook of the base (an update's payload has the
  changed cells as ``current``, the others as ``unchanged``, as a webhook
  asking for every field's value gets them), and each webhook's
  ``notificationUrl`` gets a ping (``{base: {id}, webhook: {id},
  timestamp}``) signed with ``X-Airtable-Content-MAC``, tried three times;
- ``GET /v0/bases/{base}/webhooks/{id}/payloads?cursor=N``: the payloads
  from cursor ``N`` (the first is 1), at most ``page`` at a time, with the
  next ``cursor`` and ``mightHaveMore``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Query, Request

from eventhub.airtable import MAC_HEADER, sign

log = logging.getLogger("eventhub.fake_airtable")


@dataclass
class Webhook:
    id: str
    base: str
    url: str
    secret: str
    payloads: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeAirtable:
    page: int = 50
    records: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    #: Notifications sent: (webhook id, HTTP status or the error).
    sent: list[tuple[str, str]] = field(default_factory=list)
    transaction: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def add_webhook(self, base: str, url: str) -> Webhook:
        hook = Webhook(
            "ach" + secrets.token_hex(7), base, url, base64.b64encode(secrets.token_bytes(32)).decode()
        )
        self.webhooks[hook.id] = hook
        return hook

    def change(self, base: str, table: str, kind: str, records: dict[str, Any]) -> None:
        """Records one transaction on ``base`` and notifies its webhooks."""
        self.transaction += 1
        payload = {
            "timestamp": datetime.now(UTC).isoformat(),
            "baseTransactionNumber": self.transaction,
            "payloadFormat": "v0",
            "actionMetadata": {"source": "client"},
            "changedTablesById": {table: {kind: records}},
        }
        for hook in self.webhooks.values():
            if hook.base == base:
                hook.payloads.append(payload)
                task = asyncio.get_running_loop().create_task(self._notify(hook))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _notify(self, hook: Webhook) -> None:
        body = json.dumps(
            {
                "base": {"id": hook.base},
                "webhook": {"id": hook.id},
                "timestamp": datetime.now(UTC).isoformat(),
            }
        ).encode()
        headers = {"content-type": "application/json", MAC_HEADER: sign(hook.secret, body)}
        async with httpx.AsyncClient(timeout=5) as client:
            for attempt in range(3):
                try:
                    response = await client.post(hook.url, content=body, headers=headers)
                    self.sent.append((hook.id, str(response.status_code)))
                    if response.status_code < 500:
                        return
                except httpx.HTTPError as exc:
                    self.sent.append((hook.id, type(exc).__name__))
                await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("webhook %s: notification not delivered", hook.id)

    async def settled(self) -> None:
        """Waits for the notifications in flight."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def create_fake_airtable(fake: FakeAirtable) -> FastAPI:
    api = FastAPI(title="Fake Airtable")

    @api.post("/v0/bases/{base}/webhooks")
    async def add_webhook(base: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        url = body.get("notificationUrl")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise HTTPException(422, "notificationUrl must be an http(s) URL")
        hook = fake.add_webhook(base, url)
        return {"id": hook.id, "macSecretBase64": hook.secret, "expirationTime": None}

    @api.get("/v0/bases/{base}/webhooks/{webhook}/payloads")
    async def payloads(base: str, webhook: str, cursor: int = Query(1, ge=1)) -> dict[str, Any]:
        hook = fake.webhooks.get(webhook)
        if hook is None or hook.base != base:
            raise HTTPException(404, "NOT_FOUND")
        page = hook.payloads[cursor - 1 : cursor - 1 + fake.page]
        after = cursor + len(page)
        return {"payloads": page, "cursor": after, "mightHaveMore": after <= len(hook.payloads)}

    @api.post("/v0/{base}/{table}")
    async def create(base: str, table: str, request: Request) -> dict[str, Any]:
        rows = fake.records.setdefault((base, table), {})
        created = {}
        for record in (await request.json()).get("records", []):
            record_id = "rec" + secrets.token_hex(7)
            rows[record_id] = dict(record.get("fields") or {})
            created[record_id] = {
                "createdTime": datetime.now(UTC).isoformat(),
                "cellValuesByFieldId": rows[record_id],
            }
        fake.change(base, table, "createdRecordsById", created)
        return {"records": [{"id": i, "fields": c["cellValuesByFieldId"]} for i, c in created.items()]}

    @api.patch("/v0/{base}/{table}")
    async def update(base: str, table: str, request: Request) -> dict[str, Any]:
        rows = fake.records.setdefault((base, table), {})
        changed = {}
        for record in (await request.json()).get("records", []):
            if record.get("id") not in rows:
                raise HTTPException(404, f"no record {record.get('id')!r}")
            cells = record.get("fields") or {}
            row = rows[record["id"]]
            previous = {k: row.get(k) for k in cells}
            row.update(cells)
            changed[record["id"]] = {  # as with includeCellValuesInFieldIds: "all"
                "current": {"cellValuesByFieldId": dict(cells)},
                "previous": {"cellValuesByFieldId": previous},
                "unchanged": {"cellValuesByFieldId": {k: v for k, v in row.items() if k not in cells}},
            }
        fake.change(base, table, "changedRecordsById", changed)
        return {"records": [{"id": i, "fields": rows[i]} for i in changed]}

    @api.delete("/v0/{base}/{table}")
    async def delete(base: str, table: str, records: list[str] = Query(alias="records[]")) -> dict[str, Any]:
        rows = fake.records.setdefault((base, table), {})
        gone = [r for r in records if rows.pop(r, None) is not None]
        fake.change(base, table, "destroyedRecordIds", gone)  # type: ignore[arg-type]
        return {"records": [{"id": r, "deleted": True} for r in gone]}

    return api
