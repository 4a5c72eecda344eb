"""Inspection and administration commands: tables for people, ``--json``
for scripts. Each command parses its arguments, builds objects and calls
the library."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic_core import PydanticSerializationError, to_jsonable_python
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from conveyor.engine.client.connection import connect
from conveyor.engine.job import Job
from conveyor.engine.queue import Queue
from conveyor.engine.registry import queue_listed, queue_names
from conveyor.engine.states import JobState
from conveyor.errors import ConveyorError
from conveyor.server.describe import attempt_text, options_summary, outcome_error, readable_options

T = TypeVar("T")
console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QueueArg = Annotated[str, typer.Argument(help="Queue name.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def run(work: Callable[[Any], Awaitable[T]]) -> T:
    """Runs ``work(redis)`` on a client from the environment; a Conveyor
    error becomes a one-line message and exit status 1."""

    async def go() -> T:
        redis = connect()
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(go())
    except ConveyorError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(1) from None


async def known_queue(redis: Any, name: str) -> Queue:
    if not await queue_listed(redis, name):
        raise ConveyorError(f"unknown queue {name!r} (see `conveyor queues`)")
    return Queue(name, redis)


def _jsonable(value: Any) -> Any:
    """Dates as ISO 8601 (``2026-12-06T03:38:00.123000Z``), as the API gives them."""
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        return str(value)


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=_jsonable, indent=2))


def job_dict(job: Job) -> dict[str, Any]:
    """A job as the API shows it: its options under their public names."""
    out = {k: getattr(job, k) for k in job.__dataclass_fields__ if k not in ("handle", "decoder")}
    out["state"] = job.state.value
    out["options"] = readable_options(job.options)
    return out


def at(moment: datetime | None) -> str:
    """A time for a table: ISO 8601 in UTC, to the second."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def queues(as_json: JsonFlag = False) -> None:
    """Every queue in use with its jobs per state."""

    async def work(redis: Any) -> list[tuple[str, dict[JobState, int], bool]]:
        rows = []
        for name in await queue_names(redis):
            queue = Queue(name, redis)
            rows.append((name, await queue.counts(), await queue.is_paused()))
        return rows

    rows = run(work)
    if as_json:
        emit_json(
            [
                {"name": n, "paused": p, "counts": {s.value: c for s, c in counts.items()}}
                for n, counts, p in rows
            ]
        )
        return
    table = Table(title="Queues")
    table.add_column("queue")
    for state in JobState:
        table.add_column(state.value, justify="right")
    table.add_column("paused")
    for name, counts, paused in rows:
        table.add_row(name, *(str(counts[s]) for s in JobState), "yes" if paused else "")
    console.print(table)


def jobs(
    queue: QueueArg,
    state: Annotated[JobState, typer.Option(help="Which jobs.")] = JobState.WAITING,
    start: int = 0,
    count: int = 20,
    as_json: JsonFlag = False,
) -> None:
    """A page of a queue's jobs in one state."""

    async def work(redis: Any) -> list[Job]:
        return await (await known_queue(redis, queue)).get_jobs(state, start, count)

    found = run(work)
    if as_json:
        emit_json([job_dict(j) for j in found])
        return
    show_jobs(f"{queue}: {state.value}", found)


def job(queue: QueueArg, job_id: str, as_json: JsonFlag = False) -> None:
    """One job with its data, attempts, error and result."""

    async def work(redis: Any) -> tuple[Job | None, list[str]]:
        q = await known_queue(redis, queue)
        return await q.get_job(job_id), await q.get_logs(job_id)

    found, logs = run(work)
    if found is None:
        err.print(f"error: no job {job_id!r} in queue {queue!r}")
        raise typer.Exit(1)
    if as_json:
        emit_json({**job_dict(found), "logs": logs})
        return
    table = Table(title=f"{queue}/{job_id}", show_header=False)
    shown = job_dict(found)
    shown["options"] = " · ".join(options_summary(shown["options"]))
    shown["attempt"] = attempt_text(found)
    for key, value in shown.items():
        if value not in (None, [], {}):
            table.add_row(key, at(value) if isinstance(value, datetime) else str(value))
    for line in logs:
        table.add_row("log", line)
    console.print(table)


def pause(queue: QueueArg) -> None:
    """Workers stop starting jobs of the queue; running ones finish."""
    run(lambda redis: _then(known_queue(redis, queue), Queue.pause))
    typer.echo(f"{queue} paused")


def resume(queue: QueueArg) -> None:
    """Workers start jobs of the queue again."""
    run(lambda redis: _then(known_queue(redis, queue), Queue.resume))
    typer.echo(f"{queue} resumed")


def clean(
    queue: QueueArg,
    state: Annotated[str, typer.Option(help="waiting, delayed, completed or failed")] = "completed",
    grace: Annotated[float, typer.Option(help="Keep jobs younger than this many seconds.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 100_000,
) -> None:
    """Removes jobs of a state, with a progress bar."""

    async def work(redis: Any) -> int:
        q = await known_queue(redis, queue)
        total = (await q.counts())[JobState(state)]
        removed = 0
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task(f"cleaning {state} jobs of {queue}", total=min(total, limit))
            while removed < limit:
                batch = await q.clean(state, grace=grace, limit=min(1000, limit - removed))
                removed += len(batch)
                bar.update(task, completed=removed)
                if len(batch) < 1000:
                    break
        return removed

    typer.echo(f"{run(work)} jobs removed")


def obliterate(
    queue: QueueArg,
    force: Annotated[bool, typer.Option(help="Even with jobs running (their workers lose them).")] = False,
    yes: Yes = False,
) -> None:
    """Deletes a queue with all its jobs, schedules and counters, with a progress bar."""

    async def count(redis: Any) -> int:
        return sum((await (await known_queue(redis, queue)).counts()).values())

    total = run(count)
    if not yes:
        typer.confirm(f"delete {queue} and its {total} jobs?", abort=True, err=True)

    async def work(redis: Any) -> int:
        q = await known_queue(redis, queue)
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task(f"deleting {queue}", total=total)
            return await q.obliterate(force=force, on_progress=lambda n: bar.update(task, completed=n))

    typer.echo(f"{queue} deleted ({run(work)} jobs)")


def schedules(queue: QueueArg, as_json: JsonFlag = False) -> None:
    """A queue's schedules with their next runs."""

    async def work(redis: Any) -> list[Any]:
        return await (await known_queue(redis, queue)).get_schedules()

    found = run(work)
    if as_json:
        emit_json([{k: getattr(s, k) for k in s.__dataclass_fields__ if k != "spec"} for s in found])
        return
    table = Table(title=f"{queue}: schedules")
    for col in ("key", "job", "when", "runs", "next run"):
        table.add_column(col)
    for s in found:
        when = f"{s.cron} ({s.tz})" if s.cron else f"every {s.every:g}s"
        table.add_row(s.key, s.name, when, str(s.runs), at(s.next_run) if s.next_run else "ended")
    console.print(table)


dlq = typer.Typer(help="The dead-letter set: jobs that failed for good.", no_args_is_help=True)


@dlq.command("list")
def dlq_list(
    queue: QueueArg, search: str = "", start: int = 0, count: int = 20, as_json: JsonFlag = False
) -> None:
    """Dead letters, newest first, filtered by error text."""

    async def work(redis: Any) -> list[Job]:
        return await (await known_queue(redis, queue)).dead_letters(search=search, start=start, count=count)

    found = run(work)
    if as_json:
        emit_json([job_dict(j) for j in found])
        return
    show_jobs(f"{queue}: dead letters", found)


def dead_count(queue: str) -> int:
    async def count(redis: Any) -> int:
        return (await (await known_queue(redis, queue)).counts())[JobState.FAILED]

    return run(count)


@dlq.command("replay")
def dlq_replay(queue: QueueArg, limit: int = 100_000, yes: Yes = False) -> None:
    """Sends dead letters back to waiting with fresh attempts."""
    if not yes:
        found = min(limit, dead_count(queue))
        typer.confirm(f"send {found} dead letters of {queue} back to waiting?", abort=True, err=True)

    async def work(redis: Any) -> int:
        q = await known_queue(redis, queue)
        total = min(limit, (await q.counts())[JobState.FAILED])
        moved = 0
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task(f"replaying dead letters of {queue}", total=total)
            while moved < total:
                n = await q.retry_failed(limit=min(1000, total - moved))
                if n == 0:
                    break
                moved += n
                bar.update(task, completed=moved)
        return moved

    typer.echo(f"{run(work)} jobs replayed")


@dlq.command("purge")
def dlq_purge(queue: QueueArg, yes: Yes = False) -> None:
    """Deletes every dead letter of the queue."""
    if not yes:
        typer.confirm(f"delete the {dead_count(queue)} dead letters of {queue}?", abort=True, err=True)
    clean(queue, state="failed", grace=0, limit=10_000_000)


def register(app: typer.Typer) -> None:
    """Adds the commands to ``app``."""
    for command in (queues, jobs, job, pause, resume, clean, obliterate, schedules):
        app.command()(command)
    app.add_typer(dlq, name="dlq")


async def _then(queue: Awaitable[Queue], action: Callable[[Queue], Awaitable[Any]]) -> None:
    await action(await queue)


def show_jobs(title: str, found: list[Job]) -> None:
    table = Table(title=title)
    for col in ("id", "name", "state", "attempt", "created", "error / result"):
        table.add_column(col)
    for j in found:
        error = outcome_error(j)
        outcome = error if error else ("" if j.result is None else str(j.result))
        table.add_row(j.id, j.name, j.state.value, attempt_text(j), at(j.created_at), outcome[:80])
    console.print(table)
