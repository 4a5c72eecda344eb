"""One job by its id: ``conveyor retry|promote|cancel|remove QUEUE ID``.
Each says what it did in one line and exits 0, or says why it could not
(no such job, not in a state the action applies to) and exits 1 having
changed nothing."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from conveyor.cli.admin import QueueArg, known_queue, run
from conveyor.engine.queue import Queue
from conveyor.engine.states import JobState
from conveyor.errors import ConveyorError, JobNotFound

JobArg = Annotated[str, typer.Argument(metavar="ID", help="The job's id.")]


async def _state_of(queue: Queue, job_id: str) -> JobState:
    state = await queue.get_state(job_id)
    if state is None:
        raise JobNotFound(f"no job {job_id!r} in queue {queue.name!r}")
    return state


async def _move(redis: Any, queue_name: str, job_id: str, source: JobState, verb: str) -> None:
    queue = await known_queue(redis, queue_name)
    state = await _state_of(queue, job_id)
    if state is not source:
        raise ConveyorError(f"job {job_id} is {state.value}: only a {source.value} job can be {verb}")
    moved = await (queue.retry_failed(job_id) if source is JobState.FAILED else queue.promote(job_id))
    if not moved:  # it left that state meanwhile
        raise ConveyorError(f"job {job_id} is no longer {source.value}")


def retry(queue: QueueArg, job_id: JobArg) -> None:
    """Runs a failed job again, with fresh attempts."""
    run(lambda redis: _move(redis, queue, job_id, JobState.FAILED, "retried"))
    typer.echo(f"{queue}/{job_id}: retried (waiting)")


def promote(queue: QueueArg, job_id: JobArg) -> None:
    """Runs a delayed job now."""
    run(lambda redis: _move(redis, queue, job_id, JobState.DELAYED, "promoted"))
    typer.echo(f"{queue}/{job_id}: promoted (waiting)")


def cancel(
    queue: QueueArg,
    job_id: JobArg,
    reason: Annotated[str, typer.Option(help="Recorded as the job's error.")] = "cancelled",
) -> None:
    """Stops a job: a waiting or delayed one fails at once, a running one
    at its worker's next lease renewal."""

    async def work(redis: Any) -> JobState:
        q = await known_queue(redis, queue)
        state = await _state_of(q, job_id)
        if not await q.cancel(job_id, reason):
            raise ConveyorError(f"job {job_id} had already finished ({state.value})")
        return state

    state = run(work)
    when = "at its worker's next lease renewal" if state is JobState.ACTIVE else "now"
    typer.echo(f"{queue}/{job_id}: cancelled (fails {when})")


def remove(queue: QueueArg, job_id: JobArg) -> None:
    """Deletes a job that is not running (a flow parent with its pending
    children); cancel a running one first."""

    async def work(redis: Any) -> None:
        q = await known_queue(redis, queue)
        await _state_of(q, job_id)
        await q.remove(job_id)

    run(work)
    typer.echo(f"{queue}/{job_id}: removed")


def register(app: typer.Typer) -> None:
    """Adds the commands to ``app``."""
    for command in (retry, promote, cancel, remove):
        app.command()(command)
