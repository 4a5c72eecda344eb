"""``conveyor check``: is this Redis fit to hold jobs? Reachability,
version, persistence, eviction policy and latency, as a list of findings."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import RedisCluster
from rich.console import Console

from conveyor.engine.client.cluster import SLOTS
from conveyor.engine.client.connection import connect, ping
from conveyor.engine.preflight import missing_commands
from conveyor.errors import ConnectionFailed
from conveyor.settings import RedisSettings

console = Console()
MIN_VERSION = (6, 2)


async def findings(redis: Any) -> list[tuple[str, str]]:
    """(level, text) pairs: level is ok, warn or fail. On a cluster: the
    cluster's state, then each primary's findings, named by its address."""
    if isinstance(redis, RedisCluster):
        return await _cluster_findings(redis)
    latency = await ping(redis)
    return [
        ("ok" if latency < 0.05 else "warn", f"Redis answers in {latency * 1000:.2f} ms"),
        *await _server_findings(redis, {}),
    ]


async def _server_findings(redis: Any, target: dict[str, Any]) -> list[tuple[str, str]]:
    """Version, persistence and eviction policy of one server (``target``:
    the node of a cluster client, as ``target_nodes``)."""
    out: list[tuple[str, str]] = []
    server = await redis.info("server", **target)
    version = str(server.get("redis_version", "0"))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    out.append(("ok" if parts >= MIN_VERSION else "fail", f"version {version} (6.2 or newer needed)"))
    if "valkey_version" not in server and _exposed(version):
        out.append(
            (
                "warn",
                f"Redis {version} predates the fix for CVE-2025-49844 (a use-after-free reachable from "
                "Lua, which any engine on scripts exposes): upgrade to 7.2.11, 7.4.6, 8.0.4, 8.2.2 or later",
            )
        )
    persistence = await redis.info("persistence", **target)
    if int(persistence.get("aof_enabled", 0)):
        out.append(("ok", "AOF is on: acknowledged adds survive a restart"))
    else:
        out.append(("warn", "AOF is off: a restart can lose the jobs of the last snapshot interval"))
    try:
        policy = (await redis.config_get("maxmemory-policy", **target)).get("maxmemory-policy", "")
    except Exception:  # CONFIG may be disabled on managed Redis
        out.append(("warn", "cannot read maxmemory-policy (CONFIG is disabled)"))
    else:
        if policy == "noeviction":
            out.append(("ok", "maxmemory-policy is noeviction"))
        else:
            out.append(
                (
                    "fail",
                    f"maxmemory-policy is {policy}: Redis evicts job keys under memory pressure "
                    "(workers refuse to start; set it to noeviction)",
                )
            )
    if not target:  # a cluster's are asked once, for the whole cluster
        out.append(await _commands_finding(redis))
    return out


async def _commands_finding(redis: Any) -> tuple[str, str]:
    missing = await missing_commands(redis)
    if missing:
        names = ", ".join(m.upper() for m in missing)
        return ("fail", f"Redis does not serve {names} (renamed or disabled); Conveyor needs them")
    return ("ok", "every command Conveyor sends is served")


#: The first release of each line with the fix for CVE-2025-49844; lines
#: before 7.2 got no fix.
_CVE_FIXED = {(7, 2): (7, 2, 11), (7, 4): (7, 4, 6), (8, 0): (8, 0, 4), (8, 2): (8, 2, 2)}


def _exposed(version: str) -> bool:
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return False
    if len(parts) < 3:
        return False
    fixed = _CVE_FIXED.get((parts[0], parts[1]))
    if fixed is not None:
        return parts < fixed
    return parts[:2] < (7, 2)


async def _cluster_findings(redis: RedisCluster) -> list[tuple[str, str]]:
    await ping(redis)  # the first command reads the slot table
    latency = await ping(redis)
    out = [("ok" if latency < 0.05 else "warn", f"the cluster answers in {latency * 1000:.2f} ms")]
    info = await redis.cluster_info()
    state, covered = info.get("cluster_state"), int(info.get("cluster_slots_ok", 0))
    if state == "ok" and covered == SLOTS:
        out.append(("ok", f"cluster state ok, all {SLOTS} slots served"))
    else:
        out.append(("fail", f"cluster state {state}, {covered} of {SLOTS} slots served"))
    for node in sorted(redis.get_primaries(), key=lambda n: n.name):
        found = await _server_findings(redis, {"target_nodes": node})
        out += [(level, f"primary {node.name}: {text}") for level, text in found]
    out.append(await _commands_finding(redis))
    return out


def run_check() -> int:
    """Prints the findings; returns the exit status (1 on any failure)."""
    url = RedisSettings().resolved_url()
    redacted = url.split("@")[-1]

    async def go() -> list[tuple[str, str]]:
        redis = connect(url)
        try:
            return await findings(redis)
        finally:
            await redis.aclose()

    try:
        found = asyncio.run(go())
    except ConnectionFailed as exc:
        console.print(f"[red]fail[/red]  {exc}")
        return 1
    marks = {"ok": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]"}
    console.print(f"Redis at {redacted}")
    for level, text in found:
        console.print(f"{marks[level]}  {text}")
    return 1 if any(level == "fail" for level, _ in found) else 0
