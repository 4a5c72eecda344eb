"""The job journal: one log line per state change of every job of the
three queues (queued, delayed, active, completed, retrying, failed,
dead-lettered, stalled, removed), with the job's id and name and the
account and network it works for.

It reads the queues' event streams (Conveyor writes every transition there
in the same script that makes it), so jobs added by anyone are logged,
through the API, the dashboard, a schedule's tick or another process. Run
it in one process of the deployment (``distribution worker --journal``,
on by default; ``distribution up`` runs it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from conveyor import Conveyor, QueueEvent, QueueEvents
from distribution.store import Store

log = logging.getLogger("distribution.jobs")

#: What each queue event is called in the journal.
STATES = {
    "added": "queued",
    "delayed": "delayed",
    "active": "active",
    "completed": "completed",
    "retrying": "retrying",
    "failed": "failed",
    "dead-lettered": "dead-lettered",
    "stalled": "stalled",
    "removed": "removed",
}
_CACHED = 10_000


class Journal:
    """Tails ``queues``' events from now on and logs each transition."""

    def __init__(self, app: Conveyor, store: Store, queues: list[str]) -> None:
        self.app, self.store, self.queues = app, store, queues
        self._who: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._readers: list[QueueEvents] = []
        #: Set once every queue is read from: what happens after is logged.
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Until :meth:`close`; each queue read by a reader of its own."""
        for name in self.queues:
            queue = self.app.queues[name].queue
            now = await QueueEvents(queue).position()
            self._readers.append(QueueEvents(queue, after=str(now), block=0.2))
        self.ready.set()
        async with asyncio.TaskGroup() as group:
            for name, reader in zip(self.queues, self._readers, strict=True):
                group.create_task(self._follow(name, reader))

    def close(self) -> None:
        for reader in self._readers:
            reader.close()

    async def _follow(self, queue: str, reader: QueueEvents) -> None:
        async for event in reader:
            state = STATES.get(event.event)
            if state is None:
                if event.event == "gap":
                    log.warning(
                        "%s: %d job events were dropped before they were read", queue, event.data["missed"]
                    )
                continue
            try:
                who = await self.describe(queue, event)
            except Exception as exc:  # a journal line never stops on a lookup
                who = f"(not described: {type(exc).__name__})"
            log.info("%s %s %s%s", queue, state, who, _detail(event))

    async def describe(self, queue: str, event: QueueEvent) -> str:
        """``job=ID name=NAME account=... network=...``, looked up once per
        job (the last 10,000 jobs are remembered, so a job removed by
        retention is still described)."""
        key = (queue, str(event.job_id))
        found = self._who.get(key)
        if found is None:
            job = await self.app.queues[queue].queue.get_job(key[1])
            name = job.name if job is not None else "?"
            data = job.data if job is not None and isinstance(job.data, dict) else {}
            found = f"job={key[1]} name={name}{await self._account(data)}"
            self._who[key] = found
            if len(self._who) > _CACHED:
                self._who.popitem(last=False)
        return found

    async def _account(self, data: dict[str, Any]) -> str:
        connection_id = data.get("target_id", data.get("connection_id"))
        if connection_id is None and "dispatch_id" in data:
            row = await self.store.dispatch_by_id(int(data["dispatch_id"]))
            connection_id = row.connection_id if row is not None else None
        if connection_id is None:
            return f" schedule={data['schedule_id']}" if "schedule_id" in data else ""
        connection = await self.store.connection(int(connection_id))
        if connection is None:
            return f" connection={connection_id}"
        return f" account={connection.account} network={connection.network}"


def _detail(event: QueueEvent) -> str:
    data = event.data
    if event.event in ("retrying", "failed", "dead-lettered"):
        delay = f" retry in {data['delay']:g} s" if "delay" in data else ""
        return f" attempt={data.get('attempt')}{delay} error={data.get('error')!r}"
    if event.event == "delayed" and data.get("due") is not None:
        return f" until={data['due'].isoformat()}"
    if event.event == "removed" and data.get("reason"):
        return f" reason={data['reason']!r}"
    return ""
