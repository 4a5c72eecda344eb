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
import redis.asyncio as aredis
from redis.exceptions import AuthenticationError, NoScriptError, OutOfMemoryError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.engine.channel import Arg, Channel, Client, Demoted, ReplyLost, encode_args
from conveyor.errors import ConnectionFailed, OutcomeUnknown, RedisOutOfMemory

R = TypeVar("R")
_INCLUDE = re.compile(r"^--@include (\w+)\s*$", re.MULTILINE)
_RESENDS = 3
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
        self, client: aredis.Redis, keys: Sequence[str], args: Sequence[Arg], *, resend: bool = True
    ) -> Any:
        """Runs the script. ``resend``: the script is safe to run twice, so a
        call whose reply was lost is sent again; otherwise OutcomeUnknown."""
        if isinstance(client, Client) and (channel := client.channel) is not None:
            return await self._run_on(channel, client, keys, args, resend)
        return await self._run_on_pool(client, lambda: client.evalsha(self.sha, len(keys), *keys, *args))

    async def _run_on_pool(self, client: aredis.Redis, call: Callable[[], Awaitable[R]]) -> R:
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

    async def _run_on(
        self,
        channel: Channel,
        client: Client,
        keys: Sequence[str],
        args: Sequence[Arg],
        resend: bool,
        wait: tuple[int, int] | None = None,
    ) -> Any:
        count = 3 + len(keys) + len(args)
        body = self._head(keys) + encode_args(args)

        async def send() -> Any:
            if wait is None:
                return await channel.send(count, body)
            return await channel.send_replicated(count, body, *wait)

        for attempt in range(_RESENDS + 1):
            try:
                try:
                    return await send()
                except NoScriptError:
                    await channel.call("SCRIPT", "LOAD", self.source)
                    return await send()
            except ReplyLost as exc:
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
        client: aredis.Redis,
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
        if isinstance(client, Client) and (channel := client.channel) is not None:
            return cast(
                tuple[Any, int],
                await self._run_on(channel, client, keys, args, resend, (replicas, wait_ms)),
            )

        async def pipelined() -> tuple[Any, int]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
                pipe.execute_command("WAIT", replicas, wait_ms)
                reply, acked = await pipe.execute()
            return reply, int(acked)

        return await self._run_on_pool(client, pipelined)

    def run_sync(self, client: redis.Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
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


def describe(client: aredis.Redis | redis.Redis) -> str:
    """Where a client connects, without credentials: ``host:port``, the
    socket path, or the Sentinel service and its last known primary."""
    pool = client.connection_pool
    kw: dict[str, Any] = pool.connection_kwargs
    service = getattr(pool, "service_name", None)
    if service is not None:
        primary = getattr(pool, "master_address", None)
        return f"sentinel service {service}" + (f" (primary {primary[0]}:{primary[1]})" if primary else "")
    if kw.get("path"):
        return f"unix:{kw['path']}"
    return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"


def connection_failed(client: aredis.Redis | redis.Redis, exc: Exception) -> ConnectionFailed:
    if isinstance(exc, AuthenticationError):
        return ConnectionFailed(f"Redis at {describe(client)} refused the credentials: {exc}")
    return ConnectionFailed(f"cannot reach Redis at {describe(client)}: {exc}")


def outage_event(exc: Exception) -> str:
    """The log event for a Redis that refused work: full, or down."""
    return "redis_full" if isinstance(exc, RedisOutOfMemory) else "redis_down"


def out_of_memory(client: aredis.Redis | redis.Redis, exc: Exception) -> RedisOutOfMemory:
    return RedisOutOfMemory(
        f"Redis at {describe(client)} is at its maxmemory limit and refused the change, "
        f"which was not made: {exc}"
    )


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua`` (parsed once per process)."""
    return Script(name)
