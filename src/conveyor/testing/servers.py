"""A private ``redis-server`` for tests: what :mod:`conveyor.localredis`
runs for ``conveyor up``, and the port it announces."""

from __future__ import annotations

import re

from conveyor.localredis import RedisServer as RedisServer
from conveyor.localredis import Service as Service
from conveyor.localredis import configured_or_private_redis as configured_or_private_redis
from conveyor.localredis import embedded_server as embedded_server
from conveyor.localredis import find_redis_server as find_redis_server
from conveyor.localredis import free_port as free_port
from conveyor.localredis import port_open as port_open


def announced_redis_port(output: str) -> int:
    """The port of the private redis-server that ``configured_or_private_redis``
    announced in a command's ``output``."""
    found = re.search(r"started a private redis-server \(AOF on\) at redis://[\w.]+:(\d+)", output)
    if found is None:
        raise AssertionError(f"no private redis-server announced in:\n{output}")
    return int(found.group(1))
