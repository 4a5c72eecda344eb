"""Voting on a show's setlist: one vote per song per visitor, counted once
however often it is sent, taken back or turned round; every open page of
the show told as it happens; the votes written to the database by the
persist job, whatever was changed while it ran."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from setlist_env import Env
from sqlalchemy import func, select

from conveyor.testing import serving
from setlist import trending_view
from setlist.api import create_api
from setlist.models import Show, Vote
from setlist.queues import QueueName
from setlist.shows import COOKIE
from setlist.votes import VOTER


@pytest.fixture
async def show_id(env: Env) -> str:
    await env.import_artist("midsize")
    async with env.services.store.sessions() as session:
        found = await session.scalar(select(Show.id).order_by(Show.local_date).limit(1))
    assert found is not None
    return found


@pytest.fixture
async def site(env: Env) -> AsyncIterator[str]:
    async with serving(create_api(env.pipeline)) as url:
        yield url


def visitor(site: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=site)


async def _vote(client: httpx.AsyncClient, show_id: str, song_id: str, direction: str) -> dict[str, object]:
    response = await client.post(
        f"/api/shows/{show_id}/votes", json={"songId": song_id, "direction": direction}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _db_votes(env: Env, show_id: str) -> dict[tuple[str, str], int]:
    async with env.services.store.sessions() as session:
        rows = (await session.execute(select(Vote).where(Vote.show_id == show_id))).scalars()
        return {(v.song_id, v.voter): v.value for v in rows}


async def test_each_visitor_has_one_vote_per_song(env: Env, site: str, show_id: str) -> None:
    async with visitor(site) as ada, visitor(site) as bob:
        page = await ada.get(f"/shows/{show_id}")
        assert page.status_code == 200 and COOKIE in ada.cookies  # the page gives a visitor its cookie
        body = (await ada.get(f"/api/shows/{show_id}")).json()
        songs = [s["id"] for s in body["songs"]]
        assert len(songs) > 2 and body["show"]["views"] == 1
        first, second = songs[0], songs[1]

        assert (await _vote(ada, show_id, first, "up"))["up"] == 1
        again = await _vote(ada, show_id, first, "up")  # sent twice: counted once
        assert (again["up"], again["down"]) == (1, 0)
        assert (await _vote(bob, show_id, first, "up"))["up"] == 2  # bob has a cookie of his own now
        turned = await _vote(ada, show_id, first, "down")
        assert (turned["up"], turned["down"], turned["score"]) == (1, 1, 0)
        await _vote(bob, show_id, second, "down")
        taken = await _vote(bob, show_id, second, "none")
        assert (taken["up"], taken["down"]) == (0, 0)

        mine = {s["id"]: s["myVote"] for s in (await ada.get(f"/api/shows/{show_id}")).json()["songs"]}
        assert mine[first] == "down" and mine[second] == "none"
        tallies = {
            s["id"]: (s["up"], s["down"]) for s in (await bob.get(f"/api/shows/{show_id}")).json()["songs"]
        }
        assert tallies[first] == (1, 1) and tallies[second] == (0, 0)

        # hostile input changes nothing
        for bad in (
            {"songId": first, "direction": "sideways"},
            {"songId": "", "direction": "up"},
            {"direction": "up"},
        ):
            assert (await ada.post(f"/api/shows/{show_id}/votes", json=bad)).status_code == 422
        elsewhere = await ada.post(
            f"/api/shows/{show_id}/votes", json={"songId": "not-a-song", "direction": "up"}
        )
        assert elsewhere.status_code == 422
        assert (
            await ada.post("/api/shows/nope/votes", json={"songId": first, "direction": "up"})
        ).status_code == 404
        async with httpx.AsyncClient(base_url=site) as forged:
            answer = await forged.post(
                f"/api/shows/{show_id}/votes",
                json={"songId": first, "direction": "up"},
                headers={"cookie": f"{COOKIE}=../../etc"},
            )
            # a malformed cookie is replaced by a new visitor's, not used
            assert answer.json()["up"] == 2 and VOTER.fullmatch(answer.cookies[COOKIE])

    votes_queue = env.app.queues[QueueName.VOTES].queue
    assert await votes_queue.promote() >= 1  # the votes added a persist job (due a second later)
    await env.app.run_worker(burst=True)
    stored = await _db_votes(env, show_id)
    assert sorted(stored.values()) == [
        -1,
        1,
        1,
    ]  # ada down, bob up, the new visitor up; bob's second taken back
    assert {song for song, _ in stored} == {first}


async def test_every_open_page_is_told_of_each_change(env: Env, site: str, show_id: str) -> None:
    async with visitor(site) as ada, visitor(site) as watcher:
        songs = [s["id"] for s in (await ada.get(f"/api/shows/{show_id}")).json()["songs"]]
        seen: list[dict[str, object]] = []
        ready = asyncio.Event()

        async def listen() -> None:
            async with watcher.stream("GET", f"/api/shows/{show_id}/stream") as stream:
                ready.set()
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        seen.append(json.loads(line[5:]))
                        if len(seen) == 3:
                            return

        task = asyncio.create_task(listen())
        await ready.wait()
        await _vote(ada, show_id, songs[0], "up")
        await _vote(ada, show_id, songs[0], "up")  # no change: not sent
        await _vote(ada, show_id, songs[1], "down")
        await _vote(ada, show_id, songs[0], "none")
        await asyncio.wait_for(task, 10)
    assert [(e["songId"], e["up"], e["down"]) for e in seen] == [
        (songs[0], 1, 0),
        (songs[1], 0, 1),
        (songs[0], 0, 0),
    ]
    seqs = [int(str(e["seq"])) for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


async def test_a_change_made_while_the_votes_are_written_is_written_next(env: Env, show_id: str) -> None:
    votes = env.pipeline.votes
    async with env.services.store.sessions() as session:
        show = await session.get(Show, show_id)
        assert show is not None
    songs = [s.id for s in await env.services.store.songs(show.artist_id)]
    await votes.load_songs(show_id, songs)
    await votes.cast(show_id, songs[0], "voter-aaaaaaaaaaaaaaaa", 1)
    original = votes.redis.hgetall

    async def changed_meanwhile(key: str) -> object:
        marks = await original(key)
        await votes.cast(show_id, songs[0], "voter-aaaaaaaaaaaaaaaa", -1)  # while the job runs
        return marks

    votes.redis.hgetall = changed_meanwhile  # type: ignore[method-assign]
    try:
        await votes.persist()
    finally:
        votes.redis.hgetall = original  # type: ignore[method-assign]
    assert await votes.redis.hlen("setlist:votes:dirty") == 1  # the later change is still to write
    await votes.persist()
    assert await votes.redis.hlen("setlist:votes:dirty") == 0
    assert await _db_votes(env, show_id) == {(songs[0], "voter-aaaaaaaaaaaaaaaa"): -1}


async def test_trending_follows_the_seeds_formula_over_each_window(env: Env, site: str, show_id: str) -> None:
    async with env.services.store.sessions() as session:
        show = await session.get(Show, show_id)
        assert show is not None
        artist_id = show.artist_id
    # the import's end scored the artist already: no page shows a 0 first
    await env.app.run_worker(burst=True)
    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.trending_score > 0

    async with visitor(site) as ada:
        await ada.get(f"/shows/{show_id}")  # a view of the show counts for its artist
        await ada.get(f"/artists/{artist.slug}")
        songs = [s["id"] for s in (await ada.get(f"/api/shows/{show_id}")).json()["songs"]]
        for song in songs[:3]:
            await _vote(ada, show_id, song, "up")
    await env.pipeline.votes.persist()
    await env.pipeline.calculate_trending()

    artist = await env.services.store.artist(artist_id)
    assert artist is not None and artist.view_count == 2
    async with env.services.store.sessions() as session:
        upcoming = await session.scalar(
            select(func.count())
            .select_from(Show)
            .where(
                Show.artist_id == artist_id,
                Show.local_date >= datetime.now(UTC).date(),
                Show.status != "cancelled",
            )
        )
    assert upcoming
    popularity = artist.popularity if artist.popularity is not None else min(artist.upcoming_events, 100)
    expected = (
        3 * 10 + upcoming * 5 + popularity * 2 + min((artist.followers or 0) / 10_000, 100) + 2 * 3 + 20
    )
    for window in ("daily", "weekly", "monthly"):
        place = json.loads(await env.services.redis.get(f"trending:artist:{artist_id}:{window}"))
        assert place == {"score": round(expected, 2), "rank": 1}
    assert artist.trending_score == round(expected, 2)  # the weekly score orders /api/trending

    # seed 002's refresh_trending_data(): the leaderboard (a materialized
    # view on PostgreSQL, a table on SQLite) holds the same figures
    board = await trending_view.read(env.services.store.sessions, [artist_id])
    row = board[artist_id]
    assert (row["rank"], row["upcoming_shows"], row["recent_votes"], row["views"]) == (1, upcoming, 3, 2)
    assert row["trending_score"] == round(expected, 2)
    async with visitor(site) as ada:
        (first,) = [a for a in (await ada.get("/api/trending")).json()["artists"] if a["id"] == artist_id]
    assert (first["rank"], first["upcomingShows"], first["recentVotes"]) == (1, upcoming, 3)

    # another vote shows at the next refresh, not before
    async with visitor(site) as bob:
        await _vote(bob, show_id, songs[0], "up")
    await env.pipeline.votes.persist()
    assert (await trending_view.read(env.services.store.sessions, [artist_id]))[artist_id][
        "recent_votes"
    ] == 3
    assert await trending_view.refresh(env.services.store.sessions) == 1
    assert (await trending_view.read(env.services.store.sessions, [artist_id]))[artist_id][
        "recent_votes"
    ] == 4
