"""A show's page and its votes (see ``votes``):

- ``GET /shows/{id}``: the page (counts a view of the show and of its
  artist, and gives a new visitor its ``setlist_voter`` cookie);
- ``GET /api/shows/{id}``: the show, its artist and venue, the songs to
  vote on (the artist's studio catalog) with their tallies, the visitor's
  own votes, and the setlist actually played once setlist.fm has it;
- ``POST /api/shows/{id}/votes {songId, direction: up|down|none}``: the
  visitor's vote; answers the song's tally (and whether the vote changed
  it: sending the same vote again does not);
- ``GET /api/shows/{id}/stream``: every change of the show's tallies as it
  happens, as unnamed server-sent events (``data: {songId, up, down,
  score, seq}``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sse_starlette import EventSourceResponse, ServerSentEvent

from conveyor.server import ProgressHub
from setlist.catalog import normalize_title
from setlist.models import Artist, Setlist, Show, Venue
from setlist.pipeline import Pipeline
from setlist.votes import DIRECTIONS, PERSIST_DELAY, VOTER, NotOnTheList, Votes

WEB = Path(__file__).with_name("web")
COOKIE = "setlist_voter"


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    song_id: str = Field(alias="songId", min_length=1, max_length=40)
    direction: Literal["up", "down", "none"]


class VoteOut(BaseModel):
    """A vote's answer: the song's tally after it."""

    songId: str
    up: int
    down: int
    score: int
    seq: int
    myVote: Literal["up", "down", "none"]
    changed: bool


def voter_of(request: Request) -> str | None:
    raw = request.cookies.get(COOKIE)
    return raw if raw is not None and VOTER.fullmatch(raw) else None


def give_voter(response: Response, voter: str) -> None:
    response.set_cookie(COOKIE, voter, max_age=365 * 86400, httponly=True, samesite="lax")


def add_shows(api: FastAPI, pipeline: Pipeline) -> None:
    router = APIRouter(tags=["shows"])
    votes: Votes = pipeline.votes
    # every open page of this process follows its show through one pub/sub connection
    hub = ProgressHub(votes.bus)
    sessions = pipeline.services.store.sessions

    async def load(show_id: str) -> tuple[Show, Artist, Venue | None]:
        async with sessions() as session:
            found = (
                await session.execute(
                    select(Show, Artist, Venue)
                    .join(Artist, Artist.id == Show.artist_id)
                    .outerjoin(Venue, Venue.id == Show.venue_id)
                    .where(Show.id == show_id)
                )
            ).first()
        if found is None:
            raise HTTPException(404, f"no show {show_id!r}")
        return found[0], found[1], found[2]

    loading: dict[str, asyncio.Task[None]] = {}

    async def load_songs(show_id: str) -> None:
        show, artist, _ = await load(show_id)
        await votes.load_songs(show.id, [s.id for s in await pipeline.services.store.songs(artist.id)])

    async def load_once(show_id: str) -> None:
        """Loads the show's list for voting; the first votes on a show
        arriving together share one load."""
        task = loading.get(show_id)
        if task is None:
            task = loading[show_id] = asyncio.ensure_future(load_songs(show_id))
            task.add_done_callback(lambda _: loading.pop(show_id, None))
        await asyncio.shield(task)

    async def played(show: Show) -> list[str] | None:
        async with sessions() as session:
            songs = await session.scalar(select(Setlist.songs).where(Setlist.show_id == show.id).limit(1))
        return list(songs) if songs is not None else None

    @router.get("/api/shows/{show_id}")
    async def show_page(show_id: str, request: Request) -> dict[str, Any]:
        """The show, the songs to vote on with their tallies, and the
        visitor's votes."""
        show, artist, venue = await load(show_id)
        songs = await pipeline.services.store.songs(artist.id)
        await votes.load_songs(show.id, [s.id for s in songs])
        tallies = await votes.tallies(show.id)
        voter = voter_of(request)
        mine = await votes.ballot(show.id, voter) if voter else {}
        setlist = await played(show)
        heard = {normalize_title(name) for name in setlist or []}
        zero = {"up": 0, "down": 0, "score": 0, "seq": 0}
        return {
            "show": {
                "id": show.id,
                "name": show.name,
                "date": show.local_date.isoformat() if show.local_date else None,
                "status": show.status,
                "views": show.view_count,
                "venue": {"name": venue.name, "city": venue.city} if venue else None,
                "artist": {"id": artist.id, "name": artist.name, "slug": artist.slug},
            },
            "songs": [
                {
                    "id": song.id,
                    "name": song.name,
                    "album": song.album_name,
                    **(tallies[song.id].out(song.id) if song.id in tallies else {**zero, "songId": song.id}),
                    "myVote": {1: "up", -1: "down"}.get(mine.get(song.id, 0), "none"),
                    "played": normalize_title(song.name) in heard,
                }
                for song in songs
            ],
            "setlist": setlist,
        }

    @router.post("/api/shows/{show_id}/votes", response_model=VoteOut)
    async def vote(show_id: str, body: VoteIn, request: Request) -> Response:
        """The visitor's vote on one song of the show: up, down, or none (taken
        back). Sending the same vote again changes nothing."""
        voter = voter_of(request)
        fresh = voter is None
        if voter is None:
            voter = secrets.token_urlsafe(18)
        value = DIRECTIONS[body.direction]
        try:
            cast = await votes.cast(show_id, body.song_id, voter, value)
            if cast is None:  # the show's list is not loaded yet: votes arriving together share one load
                await load_once(show_id)
                cast = await votes.cast(show_id, body.song_id, voter, value)
        except NotOnTheList:
            raise HTTPException(422, f"song {body.song_id!r} is not on this show's list") from None
        if cast is None:
            raise HTTPException(503, "the show's list could not be loaded")
        if cast.persist:
            await pipeline.persist_votes.with_options(delay=PERSIST_DELAY).enqueue()
        # written here, not by FastAPI's response validation: this is the hot route
        out = {**cast.tally.out(body.song_id), "myVote": body.direction, "changed": cast.changed}
        response = Response(json.dumps(out), media_type="application/json")
        if fresh:
            give_voter(response, voter)
        return response

    @router.get("/api/shows/{show_id}/stream", response_class=EventSourceResponse)
    async def stream(show_id: str, request: Request) -> EventSourceResponse:
        """Each change of the show's tallies, as unnamed events."""
        await load(show_id)
        subject = votes.subject(show_id)
        # listening before the answer starts: no change after it is missed
        follower, _ = await hub.open(subject)

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:  # a page that goes away ends the response, and this with it
                async for status in follower:
                    yield ServerSentEvent(data=json.dumps(status.extra))
            finally:
                await hub.close(subject, follower)

        return EventSourceResponse(events(), ping=15)

    @router.get("/shows/{show_id}", include_in_schema=False)
    async def page(show_id: str, request: Request) -> HTMLResponse:
        show, artist, _ = await load(show_id)
        await pipeline.services.store.count_view(artist.id, show.id)
        html = HTMLResponse((WEB / "show.html").read_text(encoding="utf-8"))
        if voter_of(request) is None:
            give_voter(html, secrets.token_urlsafe(18))
        return html

    api.include_router(router)
    api.router.on_shutdown.append(hub.aclose)
