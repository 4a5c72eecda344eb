"""Where Redis's failures become Conveyor's errors: one function,
:func:`mapped`, that every call into redis-py goes through (by way of
:func:`redis_errors` around a block, or :func:`call` around one command),
so a caller sees only the tree drawn in :mod:`conveyor.errors`.

========================================  =================================
redis-py raises                           the caller gets
========================================  =================================
``AuthenticationError``                   ConnectionFailed (credentials)
``ConnectionError``, ``TimeoutError``     ConnectionFailed (unreachable)
``OutOfMemoryError``                      RedisOutOfMemory (nothing written)
``AskError``, ``MovedError``              ConnectionFailed (a cluster node,
                                          reached with a plain client)
``ClusterError``, ``TryAgainError``,      SlotUnavailable (the command did
``SlotNotCoveredError``                   not run)
anything else                             itself
========================================  =================================
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis
import redis.cluster
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    AuthenticationError,
    ClusterError,
    OutOfMemoryError,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.engine.client.cluster import RedisClient, cluster_nodes
from conveyor.errors import ConnectionFailed, ConveyorError, RedisOutOfMemory, SlotUnavailable

T = TypeVar("T")
P = ParamSpec("P")
AnyClient = RedisClient | redis.Redis | redis.cluster.RedisCluster


class OnRedis(Protocol):
    """An object that talks to Redis through its ``redis`` client."""

    @property
    def redis(self) -> RedisClient: ...


S = TypeVar("S", bound=OnRedis)


def mapped(client: AnyClient, exc: BaseException) -> ConveyorError | None:
    """Conveyor's error for ``exc`` raised by a call through ``client``, or
    None when it is not a failure of Redis itself (a script's own error, a
    wrong type: the caller's to handle)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):  # AuthenticationError too
        return connection_failed(client, exc)
    if isinstance(exc, OutOfMemoryError):
        return out_of_memory(client, exc)
    if isinstance(exc, AskError):  # MOVED too
        return not_clustered(client, exc)
    if isinstance(exc, ClusterError | TryAgainError | SlotNotCoveredError):
        # a redirect too many ("TTL exhausted"), TRYAGAIN or CLUSTERDOWN
        return slot_unavailable(client, exc)
    return None


@contextmanager
def redis_errors(client: AnyClient) -> Iterator[None]:
    """Raises Conveyor's error (see :func:`mapped`) for a failure of Redis in the block."""
    try:
        yield
    except RedisError as exc:
        error = mapped(client, exc)
        if error is None:
            raise
        raise error from exc


async def call(client: AnyClient, awaitable: Awaitable[T]) -> T:
    """Awaits one call through ``client``, its failures mapped."""
    with redis_errors(client):
        return await awaitable


def maps_redis_errors(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Decorates an async method of an object with a ``redis`` client: a
    failure of Redis in it raises Conveyor's error (see :func:`mapped`)."""

    @functools.wraps(method)
    async def mapping(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with redis_errors(self.redis):
            return await method(self, *args, **kwargs)

    return mapping


def connection_failed(client: AnyClient, exc: BaseException) -> ConnectionFailed:
    """Redis could not be reached (or the connection broke) through ``client``."""
    if isinstance(exc, AuthenticationError):
        return ConnectionFailed(f"Redis at {describe(client)} refused the credentials: {exc}")
    return ConnectionFailed(f"cannot reach Redis at {describe(client)}: {exc}")


def out_of_memory(client: AnyClient, exc: BaseException) -> RedisOutOfMemory:
    """Redis is at its ``maxmemory`` limit: the change was refused, not made."""
    return RedisOutOfMemory(
        f"Redis at {describe(client)} is at its maxmemory limit and refused the change, "
        f"which was not made: {exc}"
    )


def not_clustered(client: AnyClient, exc: BaseException) -> ConnectionFailed:
    """A server answered ``MOVED`` or ``ASK`` to a client of one server: it
    is a node of a Redis Cluster, which needs a cluster client."""
    return ConnectionFailed(
        f"Redis at {describe(client)} is a node of a Redis Cluster ({exc}): connect with "
        "redis+cluster://host:port[,host:port...] instead"
    )


def slot_unavailable(client: AnyClient, exc: BaseException) -> SlotUnavailable:
    """A cluster slot is migrating or failing over: the command did not run."""
    return SlotUnavailable(f"the cluster slot is unavailable at {describe(client)}: {exc}")


def outage_event(exc: BaseException) -> str:
    """The log event for a Redis that refused work: full, or down."""
    return "redis_full" if isinstance(exc, RedisOutOfMemory) else "redis_down"


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
