"""Redis as the design's production notes ask for it: persistence by AOF
and RDB, a password, a memory limit with ``noeviction`` (a full Redis
refuses new jobs rather than dropping queued ones), version 6.2 or newer.

``server_args`` are the arguments ``distribution up`` starts its own
``redis-server`` with; ``findings`` checks any Redis against the same rules
(``distribution check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import AuthenticationError, ResponseError

#: RDB snapshots: after an hour with 1 change, 5 minutes with 100, a minute with 10,000.
SNAPSHOTS = "3600 1 300 100 60 10000"
MIN_VERSION = (6, 2)


def server_args(maxmemory: str) -> list[str]:
    """``redis-server`` arguments beside AOF and the password."""
    return ["--save", SNAPSHOTS, "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction"]


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    rule: str
    detail: str


async def findings(redis: Any) -> list[Finding]:
    """Each rule, and what ``redis`` (one server's client) has for it."""
    server = await redis.info("server")
    persistence = await redis.info("persistence")
    version = str(server.get("redis_version", "0"))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    out = [Finding(parts >= MIN_VERSION, "Redis 6.2 or newer", version)]
    out.append(Finding(bool(int(persistence.get("aof_enabled", 0))), "AOF persistence on", "appendonly"))
    config = await _config(redis, "save", "maxmemory", "maxmemory-policy")
    if config is None:
        out.append(Finding(False, "RDB snapshots, maxmemory, noeviction", "CONFIG GET is disabled"))
    else:
        save = config.get("save", "")
        out.append(Finding(bool(save.strip()), "RDB snapshots on", f"save {save!r}"))
        limit = int(config.get("maxmemory", "0") or 0)
        out.append(Finding(limit > 0, "a memory limit", f"maxmemory {limit} bytes"))
        policy = config.get("maxmemory-policy", "")
        out.append(Finding(policy == "noeviction", "maxmemory-policy noeviction", policy))
    open_door = await _answers_without_password(redis)
    out.append(
        Finding(
            not open_door,
            "a password",
            "a client without one is refused" if not open_door else "a client without one is served",
        )
    )
    return out


async def _config(redis: Any, *names: str) -> dict[str, str] | None:
    try:
        found: dict[Any, Any] = {}
        for name in names:
            found.update(await redis.config_get(name))
    except ResponseError:  # managed Redis often disables CONFIG
        return None
    return {str(k): str(v) for k, v in found.items()}


async def _answers_without_password(redis: Any) -> bool:
    """Whether the same server serves a client that gives no credentials."""
    pool = redis.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in ("username", "password")}
    bare = pool.connection_class(**kwargs)
    try:
        await bare.connect()
        await bare.send_command("PING")
        await bare.read_response()
    except (AuthenticationError, ResponseError):  # NOAUTH (ResponseError on some versions)
        return False
    finally:
        await bare.disconnect()
    return True
