"""The dead-letter processor: jobs of the three job queues that failed for
good, and events the consumers gave up on, each handled as one job of the
``dead-letter-queue`` queue (``DLQ_QUEUE_NAME``).

- **Collect.** A dead job (the queue's ``on_dead_letter`` hook, and a sweep
  of each queue's dead-letter set every ``dlq_interval`` seconds for any
  the hook missed) and an event dead letter (a sweep of the stream's
  dead-letter stream) each become a ``dead_letter`` job. Its id names the
  failure (the job and how many times it started; the dead letter's id), so
  collecting one twice adds one job.
- **Classify.** By what failed, not by the error's words: an event by the
  reason its consumer recorded; a job by its exception's type (timeouts,
  lost connections, ``Retry``, a worker that died and left it stalled are
  passing faults; anything else is not).
- **Retry or discard.** A passing fault is replayed after ``dlq_retry_delay``
  seconds (``RETRY_DELAY``), up to ``retry_attempts`` (``RETRY_ATTEMPTS``)
  times per job or event. Anything else, or a fault that outlasts its
  replays, is discarded: the job leaves its queue's dead-letter set (the
  record keeps its data), the event leaves the dead-letter stream.
- **Alert.** A discard is logged, kept (the last 1,000), published on the
  master's pub/sub channel ``eventhub:alerts``, and posted to
  ``alert_webhook`` when one is set.

The records (every ``dead_letter`` job's outcome, replay counts, alerts)
are the dead-letter storage, on the master Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx

from conveyor import DeadLetteredJob, JobState, TaskContext

if TYPE_CHECKING:
    from eventhub.hub import Hub

log = logging.getLogger("eventhub.dlq")

ALERTS = "eventhub:alerts"
REPLAYS = "eventhub:dlq:replays:"
REPLAYS_KEPT = 7 * 86400
RECORDS = "eventhub:dlq:records"
#: Exception types of passing faults: the job may well succeed later.
TRANSIENT = frozenset(
    {
        "TimeoutError",
        "CancelledError",
        "ConnectionError",
        "ConnectionFailed",
        "ConnectionResetError",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "OSError",
        "Retry",
        "Busy",
        "Unavailable",
    }
)


def classify_job(error: str) -> str:
    """``transient``, ``stalled`` (its worker died) or ``permanent``."""
    if error.startswith("stalled more than"):
        return "stalled"
    return "transient" if error.split(":", 1)[0].strip() in TRANSIENT else "permanent"


class DeadLetters:
    """Collects, classifies and settles dead letters for ``hub``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.master = hub.redis.master
        queue = hub.app.queue(hub.settings.dlq_queue, concurrency=hub.settings.concurrency)

        @queue.task(name="dead_letter", attempts=5, backoff=2.0)
        async def dead_letter(
            ctx: TaskContext, kind: str, source: str, id: str, error: str
        ) -> dict[str, Any]:
            """Decides what becomes of one dead job (``kind`` job, ``source``
            its queue) or dead event (``kind`` event, ``source`` its stream)."""
            outcome = await (self._settle_job(source, id, error) if kind == "job" else self._settle_event(id))
            record = {"kind": kind, "source": source, "id": id, "error": error, **outcome, "at": time.time()}
            async with self.master.pipeline(transaction=True) as pipe:
                pipe.lpush(RECORDS, json.dumps(record))
                pipe.ltrim(RECORDS, 0, 9999)
                await pipe.execute()
            return outcome

        @queue.task(name="replay_job", attempts=3, backoff=2.0)
        async def replay_job(ctx: TaskContext, source: str, id: str) -> dict[str, Any]:
            """Moves a dead job back to waiting with fresh attempts."""
            moved = await self.hub.app.queues[source].queue.retry_failed(id)
            return {"replayed": bool(moved)}

        self.dead_letter, self.replay_job = dead_letter, replay_job

    # -- collecting -----------------------------------------------------------

    async def on_dead_letter(self, dead: DeadLetteredJob) -> None:
        """The job queues' hook: the dead job is handled at once."""
        job = await self.hub.app.queues[dead.queue].queue.get_job(dead.job_id)
        started = job.attempts_started if job is not None else dead.attempt
        await self._add_job(dead.queue, dead.job_id, started, dead.error)

    async def _add_job(self, queue: str, job_id: str, started: int, error: str) -> None:
        await self.dead_letter.with_options(job_id=f"job-{queue}-{job_id}-{started}").enqueue(
            kind="job", source=queue, id=job_id, error=error
        )

    async def collect(self) -> int:
        """One sweep: a ``dead_letter`` job for each dead job and dead event
        not yet collected; how many were found."""
        found = 0
        for name in self.hub.job_queues:
            for job in await self.hub.app.queues[name].queue.dead_letters(count=500):
                await self._add_job(name, job.id, job.attempts_started, job.error or "")
                found += 1
        if self.settings.event_bus_enabled:
            for letter in await self.hub.bus.dead_letters(group=self.settings.group, count=500):
                await self.dead_letter.with_options(job_id=f"event-{letter.id}").enqueue(
                    kind="event", source=self.settings.stream, id=letter.id, error=letter.error
                )
                found += 1
        return found

    # -- settling -------------------------------------------------------------

    async def _settle_job(self, source: str, job_id: str, error: str) -> dict[str, Any]:
        queue = self.hub.app.queues[source].queue
        job = await queue.get_job(job_id)
        if job is None or job.state is not JobState.FAILED:
            return {"outcome": "gone", "reason": "no longer dead"}
        reason = classify_job(error)
        key = f"{REPLAYS}{source}:{job_id}"
        if reason != "permanent":
            async with self.master.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, REPLAYS_KEPT)
                replays = int((await pipe.execute())[0])
            if replays <= self.settings.retry_attempts:
                await self.replay_job.with_options(
                    job_id=f"replay-{source}-{job_id}-{job.attempts_started}",
                    delay=self.settings.dlq_retry_delay,
                ).enqueue(source=source, id=job_id)
                return {"outcome": "replayed", "reason": reason, "replays": replays}
        await queue.remove(job_id)
        replays = min(int(await self.master.getdel(key) or 0), self.settings.retry_attempts)
        alert = {"job": job_id, "queue": source, "name": job.name, "data": job.data, "reason": reason}
        await self.alert({**alert, "error": error, "replays": replays})
        return {"outcome": "discarded", "reason": reason}

    async def _settle_event(self, letter_id: str) -> dict[str, Any]:
        letter = await self.hub.bus.dead_letter(letter_id)
        if letter is None:
            return {"outcome": "gone", "reason": "no longer dead"}
        reason = letter.reason or "unknown"
        # The bus counts an event's replays across its dead letters.
        if reason == "transient" and letter.replays < self.settings.retry_attempts:
            (new_id,) = await self.hub.bus.replay(letter.id)
            return {"outcome": "replayed", "reason": reason, "replays": letter.replays + 1, "newId": new_id}
        await self.hub.bus.remove_dead_letters(letter.id)
        await self.alert(
            {
                "event": letter.origin_id,
                "type": letter.type,
                "reason": reason,
                "error": letter.error,
                "replays": letter.replays,
            }
        )
        return {"outcome": "discarded", "reason": reason}

    # -- alerting -------------------------------------------------------------

    async def alert(self, alert: dict[str, Any]) -> None:
        """Logs the alert, keeps it (the last 1,000, on the master),
        publishes it on the master's channel ``eventhub:alerts``, and posts
        it to ``alert_webhook`` when one is set."""
        alert = {**alert, "at": time.time()}
        log.error("dead letter discarded: %s", alert)
        body = json.dumps(alert)
        async with self.master.pipeline(transaction=True) as pipe:
            pipe.lpush(ALERTS, body)
            pipe.ltrim(ALERTS, 0, 999)
            pipe.publish(ALERTS, body)  # live, to whoever listens on the master's pub/sub
            await pipe.execute()
        if self.settings.alert_webhook:
            await self._post_alert(self.settings.alert_webhook, alert)

    async def _post_alert(self, url: str, alert: dict[str, Any]) -> None:
        """Three tries, 1 s then 2 s apart; a webhook that stays down is
        logged, and the alert is still in the kept list."""
        async with httpx.AsyncClient(timeout=self.settings.alert_timeout) as client:
            for attempt in range(3):
                try:
                    response = await client.post(url, json={"source": "eventhub", "alert": alert})
                    if response.status_code < 500:
                        if response.is_error:
                            log.error("alert webhook refused the alert: HTTP %d", response.status_code)
                        return
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if attempt < 2:
                    await asyncio.sleep(2**attempt)
            log.error("alert webhook unreachable (%s); the alert is kept in %s", problem, ALERTS)

    async def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(a) for a in await self.master.lrange(ALERTS, 0, -1)]

    async def records(self, since: float | None = None) -> list[dict[str, Any]]:
        """The records kept, newest first; with ``since`` (a Unix time) only
        those written from then on, read a page at a time until an older one."""
        if since is None:
            return [json.loads(r) for r in await self.master.lrange(RECORDS, 0, -1)]
        out: list[dict[str, Any]] = []
        while page := await self.master.lrange(RECORDS, len(out), len(out) + 99):
            for raw in page:
                record = json.loads(raw)
                if record["at"] < since:
                    return out
                out.append(record)
        return out

    # -- running --------------------------------------------------------------

    async def process(self) -> dict[str, int]:
        """One sweep and every ``dead_letter`` job it leads to, run here
        (replays wait for their delay in the queue); the outcomes counted."""
        started = time.time()
        await self.collect()
        await self.hub.app.run_worker([self.settings.dlq_queue], burst=True)
        done = await self.records(since=started)
        return {
            "replayed": sum(r["outcome"] == "replayed" for r in done),
            "discarded": sum(r["outcome"] == "discarded" for r in done),
        }

    async def sweep_forever(self, stop: asyncio.Event, beat: Any = None) -> None:
        """Collects every ``dlq_interval`` seconds until ``stop``; ``beat()``
        after each sweep (the process's health)."""
        while not stop.is_set():
            try:
                await self.collect()
                if beat is not None:
                    beat()
            except Exception:
                log.exception("dead-letter sweep failed; trying again")
            try:
                async with asyncio.timeout(self.settings.dlq_interval):
                    await stop.wait()
            except TimeoutError:
                pass
