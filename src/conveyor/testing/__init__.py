"""Helpers for tests, benchmarks and the demo: a private ``redis-server``
(or Redis Cluster) on free ports, started and stopped by the caller, an
ASGI app served on a free port, commands run as a user runs them, and an
app's jobs run until its queues are idle. The pytest fixtures are in
:mod:`conveyor.testing.plugin`."""

from conveyor.testing.apps import run_until_idle
from conveyor.testing.asgi import serving
from conveyor.testing.cluster import RedisClusterNodes
from conveyor.testing.processes import ProcessOutput, start_command, stop_process
from conveyor.testing.servers import (
    RedisServer,
    Service,
    announced_redis_port,
    configured_or_private_redis,
    embedded_server,
    find_redis_server,
    free_port,
    port_open,
)

__all__ = [
    "ProcessOutput",
    "RedisClusterNodes",
    "RedisServer",
    "Service",
    "announced_redis_port",
    "configured_or_private_redis",
    "embedded_server",
    "find_redis_server",
    "free_port",
    "port_open",
    "run_until_idle",
    "serving",
    "start_command",
    "stop_process",
]
