"""Helpers for tests, benchmarks and the demo: a private ``redis-server``
(or Redis Cluster) on free ports, started and stopped by the caller, an
ASGI app served on a free port, commands run as a user runs them, and an
app's jobs run until its queues are idle. The pytest fixtures are in
:mod:`conveyor.testing.plugin`."""

from typing import TYPE_CHECKING, Any

from conveyor.testing.apps import run_until_idle
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

if TYPE_CHECKING:
    from conveyor.testing.asgi import serving as serving

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


def __getattr__(name: str) -> Any:
    # serving() needs the server extra; the rest of the helpers (and the
    # pytest plugin) work in a worker-only install
    if name == "serving":
        from conveyor.extras import SERVER

        SERVER.require("conveyor.testing.serving")
        from conveyor.testing.asgi import serving

        return serving
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
