"""Serving an ASGI app on a real port for tests that need a real HTTP
client or a browser (streams, the dashboard)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from conveyor.testing import free_port
from faults.processes import wait_until


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Runs ``app`` under uvicorn on a free port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def up() -> bool:
        return bool(server.started)

    await wait_until(up, within=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
