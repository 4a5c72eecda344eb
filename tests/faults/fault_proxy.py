"""A TCP proxy for fault tests, between clients and one Redis: it can add
latency, stall every connection (a blackhole: bytes are held, nothing is
closed), and cut every connection with a reset. The proxy runs on its own
thread and event loop, so a test's loop being busy never delays traffic."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from typing import Any


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_port``.

    ``latency`` (seconds) delays each chunk in each direction, keeping order.
    ``stall()`` holds every byte, in both directions and on new connections,
    until ``resume()``. ``cut()`` resets every open connection."""

    def __init__(self, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.host, self.target_port = host, target_port
        self.port = 0
        self.latency = 0.0
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    # -- control, from any thread --------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def cut(self) -> int:
        """Resets every open connection; returns how many sockets it reset."""
        return int(self._call(self._cut()))

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the proxy loop ----------------------------------------------------------

    async def _listen(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()

    async def _cut(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            # SO_LINGER 0: closing sends RST instead of FIN
            with contextlib.suppress(OSError):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        self._writers.clear()
        return len(writers)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
            self._writers.add(up_writer)
            pumps = [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            self._tasks.update(pumps)
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                    self._tasks.discard(pump)
                for w in (writer, up_writer):
                    self._writers.discard(w)
                    with contextlib.suppress(Exception):
                        w.close()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            if writer in self._writers:
                self._writers.discard(writer)
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copies one direction, each chunk held for the latency and while
        the proxy is stalled; a second task writes, so a stall or delay never
        reorders bytes."""
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                if not data:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                chunks.put_nowait((time.monotonic() + self.latency, data))
            chunks.put_nowait((0.0, b""))
            await sender
        finally:
            sender.cancel()
