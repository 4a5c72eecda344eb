"""Serving ASGI apps inside a process that runs other things too (workers,
a scheduler, more apps): uvicorn without its own signal handling, so the
process's handlers stop everything in order, and with streams that end
when the server stops instead of holding it open."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.collector import tune_collector

#: Seconds a stopping server waits for requests still running before it
#: cancels them.
STOP_GRACE = 5.0
DISCONNECT: Message = {"type": "http.disconnect"}


class DisconnectOnStop:
    """ASGI middleware: once :meth:`stop` is called, every request still
    waiting for a message from its client is told the client has gone.
    A stream (Server-Sent Events) then ends and runs its clean-up as when
    its client leaves, so a stopping server is not held open by the
    browsers still watching it.

    A request waits on its client in its own task; that task is noted
    while it waits, and :meth:`stop` interrupts it there. Nothing else is
    created per message: this sits on every request's path."""

    def __init__(self, app: Any, stopping: asyncio.Event) -> None:
        self.app: ASGIApp = app
        self.stopping = stopping
        #: The requests' tasks waiting for a message from their client.
        self._waiting: set[asyncio.Task[Any]] = set()
        #: Those interrupted by :meth:`stop`, until they have seen it.
        self._interrupted: set[asyncio.Task[Any]] = set()

    def stop(self) -> None:
        """Sets ``stopping`` and tells each request waiting on its client that it left."""
        self.stopping.set()
        for task in self._waiting - self._interrupted:
            self._interrupted.add(task)
            task.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stopping, waiting, interrupted = self.stopping, self._waiting, self._interrupted

        async def receive_until_stop() -> Message:
            task = asyncio.current_task()
            if stopping.is_set() or task is None:
                return DISCONNECT
            waiting.add(task)
            try:
                return await receive()
            except asyncio.CancelledError:
                # interrupted by stop() alone (not cancelled besides): the client "left"
                if task in interrupted and task.uncancel() == 0:
                    return DISCONNECT
                raise
            finally:
                waiting.discard(task)
                interrupted.discard(task)

        response = {"started": False, "ended": False}

        async def send_noting_end(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                response["ended"] = True
            await send(message)

        await self.app(scope, receive_until_stop, send_noting_end)
        if stopping.is_set() and response["started"] and not response["ended"]:
            # the stream ended for the stop, not for its client: close it in order
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


class Server(uvicorn.Server):
    """A uvicorn server that never waits on a client to stop: when it
    stops, requests waiting on their clients (event streams) are told the
    client left, and whatever still runs after the config's
    ``timeout_graceful_shutdown`` (default :data:`STOP_GRACE`) is
    cancelled."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.stopping = asyncio.Event()
        self.streams: DisconnectOnStop | None = None
        if not isinstance(config.app, str):
            config.app = self.streams = DisconnectOnStop(config.app, self.stopping)
        if config.timeout_graceful_shutdown is None:
            config.timeout_graceful_shutdown = int(STOP_GRACE)
        super().__init__(config)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.streams is not None:
            self.streams.stop()
        self.stopping.set()
        await super().shutdown(sockets)

    async def wait_started(self, within: float = 10.0) -> bool:
        """Waits until the server accepts connections (False if it did not
        within ``within`` seconds, or stopped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.started:
            if self.should_exit or loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True


class QuietServer(Server):
    """A :class:`Server` that leaves SIGINT and SIGTERM to its host
    process; stop it with ``server.should_exit = True``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def quiet_server(
    app: Any,
    host: str,
    port: int,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    log_level: str = "warning",
) -> QuietServer:
    """A :class:`QuietServer` for ``app`` on ``host:port`` (the process's
    garbage collection tuned for serving); uvicorn's lines go to the
    process's own logging handlers."""
    tune_collector()
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan=lifespan, log_config=None
    )
    return QuietServer(config)
