"""Serving ASGI apps inside a process that runs other things too (workers,
a scheduler, more apps): uvicorn without its own signal handling, so the
process's handlers stop everything in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any, Literal

import uvicorn


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to its host process;
    stop it with ``server.should_exit = True``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

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


def quiet_server(
    app: Any,
    host: str,
    port: int,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    log_level: str = "warning",
) -> QuietServer:
    """A :class:`QuietServer` for ``app`` on ``host:port``."""
    return QuietServer(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan=lifespan))
