"""The Lua layer: one script per state transition (``lua/*.lua``), loaded
once and called by SHA, reloaded when Redis answers NOSCRIPT (after a
restart or failover). Shared steps live in ``lua/includes`` and are pulled
in by ``--@include name`` lines."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.errors import ConnectionFailed

_INCLUDE = re.compile(r"^--@include (\w+)\s*$", re.MULTILINE)
Arg = str | bytes | int | float


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

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = _expand(name, set())
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def run(self, client: aredis.Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            try:
                return await client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                await client.script_load(self.source)
                return await client.evalsha(self.sha, len(keys), *keys, *args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise connection_failed(client, exc) from exc

    def run_sync(self, client: redis.Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            try:
                return client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                client.script_load(self.source)
                return client.evalsha(self.sha, len(keys), *keys, *args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise connection_failed(client, exc) from exc


def describe(client: aredis.Redis | redis.Redis) -> str:
    """Where a client connects, without credentials: ``host:port`` or the socket path."""
    kw: dict[str, Any] = client.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix:{kw['path']}"
    return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"


def connection_failed(client: aredis.Redis | redis.Redis, exc: Exception) -> ConnectionFailed:
    return ConnectionFailed(f"cannot reach Redis at {describe(client)}: {exc}")


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua`` (parsed once per process)."""
    return Script(name)
