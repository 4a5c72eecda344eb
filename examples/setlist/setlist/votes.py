"""Voting on a show's setlist: the live tally in Redis, its updates on
Conveyor's progress bus, and the votes written to the database by a job.

- A visitor (an anonymous session cookie) votes each song of the show's
  list up or down, or takes the vote back. One Lua script changes the
  visitor's ballot and the song's tally together, so a vote is counted
  once however often it is sent, and two visitors voting at once both
  count. The script gives the song's tally a sequence number (per show,
  always rising): a page applies an update only when it is newer than what
  it shows, so updates that overtake each other on the way cannot leave an
  old count on screen.
- Each change is published on the progress bus (namespace ``votes``,
  subject ``show:<id>``); every open page of the show receives it through
  ``GET /api/shows/{id}/stream``.
- Each change also marks the (show, song, visitor) dirty, with a version;
  the ``persist_votes`` job (on ``setlist-votes``, added a second after a
  vote when no run is due yet, and swept every minute) writes the dirty
  ballots to the ``votes`` table and clears each mark only if its version
  is still the one it wrote, so a change made while it ran is written by
  the next run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from conveyor import ProgressBus
from setlist.models import Vote

PREFIX = "setlist:votes"
DIRTY = f"{PREFIX}:dirty"
#: Set while a persist run is due: the votes in between add none.
PERSIST_DUE = f"{PREFIX}:persist-due"
#: How long after a vote its run comes (s), and how long the flag lasts: a
#: vote after the flag expires adds a run of its own, so none waits longer.
PERSIST_DELAY, PERSIST_FLAG = 1.0, 0.8
#: What a voter cookie looks like; anything else is replaced by a new one.
VOTER = re.compile(r"[A-Za-z0-9_-]{16,64}")
DIRECTIONS = {"up": 1, "down": -1, "none": 0}

#: -- cast: one visitor's vote on one song
#: KEYS: 1 the show's tally (hash: <song>:up, <song>:down, <song>:seq, seq),
#:       2 the visitor's ballot (hash: song -> 1 or -1), 3 the show's songs
#:       (set), 4 the dirty marks (hash: show|song|voter -> version),
#:       5 the persist job's flag (set while a run is due)
#: ARGV: 1 song, 2 value (1, -1 or 0: taken back), 3 the dirty mark's field,
#:       4 how long the flag lasts (ms)
#: Returns: {up, down, seq, changed (1/0), persist (1: no run is due, add one)};
#:          {-1} when the song is not on the show's list; {-2} when the list
#:          is not loaded
_CAST = """
if redis.call('EXISTS', KEYS[3]) == 0 then return {-2} end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then return {-1} end
local song, value = ARGV[1], tonumber(ARGV[2])
local old = tonumber(redis.call('HGET', KEYS[2], song) or '0')
local changed = 0
if old ~= value then
  if old == 1 then redis.call('HINCRBY', KEYS[1], song .. ':up', -1) end
  if old == -1 then redis.call('HINCRBY', KEYS[1], song .. ':down', -1) end
  if value == 1 then redis.call('HINCRBY', KEYS[1], song .. ':up', 1) end
  if value == -1 then redis.call('HINCRBY', KEYS[1], song .. ':down', 1) end
  if value == 0 then redis.call('HDEL', KEYS[2], song) else redis.call('HSET', KEYS[2], song, value) end
  redis.call('HSET', KEYS[1], song .. ':seq', redis.call('HINCRBY', KEYS[1], 'seq', 1))
  redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
  changed = 1
end
local persist = 0
if changed == 1 and redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[4]) then persist = 1 end
local t = redis.call('HMGET', KEYS[1], song .. ':up', song .. ':down', song .. ':seq')
return {tonumber(t[1] or '0'), tonumber(t[2] or '0'), tonumber(t[3] or '0'), changed, persist}
"""

#: -- clear: drops the dirty marks still at the version a flush wrote
#: KEYS: 1 the dirty marks; ARGV: field, version, field, version, ...
#: Returns: how many were dropped
_CLEAR = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


@dataclass(frozen=True, slots=True)
class Tally:
    up: int
    down: int
    seq: int

    @property
    def score(self) -> int:
        return self.up - self.down

    def out(self, song_id: str) -> dict[str, Any]:
        return {"songId": song_id, "up": self.up, "down": self.down, "score": self.score, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class Cast:
    tally: Tally
    changed: bool
    #: No persist run is due: the caller adds one (``PERSIST_DELAY`` on).
    persist: bool


class NotOnTheList(LookupError):
    """The song is not on the show's list."""


class Votes:
    def __init__(self, redis: Any, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.redis, self.sessions = redis, sessions
        self.bus = ProgressBus(redis, namespace="votes", retention=3600)
        self._cast = redis.register_script(_CAST)
        self._clear = redis.register_script(_CLEAR)

    # -- keys ------------------------------------------------------------------

    @staticmethod
    def subject(show_id: str) -> str:
        return f"show:{show_id}"

    def _tally(self, show_id: str) -> str:
        return f"{PREFIX}:{show_id}:tally"

    def _ballot(self, show_id: str, voter: str) -> str:
        return f"{PREFIX}:{show_id}:ballot:{voter}"

    def _songs(self, show_id: str) -> str:
        return f"{PREFIX}:{show_id}:songs"

    # -- the live tally ----------------------------------------------------------

    async def load_songs(self, show_id: str, song_ids: Iterable[str]) -> None:
        """The songs a show's visitors may vote on (kept an hour)."""
        ids = list(song_ids)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._songs(show_id))
            if ids:
                pipe.sadd(self._songs(show_id), *ids)
            else:
                pipe.sadd(self._songs(show_id), "")  # an empty list is still a loaded one
            pipe.expire(self._songs(show_id), 3600)
            await pipe.execute()

    async def cast(self, show_id: str, song_id: str, voter: str, value: int) -> Cast | None:
        """The visitor's vote (1, -1 or 0 to take it back) on the song: the
        song's tally after it, whether it changed anything and whether a
        persist run is to be added; None when the show's list is not loaded
        (load it and cast again); NotOnTheList."""
        if value not in (1, -1, 0):
            raise ValueError(f"a vote is 1, -1 or 0, not {value!r}")
        keys = [self._tally(show_id), self._ballot(show_id, voter), self._songs(show_id), DIRTY, PERSIST_DUE]
        args = [song_id, value, f"{show_id}|{song_id}|{voter}", round(PERSIST_FLAG * 1000)]
        reply = await self._cast(keys=keys, args=args)
        if reply[0] == -2:
            return None
        if reply[0] == -1:
            raise NotOnTheList(song_id)
        up, down, seq, changed, persist = (int(x) for x in reply)
        tally = Tally(up, down, seq)
        if changed:
            await self.bus.report(self.subject(show_id), "voting", 0, **tally.out(song_id))
        return Cast(tally, bool(changed), bool(persist))

    async def tallies(self, show_id: str) -> dict[str, Tally]:
        raw = {k.decode(): int(v) for k, v in (await self.redis.hgetall(self._tally(show_id))).items()}
        songs = {k.rsplit(":", 1)[0] for k in raw if ":" in k}
        return {
            s: Tally(raw.get(f"{s}:up", 0), raw.get(f"{s}:down", 0), raw.get(f"{s}:seq", 0)) for s in songs
        }

    async def ballot(self, show_id: str, voter: str) -> dict[str, int]:
        raw = await self.redis.hgetall(self._ballot(show_id, voter))
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- to the database -----------------------------------------------------------

    async def persist(self, limit: int = 10_000) -> dict[str, int]:
        """Writes the ballots changed since the last run to ``votes``: a row
        per vote, none for a vote taken back."""
        marks = list((await self.redis.hgetall(DIRTY)).items())[:limit]
        if not marks:
            return {"written": 0, "removed": 0}
        parsed = [(field.decode().split("|", 2), version) for field, version in marks]
        async with self.redis.pipeline(transaction=False) as pipe:
            for (show_id, song_id, voter), _ in parsed:
                pipe.hget(self._ballot(show_id, voter), song_id)
            values = await pipe.execute()
        now = datetime.now(UTC)
        keep: list[dict[str, Any]] = []
        drop: list[tuple[str, str, str]] = []
        for ((show_id, song_id, voter), _), value in zip(parsed, values, strict=True):
            if value is None:
                drop.append((show_id, song_id, voter))
            else:
                keep.append(
                    {
                        "id": str(uuid.uuid4()),
                        "show_id": show_id,
                        "song_id": song_id,
                        "voter": voter,
                        "value": int(value),
                        "created_at": now,
                    }
                )
        async with self.sessions.begin() as session:
            db = await session.connection()
            if keep:
                insert = _insert(db)
                upsert = insert.on_conflict_do_update(
                    index_elements=["show_id", "song_id", "voter"],
                    set_={"value": insert.excluded.value, "updated_at": now},
                    where=Vote.value != insert.excluded.value,
                )
                await db.execute(upsert, keep)  # one statement, compiled once, for every row
            for i in range(0, len(drop), 500):
                chunk = drop[i : i + 500]
                await db.execute(
                    delete(Vote).where(tuple_(Vote.show_id, Vote.song_id, Vote.voter).in_(chunk))
                )
        args: list[Any] = []
        for field, version in marks:
            args += [field, version]
        await self._clear(keys=[DIRTY], args=args)
        return {"written": len(keep), "removed": len(drop)}


def _insert(db: AsyncConnection) -> Any:
    return (postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert)(Vote)
