"""What the archive writes, worked out from a page of queue events and the
jobs' hashes: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from conveyor.engine.events import QueueEvent
from conveyor.engine.job import Job
from conveyor.engine.schedules import schedule_of

#: The queue events that end a run of a job.
FINISHING = frozenset({"completed", "failed"})


@dataclass(slots=True)
class CronRun:
    """One run of a schedule (or of an external cron job), as ``cron_logs``
    holds it."""

    job_name: str
    status: str
    completed_at: datetime
    started_at: datetime | None = None
    error_message: str | None = None
    details: str | None = None
    queue: str | None = None
    job_id: str | None = None

    @property
    def duration_ms(self) -> int | None:
        return _ms_between(self.started_at, self.completed_at)

    def row(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "queue": self.queue,
            "job_id": self.job_id,
            "status": self.status,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "duration_ms": self.duration_ms,
            "error_message": self.error_message,
            "details": self.details,
        }


@dataclass(slots=True)
class Batch:
    """The rows of one page of events, and how many events the stream had
    dropped before them."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    cron: list[CronRun] = field(default_factory=list)
    missed: int = 0


def finished_ids(events: Iterable[QueueEvent]) -> list[str]:
    """The ids of the jobs whose runs ended in ``events``, each once."""
    return list(dict.fromkeys(e.job_id for e in events if e.event in FINISHING and e.job_id))


def batch_of(
    queue: str, events: Iterable[QueueEvent], jobs: Mapping[str, Job], *, result_chars: int
) -> Batch:
    """The rows for the runs that ended in ``events``. ``jobs``: the jobs'
    snapshots where their hashes still exist, for what the events do not
    carry (when the job was created, its worker, a completed job's
    attempts); retention may have removed them. ``result_chars``:
    the longest result kept, as JSON text (0 keeps none)."""
    batch = Batch()
    for event in events:
        if event.event == "gap":
            batch.missed += int(event.data.get("missed", 0))
            continue
        if event.event not in FINISHING or event.job_id is None:
            continue
        job = jobs.get(event.job_id)
        failed = event.event == "failed"
        started = event.data.get("started") or (job.started_at if job else None)
        created = job.created_at if job else None
        name = event.data.get("name") or (job.name if job else "")
        error = str(event.data.get("error") or "") if failed else None
        schedule = schedule_of(event.job_id)
        batch.jobs.append(
            {
                "queue": queue,
                "job_id": event.job_id,
                "name": name,
                "status": event.event,
                "attempts": _attempts(event, job),
                "error": error,
                "result": None if failed else _result(event.data.get("result"), result_chars),
                "schedule": schedule,
                "worker_id": job.worker_id if job else None,
                "created_at": created,
                "started_at": started,
                "finished_at": event.time,
                "wait_ms": _ms_between(created, started),
                "duration_ms": _ms_between(started, event.time),
                "event_id": int(event.id),
            }
        )
        if schedule is not None:
            batch.cron.append(
                CronRun(schedule, event.event, event.time, started, error, None, queue, event.job_id)
            )
    return batch


def metrics_of(runs: Iterable[CronRun]) -> dict[str, dict[str, Any]]:
    """Per schedule, what ``runs`` add to its ``cron_metrics`` row: counts,
    durations, and the latest run's outcome."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        m = out.setdefault(
            run.job_name,
            {"total_runs": 0, "successful_runs": 0, "failed_runs": 0, "total_duration_ms": 0},
        )
        m["total_runs"] += 1
        m["successful_runs" if run.status == "completed" else "failed_runs"] += 1
        m["total_duration_ms"] += run.duration_ms or 0
        if m.get("last_run_at") is None or run.completed_at >= m["last_run_at"]:
            m.update(
                last_run_at=run.completed_at,
                last_status=run.status,
                last_duration_ms=run.duration_ms,
                last_error=run.error_message,
            )
    return out


def _attempts(event: QueueEvent, job: Job | None) -> int:
    if "attempt" in event.data:
        return int(event.data["attempt"])
    return max(job.attempts_made, job.attempts_started, 1) if job else 1


def _result(value: Any, limit: int) -> str | None:
    if value is None or limit <= 0:
        return None
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else None


def _ms_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))
