"""An ASGI app served for real on a free loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from conveyor.server.hosting import QuietServer
from conveyor.testing.servers import free_port


@asynccontextmanager
async def serving(app: Any, *, within: float = 10.0) -> AsyncIterator[str]:
    """Runs the ASGI ``app`` under uvicorn on a free loopback port (for real
    HTTP: streams, a browser, another process); yields its base URL. On the
    way out, streams still open are ended as if their clients had left."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto", timeout_graceful_shutdown=2
    )
    server = QuietServer(config)
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
