"""Counting a pub/sub channel's subscribers, on one server or a cluster."""

from __future__ import annotations

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster


async def subscribers(redis: aredis.Redis | RedisCluster, channel: str) -> int:
    """Subscribers of ``channel`` (on a cluster, each node counts its own)."""
    if isinstance(redis, RedisCluster):
        # asked node by node: redis-py's cluster merge of NUMSUB replies
        # expects pairs where the nodes answer flat lists
        total = 0
        for node in redis.get_nodes():
            async with aredis.Redis(host=node.host, port=int(node.port)) as one:
                total += int((await one.pubsub_numsub(channel))[0][1])
        return total
    return int((await redis.pubsub_numsub(channel))[0][1])
