"""The event bus streams under ``/api/streams``: their consumer groups, and
the events a group gave up on (list, replay, purge), as the job routes do
for a queue's dead letters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request

from conveyor.realtime.streams import EventBus
from conveyor.server.auth import require_token
from conveyor.server.models import Done, EventDeadLetterOut, ReplayEventsIn, StreamGroupOut, problems

router = APIRouter(
    prefix="/api", dependencies=[Depends(require_token)], responses=problems(401), tags=["event streams"]
)

Text = Annotated[str | None, Query(max_length=200)]


async def _stream(request: Request, stream: str) -> EventBus:
    bus: EventBus = await request.app.state.conveyor.stream(stream)
    return bus


StreamDep = Annotated[EventBus, Depends(_stream)]


@router.get("/streams", response_model=list[str])
async def streams(request: Request) -> list[str]:
    """Event streams given to the server or published to or consumed under its prefix."""
    names: list[str] = await request.app.state.conveyor.stream_list()
    return names


@router.get("/streams/{stream}/groups", response_model=list[StreamGroupOut], responses=problems(404))
async def stream_groups(bus: StreamDep) -> list[StreamGroupOut]:
    """The consumer groups of an event stream, with their lag and pending entries."""
    return [StreamGroupOut.model_validate(g) for g in await bus.groups()]


@router.get(
    "/streams/{stream}/dead-letters", response_model=list[EventDeadLetterOut], responses=problems(404)
)
async def event_dead_letters(
    bus: StreamDep,
    group: Text = None,
    search: Text = None,
    before: Annotated[str | None, Query(max_length=40, description="the last id of the page before")] = None,
    count: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[EventDeadLetterOut]:
    """Events a group gave up on, newest first, optionally one group's and
    those whose error or type holds ``search``; page on with ``before``."""
    found = await bus.dead_letters(count=count, before=before, group=group, search=search)
    return [EventDeadLetterOut.model_validate(letter) for letter in found]


@router.post("/streams/{stream}/dead-letters/replay", response_model=Done, responses=problems(400, 404, 413))
async def replay_event_dead_letters(bus: StreamDep, body: Annotated[ReplayEventsIn, Body()]) -> Done:
    """Publishes dead letters again, each to the group that gave up on it,
    and removes them from the dead letters: the ``ids`` given, or every one
    (of ``group``, matching ``search``) when none is."""
    return Done(count=await bus.replay_dead_letters(*body.ids, group=body.group, search=body.search))


@router.delete("/streams/{stream}/dead-letters", response_model=Done, responses=problems(404))
async def purge_event_dead_letters(
    bus: StreamDep, ids: Annotated[list[str] | None, Query(alias="id", max_length=1000)] = None
) -> Done:
    """Deletes the dead letters given (``?id=...&id=...``), or every one."""
    return Done(count=await bus.purge_dead_letters(*(ids or ())))
