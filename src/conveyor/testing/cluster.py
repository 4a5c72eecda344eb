"""A private Redis Cluster of ``redis-server`` nodes on free ports."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Self

from conveyor.engine.client.cluster import SLOTS
from conveyor.errors import ConnectionFailed
from conveyor.testing.servers import RedisServer, Service, free_port


class RedisClusterNodes(Service):
    """A private Redis Cluster: ``primaries`` redis-servers in cluster mode
    on free ports, the 16384 slots split evenly between them, and
    ``replicas`` replicas of each primary (none by default). ``url`` is its
    ``redis+cluster://`` address; ``servers`` holds the primaries first, then
    the replicas (``replicas_of`` maps a primary's port to them)."""

    def __init__(self, primaries: int = 3, *, replicas: int = 0, node_timeout_ms: int = 2000) -> None:
        self.primaries = primaries
        self.servers: list[RedisServer] = []
        #: each node's cluster bus port (else its port + 10000, which may be taken)
        self.bus_ports = [free_port() for _ in range(primaries * (1 + replicas))]
        for bus_port in self.bus_ports:
            server = RedisServer()
            server.extra_args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(server.data_dir / "nodes.conf"),
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--cluster-port",
                str(bus_port),
                "--repl-diskless-sync-delay",
                "0",
            ]
            self.servers.append(server)
        self.replicas_of = {
            primary.port: self.servers[primaries + i :: primaries]
            for i, primary in enumerate(self.servers[:primaries])
        }

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self, within: float = 30.0) -> Self:
        import redis

        try:
            for server in self.servers:
                server.start()
            share = -(-SLOTS // self.primaries)
            first = self.servers[0]
            for i, server in enumerate(self.servers):
                with redis.Redis(port=server.port) as node:
                    if i < self.primaries:
                        node.execute_command(
                            "CLUSTER", "ADDSLOTSRANGE", i * share, min(SLOTS, (i + 1) * share) - 1
                        )
                    if server is not first:
                        node.execute_command("CLUSTER", "MEET", "127.0.0.1", first.port, self.bus_ports[0])
            deadline = time.monotonic() + within
            self._until(deadline, lambda: all(self._agrees(server.port) for server in self.servers))
            for primary, replicas in self.replicas_of.items():
                with redis.Redis(port=primary) as node:
                    primary_id = node.execute_command("CLUSTER", "MYID")
                for replica in replicas:
                    with redis.Redis(port=replica.port) as node:
                        node.execute_command("CLUSTER", "REPLICATE", primary_id)
            self._until(
                deadline, lambda: all(self._replicating(r.port) for r in self.servers[self.primaries :])
            )
        except BaseException:
            self.cleanup()
            raise
        return self

    def _until(self, deadline: float, ready: Callable[[], bool]) -> None:
        while not ready():
            if time.monotonic() > deadline:
                raise ConnectionFailed(f"the cluster on {self.url} did not form in time")
            time.sleep(0.05)

    def _agrees(self, port: int) -> bool:
        """The node sees the whole cluster: every slot served, every node known."""
        import redis

        with redis.Redis(port=port) as node:
            info = node.execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
            return (
                fields.get("cluster_state") == "ok"
                and fields.get("cluster_known_nodes") == str(len(self.servers))
                and fields.get("cluster_slots_ok") == str(SLOTS)
            )

    def _replicating(self, port: int) -> bool:
        import redis

        with redis.Redis(port=port) as node:
            return bool(node.info("replication").get("master_link_status") == "up")

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()
