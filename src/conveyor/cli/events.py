"""The event bus's dead letters from the command line, beside the jobs'
(``conveyor dlq``): ``conveyor events dead-letters|replay|purge STREAM``.
Replaying or purging every letter asks first (``--yes`` skips it)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from conveyor.cli.admin import JsonFlag, Yes, at, console, emit_json, run
from conveyor.engine.registry import stream_listed
from conveyor.errors import ConveyorError
from conveyor.realtime.dead_letters import DeadLetter
from conveyor.realtime.streams import EventBus

events = typer.Typer(help="Event bus streams: the events a consumer group gave up on.", no_args_is_help=True)

StreamArg = Annotated[str, typer.Argument(metavar="STREAM", help="The event stream's name.")]
Ids = Annotated[
    list[str] | None, typer.Argument(metavar="[ID]...", help="Dead-letter ids (default: every one).")
]
Group = Annotated[str | None, typer.Option(help="Only the letters of this consumer group.")]
Search = Annotated[str | None, typer.Option(help="Only letters whose error or type holds this text.")]


async def known_stream(redis: Any, name: str) -> EventBus:
    if not await stream_listed(redis, name):
        raise ConveyorError(f"unknown event stream {name!r} (nothing has published to or consumed it)")
    return EventBus(redis, name)


def _count(stream: str, group: str | None, search: str | None) -> int:
    async def work(redis: Any) -> int:
        bus = await known_stream(redis, stream)
        return sum([len(page) async for page in bus.dead_letter_pages(group=group, search=search)])

    return run(work)


@events.command("dead-letters")
def dead_letters(
    stream: StreamArg,
    group: Group = None,
    search: Search = None,
    count: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Events a consumer group gave up on, newest first."""

    async def work(redis: Any) -> list[DeadLetter]:
        bus = await known_stream(redis, stream)
        return await bus.dead_letters(count=count, group=group, search=search)

    found = run(work)
    if as_json:
        emit_json([{**asdict(letter), "time": letter.time} for letter in found])
        return
    table = Table(title=f"{stream}: dead letters")
    for column in ("id", "event", "type", "group", "reason", "deliveries", "dead-lettered", "error"):
        table.add_column(column)
    for d in found:
        table.add_row(
            d.id, d.event_id, d.type or "", d.group, d.reason, str(d.deliveries), at(d.time), d.error[:80]
        )
    console.print(table)


@events.command("replay")
def replay(
    stream: StreamArg, ids: Ids = None, group: Group = None, search: Search = None, yes: Yes = False
) -> None:
    """Publishes dead letters again, each to the group that gave up on it."""
    if not ids and not yes:
        n = _count(stream, group, search)
        typer.confirm(f"publish {n} dead letters of {stream} again?", abort=True, err=True)

    async def work(redis: Any) -> int:
        bus = await known_stream(redis, stream)
        return await bus.replay_dead_letters(*(ids or ()), group=group, search=search)

    typer.echo(f"{run(work)} events replayed")


@events.command("purge")
def purge(stream: StreamArg, ids: Ids = None, yes: Yes = False) -> None:
    """Deletes dead letters: those given, or every one."""
    if not ids and not yes:
        typer.confirm(
            f"delete the {_count(stream, None, None)} dead letters of {stream}?", abort=True, err=True
        )

    async def work(redis: Any) -> int:
        bus = await known_stream(redis, stream)
        return await bus.purge_dead_letters(*(ids or ()))

    typer.echo(f"{run(work)} dead letters deleted")


def register(app: typer.Typer) -> None:
    app.add_typer(events, name="events")
