"""Waiting for work: an idle worker blocks on its queue's marker (a sorted
set every add, promotion and finished job touches) instead of polling,
wakes when its next delayed job is due, and stays off a held (rate
limited) queue until it opens.

A claim may ride behind the blocking pop, written on the same connection
in the same packet: Redis holds it until the pop returns, then runs it at
once, and both replies come back together. A job added to an idle worker
then reaches its handler in one hop, not in a wake-up and a claim's round
trip. A timer (the next delayed job) or a stopping worker ends the block
with ``CLIENT UNBLOCK``, so that the claim runs then."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from conveyor.engine.client.cluster import RedisClient, dedicated_connection, unblock

#: Tries of ``CLIENT UNBLOCK`` (a few ms apart) for a pop that has not
#: reached Redis yet, before the connection is closed instead.
UNBLOCK_TRIES = 20


@dataclass(slots=True)
class Ride:
    """A command written right behind the pop (see the module's text):
    ``landed`` gets its raw reply, or the error that lost the reply (the
    command may then have run or not)."""

    command: tuple[Any, ...]
    landed: Callable[[Any], None]


class MarkerWatch:
    """Blocks on ``marker`` with ``BZPOPMIN`` each time :attr:`idle` is
    set, then calls ``wake`` (the marker moved, or the block timed out:
    look again). It uses a connection of its own, closed to stop it:
    redis-py lets a blocking command run to its timeout even when the task
    is cancelled."""

    def __init__(
        self,
        redis: RedisClient,
        marker: str,
        block_timeout: float,
        nudge: asyncio.Event,
        wake: Callable[[], None],
        stopping: Callable[[], bool],
        ride: Callable[[], Ride | None] | None = None,
    ) -> None:
        self.redis = redis
        self.marker = marker
        self.block_timeout = block_timeout
        self.nudge = nudge
        self.wake = wake
        self.stopping = stopping
        #: Set by the worker when its last claim found the queue dry.
        self.idle = asyncio.Event()
        #: The queue is held (rate limited or paused for a while): no claims.
        self.held = False
        self._conn: Any = None
        #: Asked before each block for a command to ride behind it.
        self.ride = ride
        #: The ride written behind the block now in progress, if any.
        self.riding: Ride | None = None
        self._conn_id: int | None = None
        #: CLIENT UNBLOCK is allowed (a least-privilege ACL user may not send it).
        self._may_unblock = True
        self._unblocking: asyncio.Task[None] | None = None
        self._unblocking_to_stop = False
        self._timer: asyncio.TimerHandle | None = None
        self._hold_timer: asyncio.TimerHandle | None = None

    def hold(self, delay: float) -> None:
        """No claims for ``delay`` seconds, then a nudge."""
        self.held = True
        if self._hold_timer:
            self._hold_timer.cancel()
        self._hold_timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self) -> None:
        self.held = False
        self._hold_timer = None
        self.nudge.set()

    def after(self, delay: float) -> None:
        """Wake in ``delay`` seconds (the next delayed job or group turn)."""
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        if self.riding is not None:
            self.end_block(stopping=False)
        else:
            self.wake()

    def end_block(self, *, stopping: bool) -> None:
        """Ends the block in progress now, so that its ride runs (a timer
        fell due, or the worker stops)."""
        running = self._unblocking
        if running is None or running.done() or (stopping and not self._unblocking_to_stop):
            self._unblocking_to_stop = stopping
            self._unblocking = asyncio.get_running_loop().create_task(self._unblock(self.riding, stopping))

    async def _unblock(self, ride: Ride | None, stopping: bool) -> None:
        for _ in range(UNBLOCK_TRIES):
            if ride is None or self.riding is not ride:
                return
            if self._conn_id is None or not self._may_unblock:
                break
            try:
                if await unblock(self.redis, self.marker, self._conn_id):
                    return
            except ResponseError:  # not allowed (CLIENT UNBLOCK is an admin command)
                self._may_unblock = False
                break
            except Exception:
                break
            # not blocked (yet): the pop is still on its way, or returning
            await asyncio.sleep(0.005)
        if ride is None or self.riding is not ride:
            return
        if not stopping:
            # a timer: set the marker, as an add does; the worker blocked
            # longest wakes and claims the job that fell due
            with contextlib.suppress(Exception):
                await self.redis.zadd(self.marker, {"0": 0})
                return
        conn = self._conn
        if self.riding is ride and conn is not None:
            # stopping, or Redis unreachable: close the connection (the ride
            # then lands as lost, and is sent again)
            await conn.disconnect()

    def cancel_timers(self) -> None:
        for timer in (self._timer, self._hold_timer):
            if timer:
                timer.cancel()

    async def run(self) -> None:
        failures = 0
        conn: Any = None
        release: Any = None
        try:
            while not self.stopping():
                await self.idle.wait()
                self.idle.clear()
                if self.stopping():
                    break
                try:
                    if conn is None:
                        conn, release = await dedicated_connection(self.redis, self.marker)
                        self._conn_id = None
                        if self.ride is not None:
                            self._conn_id = await _client_id(conn)
                    self._conn = conn
                    if self.stopping():
                        # stop() came while the connection was being made: it
                        # found none to close, and a block would run its course
                        break
                    ride = self.ride() if self.ride is not None else None
                    if ride is not None:
                        await self._block_with(conn, ride)
                        failures = 0
                        # the ride's reply is the wake; the handlers it
                        # started run before the next block is written
                        await asyncio.sleep(0)
                        continue
                    await conn.send_command("BZPOPMIN", self.marker, self.block_timeout)
                    await conn.read_response()
                    failures = 0
                except Exception:
                    if conn is not None:
                        # on a cluster, the slot may be served elsewhere now
                        await conn.disconnect()
                        await release(conn)
                        conn = None
                    if self.stopping():
                        break
                    failures += 1
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                self.wake()
        finally:
            self._conn = None
            if conn is not None:
                await conn.disconnect()
                await release(conn)

    async def _block_with(self, conn: Any, ride: Ride) -> None:
        """The pop with ``ride`` behind it; ``ride`` lands either way. An
        error answering the pop (the slot moved) is raised after."""
        self.riding = ride
        try:
            await conn.send_packed_command(
                conn.pack_commands([("BZPOPMIN", self.marker, self.block_timeout), ride.command])
            )
            popped = await _reply(conn, decode=True)
            reply = await _reply(conn, decode=False)
        except BaseException as exc:
            self.riding = None
            ride.landed(exc)
            raise
        self.riding = None
        ride.landed(reply)
        if isinstance(popped, ResponseError):
            raise popped

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Ends :meth:`run` (running as ``task``) once ``stopping()`` is true."""
        self.idle.set()
        conn = self._conn
        if conn is not None:
            await conn.disconnect()
        await task
        if self._unblocking is not None:
            self._unblocking.cancel()


async def _reply(conn: Any, *, decode: bool) -> Any:
    """The next reply on ``conn``; an error reply is returned, not raised."""
    try:
        return await conn.read_response(disable_decoding=not decode)
    except ResponseError as exc:
        return exc


async def _client_id(conn: Any) -> int | None:
    """The connection's id in Redis, for CLIENT UNBLOCK (None: not allowed)."""
    await conn.send_command("CLIENT", "ID")
    reply = await _reply(conn, decode=True)
    return None if isinstance(reply, ResponseError) else int(reply)
