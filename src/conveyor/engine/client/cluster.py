"""Redis Cluster.

Every key of a queue carries the queue's hash tag, so a queue lives in one
slot of one primary and every script runs there whole. The cluster client
is redis-py's, plus one pipelined channel per primary for the engine's
scripts: a script goes to the channel of the primary that serves its first
key's slot. A primary that cannot be reached makes the client read the
slot table again before the next script, so that a replica promoted in its
place is found. A primary that answers ``MOVED`` (the slot moved while the
client's slot table was old) did not run the script: the client notes the
slot's new primary and the script is sent there. A slot midway through a
migration (``ASK``, or ``TRYAGAIN`` while a queue's keys are split between
two primaries) or a failover (``CLUSTERDOWN``) is left to redis-py, which
follows ``ASK``; the rest is waited out for a few seconds before
SlotUnavailable (see ``scripts.SLOT_WAIT``).

What does not fit one slot is not done in one step: a flow's nodes on
several queues are written one queue at a time (see ``flows``), and the
list of queue names (``<prefix>:queues``) is a key of its own."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.crc import REDIS_CLUSTER_HASH_SLOTS
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.engine.client.channel import Channel
from conveyor.errors import ConnectionFailed

#: What the engine takes as its Redis: a client of one server (or of a
#: Sentinel-managed primary), or of a cluster.
RedisClient: TypeAlias = aredis.Redis | RedisCluster

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
#: How many hash slots a Redis Cluster splits its keys into.
SLOTS = REDIS_CLUSTER_HASH_SLOTS


class ClusterClient(RedisCluster):
    """redis-py's asyncio cluster client, plus a pipelined channel to each
    primary (opened on first use, closed by :meth:`aclose`). A TLS cluster
    or one with a credential provider has no channels; the engine then
    sends everything through redis-py."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channels: dict[str, Channel] = {}
        # redis-py's cluster pools fail a command past their size instead of
        # waiting for a free connection (MaxConnectionsError): at most that
        # many commands go out at once, the rest wait their turn, as with
        # the blocking pool of a single server
        self._in_flight = asyncio.Semaphore(
            self.nodes_manager.connection_kwargs.get("max_connections") or 100
        )
        #: slot moves the channels were told of (MOVED replies)
        self.moves = 0
        kw = self.nodes_manager.connection_kwargs
        self._channels_allowed = (
            kw.get("connection_class") is Connection and kw.get("credential_provider") is None
        )

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)

    async def channel_for(self, key: str) -> Channel | None:
        """The channel to the primary serving ``key``'s slot (the slot
        table is read from the cluster on first use)."""
        if not self._channels_allowed:
            return None
        try:
            await self.initialize()
        except (RedisClusterException, RedisConnectionError, RedisTimeoutError) as exc:
            raise ConnectionFailed(f"cannot read the slot table of the cluster: {exc}") from exc
        node = primary_for(self, key)
        channel = self._channels.get(node.name)
        if channel is None:
            kw = self.nodes_manager.connection_kwargs
            channel = self._channels[node.name] = Channel(
                host=node.host,
                port=int(node.port),
                username=kw.get("username"),
                password=kw.get("password"),
                timeout=kw.get("socket_timeout") or 5.0,
            )
        return channel

    async def moved(self, reply: str) -> None:
        """A primary answered ``MOVED <slot> <host:port>``: the slot is
        served elsewhere now; the next command for it goes there."""
        self.moves += 1
        await self.nodes_manager.move_slot(MovedError(reply.partition(" ")[2]))

    def unreachable(self, key: str) -> None:
        """The primary serving ``key``'s slot could not be reached (or broke
        off): the next command reads the slot table again, asking that node
        last. After a failover the table names the promoted replica; until
        then it names the same node and the command fails again."""
        node = primary_for(self, key)
        self.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
        self._initialize = True

    def node_for(self, key: str) -> ClusterNode:
        """The primary serving ``key``'s slot, as far as the client knows."""
        return primary_for(self, key)

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.aclose()
        await super().aclose()


def primary_for(client: RedisCluster, key: str) -> ClusterNode:
    """The primary serving ``key``'s slot in the client's slot table."""
    return client.nodes_manager.get_node_from_slot(client.keyslot(key))


async def dedicated_connection(client: RedisClient, key: str) -> tuple[Connection, Any]:
    """A connection of its own to the server holding ``key`` (for a
    blocking command that is stopped by closing it) and the call that hands
    it back: ``await release(conn)``."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        node = primary_for(client, key)

        async def give_back(conn: Connection) -> None:
            node.release(conn)

        return node.acquire_connection(), give_back
    pool = client.connection_pool
    conn: Connection = await pool.get_connection()
    return conn, pool.release


async def unblock(client: RedisClient, key: str, client_id: int) -> bool:
    """Ends the blocking command of connection ``client_id`` on the server
    holding ``key`` as if it had timed out (``CLIENT UNBLOCK``); false when
    that connection is not blocked there."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        reply = await client.execute_command(
            "CLIENT UNBLOCK", client_id, target_nodes=primary_for(client, key)
        )
        if isinstance(reply, dict):  # one answer per node asked
            reply = next(iter(reply.values()), 0)
    else:
        reply = await client.execute_command("CLIENT UNBLOCK", client_id)
    return bool(reply)


def connection_kwargs(client: RedisClient) -> dict[str, Any]:
    """The settings the client opens its connections with (timeouts,
    credentials)."""
    if isinstance(client, RedisCluster):
        return dict(client.nodes_manager.connection_kwargs)
    return dict(client.connection_pool.connection_kwargs)


def cluster_nodes(client: RedisCluster) -> list[tuple[str, int]]:
    """The addresses the client knows of the cluster's nodes (its startup
    nodes before it first connected)."""
    known = client.nodes_manager.nodes_cache or client.nodes_manager.startup_nodes
    return [(node.host, int(node.port)) for node in known.values()]
