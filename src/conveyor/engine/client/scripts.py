"""The Lua layer: one script per state transition (``lua/*.lua``), loaded
once and called by SHA, reloaded when Redis answers NOSCRIPT (after a
restart or failover). Shared steps live in ``lua/includes`` and are pulled
in by ``--@include name`` lines (see ``assemble``).

Every script starts with a ``#!lua`` line, so that Redis at its
``maxmemory`` limit refuses a script before it starts instead of at its
first write (which would leave a transition half made). Scripts that only
delete, move deadlines or record heartbeats may run at the limit
(``allow-oom``): they free memory, keep live jobs' locks from expiring
while Redis is full, and show the workers still alive."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from functools import cache, partial
from typing import Any, TypeVar, cast

import redis
import redis.cluster
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, NoScriptError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from conveyor.engine.client.assemble import assemble
from conveyor.engine.client.channel import Arg, Channel, Client, Demoted, ReplyLost, Rerouted, encode_args
from conveyor.engine.client.cluster import ClusterClient, RedisClient
from conveyor.engine.client.errors import (
    connection_failed,
    describe,
    mapped,
    not_clustered,
    redis_errors,
    slot_unavailable,
)
from conveyor.engine.client.headers import check_call, checking
from conveyor.errors import (
    InvalidJobOptions,
    OutcomeUnknown,
    SlotUnavailable,
)

R = TypeVar("R")
_RESENDS = 3
#: Loads of a script that Redis answers NOSCRIPT before a call gives up:
#: its cache may be flushed again between a load and the call.
LOADS = 3
#: How long a script waits for a cluster slot that is migrating or failing
#: over (ASK, TRYAGAIN, CLUSTERDOWN) before SlotUnavailable.
SLOT_WAIT = 5.0
#: Scripts that free memory, renew leases or record heartbeats (a few bytes
#: per worker), allowed to run at maxmemory.
ALLOW_OOM = frozenset(
    {"remove_job", "clean_jobs", "obliterate", "drain", "extend_locks", "ack_events", "beat_worker"}
)


class Script:
    """One Lua script, callable on an async or a sync redis-py client."""

    __slots__ = ("_heads", "checked", "name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        flags = " flags=allow-oom" if name in ALLOW_OOM else ""
        self.source = f"#!lua{flags}\n" + assemble(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self._heads: dict[tuple[str, ...], bytes] = {}
        self.checked = checking()

    async def run(
        self, client: RedisClient, keys: Sequence[str], args: Sequence[Arg], *, resend: bool = True
    ) -> Any:
        """Runs the script. ``resend``: the script is safe to run twice, so a
        call whose reply was lost is sent again; otherwise OutcomeUnknown."""
        if self.checked:
            check_call(self.name, keys, args)
        channel = await _channel(client, keys)
        if channel is not None:
            return await self._run_on(client, keys, args, resend, channel=channel)
        return await self._on_pool(client, keys, args)

    async def _on_pool(self, client: RedisClient, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        return await self._run_on_pool(client, lambda: client.evalsha(self.sha, len(keys), *keys, *args))

    async def _run_on_pool(self, client: RedisClient, call: Callable[[], Awaitable[R]]) -> R:
        """``call`` through redis-py, loading the script if Redis does not
        know it, with Redis's failures mapped to Conveyor's errors."""
        with redis_errors(client):
            return await loading(call, partial(client.script_load, self.source))

    async def _through_migration(self, client: RedisClient, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """The script, for a slot midway through a migration or a failover:
        through redis-py, which follows ASK (with ASKING) and MOVED; a
        TRYAGAIN (the keys split between the two primaries) or CLUSTERDOWN
        is waited out for up to SLOT_WAIT seconds."""
        deadline = asyncio.get_running_loop().time() + SLOT_WAIT
        delay = 0.02
        while True:
            try:
                return await self._on_pool(client, keys, args)
            except SlotUnavailable:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 2)

    async def _run_on(
        self,
        client: RedisClient,
        keys: Sequence[str],
        args: Sequence[Arg],
        resend: bool,
        wait: tuple[int, int] | None = None,
        *,
        channel: Channel | None = None,
    ) -> Any:
        """Runs the script on ``channel`` or the client's (a cluster's: the
        channel to the primary serving the keys' slot, picked again on each
        resend)."""
        count = 3 + len(keys) + len(args)
        body = self._head(keys) + encode_args(args)

        async def send_once(channel: Channel) -> Any:
            if wait is None:
                return await channel.send(count, body)
            return await channel.send_replicated(count, body, *wait)

        async def send(channel: Channel) -> Any:
            return await loading(
                partial(send_once, channel), partial(channel.call, "SCRIPT", "LOAD", self.source)
            )

        for attempt in range(_RESENDS + 1):
            if attempt or channel is None:
                channel = await _channel(client, keys)
            assert channel is not None
            try:
                return await send(channel)
            except Rerouted as exc:
                # the node did not run it: a moved slot is noted and the
                # script sent to its new primary; a migrating slot is left
                # to redis-py, which follows ASK
                if not isinstance(client, ClusterClient):
                    raise not_clustered(client, exc) from exc
                if exc.moved and attempt < _RESENDS:
                    await client.moved(str(exc))
                elif wait is None:
                    return await self._through_migration(client, keys, args)
                elif attempt == _RESENDS:
                    raise slot_unavailable(client, exc) from exc
                else:
                    await asyncio.sleep(0.1 * 2**attempt)
            except ReplyLost as exc:
                if isinstance(client, ClusterClient):
                    client.unreachable(keys[0])
                if not resend:
                    raise OutcomeUnknown(
                        f"connection to Redis at {describe(client)} broke before the reply: {exc}"
                    ) from exc
                if attempt == _RESENDS:
                    raise connection_failed(client, exc) from exc
            except Demoted as exc:
                # a replica now: the script did not run; the next send asks
                # where the primary is
                if attempt == _RESENDS:
                    raise connection_failed(client, exc) from exc
                await asyncio.sleep(0.1 * 2**attempt)
            except RedisError as exc:
                gone = isinstance(exc, RedisConnectionError) and not isinstance(exc, AuthenticationError)
                if gone and isinstance(client, ClusterClient):
                    client.unreachable(keys[0])  # a node gone: ask for the slot table again
                error = mapped(client, exc)
                if error is None:  # the script's own error
                    raise
                raise error from exc
        raise AssertionError("unreachable")

    def _head(self, keys: Sequence[str]) -> bytes:
        """``EVALSHA sha numkeys keys...`` encoded once per key set."""
        kt = tuple(keys)
        head = self._heads.get(kt)
        if head is None:
            if len(self._heads) > 4096:
                self._heads.clear()
            head = self._heads[kt] = encode_args(["EVALSHA", self.sha, len(kt), *kt])
        return head

    async def run_replicated(
        self,
        client: RedisClient,
        keys: Sequence[str],
        args: Sequence[Arg],
        replicas: int,
        wait_ms: int,
        *,
        resend: bool = False,
    ) -> tuple[Any, int]:
        """Runs the script with ``WAIT replicas wait_ms`` right behind it on
        the same connection. Returns the script's reply and how many
        replicas confirmed every write made on that connection. ``resend``
        as for :meth:`run`."""
        if self.checked:
            check_call(self.name, keys, args)
        channel = await _channel(client, keys)
        if channel is not None:
            return cast(
                tuple[Any, int],
                await self._run_on(client, keys, args, resend, (replicas, wait_ms), channel=channel),
            )
        if isinstance(client, RedisCluster):
            # a cluster pipeline could send WAIT on another connection than
            # the script, where it would vouch for nothing
            raise InvalidJobOptions(
                "durable adds on a Redis Cluster need the engine's channel, which TLS connections do not use"
            )

        async def pipelined() -> tuple[Any, int]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
                pipe.execute_command("WAIT", replicas, wait_ms)
                reply, acked = await pipe.execute()
            return reply, int(acked)

        return await self._run_on_pool(client, pipelined)

    def run_sync(
        self, client: redis.Redis | redis.cluster.RedisCluster, keys: Sequence[str], args: Sequence[Arg]
    ) -> Any:
        if self.checked:
            check_call(self.name, keys, args)
        with redis_errors(client):
            for _ in range(LOADS):
                try:
                    return client.evalsha(self.sha, len(keys), *keys, *args)
                except NoScriptError:
                    client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


async def loading(call: Callable[[], Awaitable[R]], load: Callable[[], Awaitable[Any]]) -> R:
    """``call``; while Redis answers NOSCRIPT, ``load`` and call again
    (LOADS times at most: a cache flushed between a load and the call)."""
    for _ in range(LOADS):
        try:
            return await call()
        except NoScriptError:
            await load()
    return await call()


async def _channel(client: RedisClient, keys: Sequence[str]) -> Channel | None:
    """The pipelined channel that serves ``keys``, if the client has one."""
    if isinstance(client, Client):
        return client.channel
    if isinstance(client, ClusterClient) and keys:
        return await client.channel_for(keys[0])
    return None


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua`` (parsed once per process)."""
    return Script(name)
