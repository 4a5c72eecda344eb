"""A Sentinel-managed Redis for tests: a primary, a replica and three
sentinels (quorum 2) on free ports, with short failure detection."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from conveyor.testing import RedisServer, Service, find_redis_server, free_port

SERVICE = "conveyor"


class SentinelGroup(Service):
    def __init__(self, *, sentinels: int = 3, down_after_ms: int = 500) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-sentinel-"))
        self.down_after_ms = down_after_ms
        self.ports = [free_port() for _ in range(sentinels)]
        self.primary = RedisServer(extra_args=["--repl-diskless-sync-delay", "0"])
        self.replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)])
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self, within: float = 30.0) -> SentinelGroup:
        try:
            return self._start(time.monotonic() + within)
        except BaseException:
            self.cleanup()
            raise

    def _start(self, deadline: float) -> SentinelGroup:
        self.primary.start()
        self.replica.start()
        with redis.Redis(port=self.replica.port) as replica:
            self._until(deadline, lambda: replica.info("replication")["master_link_status"] == "up")
        for port in self.ports:
            self.processes.append(self._sentinel(port))
        for port in self.ports:
            with redis.Redis(port=port) as sentinel:
                self._until(deadline, lambda s=sentinel: self._settled(s))
        return self

    def _sentinel(self, port: int) -> subprocess.Popen[bytes]:
        home = self.dir / str(port)
        home.mkdir()
        conf = home / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {home}\nlogfile {home / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 4000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        cmd = [find_redis_server(), str(conf), "--sentinel"]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _settled(self, sentinel: redis.Redis) -> bool:
        """The sentinel knows the other sentinels and the replica (without
        them it could not agree on a failover)."""
        try:
            state: Any = sentinel.sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        return bool(state["num-other-sentinels"] == len(self.ports) - 1 and state["num-slaves"] >= 1)

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers names it."""
        for port in self.ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as sentinel:
                    address = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                    return int(address[1]) if address else None
            except redis.RedisError:
                continue
        return None

    def failover(self) -> None:
        """A manual failover (the primary alive, demoted to a replica)."""
        with redis.Redis(port=self.ports[0]) as sentinel:
            sentinel.sentinel_failover(SERVICE)

    @staticmethod
    def _until(deadline: float, ready: object) -> None:
        assert callable(ready)
        while True:
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the Sentinel group did not come up in time")
            time.sleep(0.05)

    def cleanup(self) -> None:
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.replica.cleanup()
        self.primary.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
