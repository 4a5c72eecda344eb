"""The Lua layer: one script per state transition (``lua/*.lua``), loaded
once and called by SHA, reloaded when Redis answers NOSCRIPT (after a
restart or failover). Shared steps live in ``lua/includes`` and are pulled
in by ``--@include name`` lines.

Every script starts with a ``#!lua`` line, so that Redis at its
``maxmemory`` limit refuses a script before it starts instead of at its
first write (which would leave a transition half made). Scripts that only
delete, move deadlines or record heartbeats may run at the limit
(``allow-oom``): they free memory, keep live jobs' locks from expiring
while Redis is full, and show the workers still alive."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any, TypeVar, cast

import redis
import redis.cluster
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    AuthenticationError,
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.engine.client.channel import Arg, Channel, Client, Demoted, ReplyLost, Rerouted, encode_args
from conveyor.engine.client.cluster import ClusterClient, RedisClient, cluster_nodes
from conveyor.errors import (
    ConnectionFailed,
    InvalidJobOptions,
    OutcomeUnknown,
    RedisOutOfMemory,
    SlotUnavailable,
)

R = TypeVar("R")
_INCLUDE = re.compile(r"^--@include (\w+)\s*$", re.MULTILINE)
_RESENDS = 3
#: How long a script waits for a cluster slot that is migrating or failing
#: over (ASK, TRYAGAIN, CLUSTERDOWN) before SlotUnavailable.
SLOT_WAIT = 5.0
#: Scripts that free memory, renew leases or record heartbeats (a few bytes
#: per worker), allowed to run at maxmemory.
ALLOW_OOM = frozenset(
    {"remove_job", "clean_jobs", "obliterate", "drain", "extend_locks", "ack_events", "beat_worker"}
)


@cache
def _read(name: str) -> str:
    return (resources.files("conveyor.engine") / "lua" / f"{name}.lua").read_text()


def _expand(name: str, seen: set[str]) -> str:
    def include(match: re.Match[str]) -> str:
        inc = match.group(1)
        if inc in seen:
            return ""
        seen.add(inc)
        return _expand(f"includes/{inc}", seen)

    return _INCLUDE.sub(include, _read(name))


class Script:
    """One Lua script, callable on an async or a sync redis-py client."""

    __slots__ = ("_heads", "name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        flags = " flags=allow-oom" if name in ALLOW_OOM else ""
        self.source = f"#!lua{flags}\n" + _expand(name, set())
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self._heads: dict[tuple[str, ...], bytes] = {}

    async def run(
        self, client: RedisClient, keys: Sequence[str], args: Sequence[Arg], *, resend: bool = True
    ) -> Any:
        """Runs the script. ``resend``: the script is safe to run twice, so a
        call whose reply was lost is sent again; otherwise OutcomeUnknown."""
        channel = await _channel(client, keys)
        if channel is not None:
            return await self._run_on(client, keys, args, resend, channel=channel)
        return await self._on_pool(client, keys, args)

    async def _on_pool(self, client: RedisClient, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        return await self._run_on_pool(client, lambda: client.evalsha(self.sha, len(keys), *keys, *args))

    async def _run_on_pool(self, client: RedisClient, call: Callable[[], Awaitable[R]]) -> R:
        """``call`` through redis-py, loading the script once if Redis does
        not know it, with Redis's failures mapped to Conveyor's errors."""
        try:
            try:
                return await call()
            except NoScriptError:
                await client.script_load(self.source)
                return await call()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise connection_failed(client, exc) from exc
        except OutOfMemoryError as exc:
            raise out_of_memory(client, exc) from exc
        except AskError as exc:
            raise not_clustered(client, exc) from exc
        except (ClusterError, TryAgainError, SlotNotCoveredError) as exc:
            # a redirect too many ("TTL exhausted"), TRYAGAIN or CLUSTERDOWN:
            # the script did not run
            raise SlotUnavailable(f"the cluster slot is unavailable at {describe(client)}: {exc}") from exc

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

        async def send(channel: Channel) -> Any:
            if wait is None:
                return await channel.send(count, body)
            return await channel.send_replicated(count, body, *wait)

        for attempt in range(_RESENDS + 1):
            if attempt or channel is None:
                channel = await _channel(client, keys)
            assert channel is not None
            try:
                try:
                    return await send(channel)
                except NoScriptError:
                    await channel.call("SCRIPT", "LOAD", self.source)
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
                    raise SlotUnavailable(
                        f"the cluster slot is unavailable at {describe(client)}: {exc}"
                    ) from exc
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
            except AuthenticationError as exc:
                raise ConnectionFailed(f"Redis at {describe(client)} refused the credentials: {exc}") from exc
            except RedisConnectionError as exc:
                if isinstance(client, ClusterClient):
                    client.unreachable(keys[0])
                raise connection_failed(client, exc) from exc
            except OutOfMemoryError as exc:
                raise out_of_memory(client, exc) from exc
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
        try:
            try:
                return client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                client.script_load(self.source)
                return client.evalsha(self.sha, len(keys), *keys, *args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise connection_failed(client, exc) from exc
        except OutOfMemoryError as exc:
            raise out_of_memory(client, exc) from exc


async def _channel(client: RedisClient, keys: Sequence[str]) -> Channel | None:
    """The pipelined channel that serves ``keys``, if the client has one."""
    if isinstance(client, Client):
        return client.channel
    if isinstance(client, ClusterClient) and keys:
        return await client.channel_for(keys[0])
    return None


AnyClient = RedisClient | redis.Redis | redis.cluster.RedisCluster


def describe(client: AnyClient) -> str:
    """Where a client connects, without credentials: ``host:port``, the
    socket path, the Sentinel service and its last known primary, or the
    cluster's nodes."""
    if isinstance(client, RedisCluster):
        return "cluster " + ",".join(f"{host}:{port}" for host, port in cluster_nodes(client))
    if isinstance(client, redis.cluster.RedisCluster):
        return "cluster " + ",".join(client.nodes_manager.nodes_cache)
    pool = client.connection_pool
    kw: dict[str, Any] = pool.connection_kwargs
    service = getattr(pool, "service_name", None)
    if service is not None:
        primary = getattr(pool, "master_address", None)
        return f"sentinel service {service}" + (f" (primary {primary[0]}:{primary[1]})" if primary else "")
    if kw.get("path"):
        return f"unix:{kw['path']}"
    return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"


def connection_failed(client: AnyClient, exc: Exception) -> ConnectionFailed:
    if isinstance(exc, AuthenticationError):
        return ConnectionFailed(f"Redis at {describe(client)} refused the credentials: {exc}")
    return ConnectionFailed(f"cannot reach Redis at {describe(client)}: {exc}")


def not_clustered(client: AnyClient, exc: Exception) -> ConnectionFailed:
    """A server answered ``MOVED`` or ``ASK`` to a client of one server: it
    is a node of a Redis Cluster, which needs a cluster client."""
    return ConnectionFailed(
        f"Redis at {describe(client)} is a node of a Redis Cluster ({exc}): connect with "
        "redis+cluster://host:port[,host:port...] instead"
    )


def outage_event(exc: Exception) -> str:
    """The log event for a Redis that refused work: full, or down."""
    return "redis_full" if isinstance(exc, RedisOutOfMemory) else "redis_down"


def out_of_memory(client: AnyClient, exc: Exception) -> RedisOutOfMemory:
    return RedisOutOfMemory(
        f"Redis at {describe(client)} is at its maxmemory limit and refused the change, "
        f"which was not made: {exc}"
    )


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua`` (parsed once per process)."""
    return Script(name)
