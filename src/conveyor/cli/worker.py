"""``conveyor worker APP``: runs workers for the handlers an app module
exports. APP is ``module:attribute``; the attribute is a mapping of queue
names to handlers, or one handler for the queues named with ``--queues``."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.engine.connection import connect
from conveyor.engine.queue import Queue
from conveyor.engine.worker import Worker
from conveyor.errors import ConveyorError


def load_handlers(target: str, queues: list[str]) -> dict[str, Callable[..., Any]]:
    """The handler of each queue, from ``module:attribute``; raises
    ConveyorError with what is wrong."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConveyorError(f"APP must look like module:attribute, not {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConveyorError(f"cannot load {target!r}: {exc}") from None
    if isinstance(found, Mapping):
        handlers = {str(name): handler for name, handler in found.items()}
        if queues:
            unknown = sorted(set(queues) - set(handlers))
            if unknown:
                raise ConveyorError(f"{target} has no handler for queue(s) {', '.join(unknown)}")
            handlers = {name: handlers[name] for name in queues}
    elif callable(found):
        if not queues:
            raise ConveyorError(f"{target} is one handler: name its queues with --queues")
        handlers = dict.fromkeys(queues, found)
    else:
        raise ConveyorError(f"{target} is neither a handler nor a mapping of queue names to handlers")
    for name, handler in handlers.items():
        if not callable(handler):
            raise ConveyorError(f"the handler of queue {name!r} is not callable")
    return handlers


async def run_workers(handlers: dict[str, Callable[..., Any]], concurrency: int) -> None:
    """Works the queues until SIGTERM or SIGINT (a second one hands running
    jobs back at once)."""
    redis = connect()
    try:
        workers = [
            Worker(Queue(name, redis), handler, concurrency=concurrency) for name, handler in handlers.items()
        ]
        closing: set[asyncio.Task[None]] = set()
        stopping = False

        def on_signal() -> None:
            nonlocal stopping
            if stopping:  # the second signal: give running jobs back now
                for w in workers:
                    w.hand_back_all()
                return
            stopping = True
            for w in workers:
                closing.add(loop.create_task(w.close()))

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        print(f"working {', '.join(handlers)} ({concurrency} at a time each)", flush=True)
        await asyncio.gather(*(worker.run() for worker in workers))
    finally:
        await redis.aclose()
