"""``conveyor worker APP``: runs workers for what an app module exports.
APP is ``module:attribute``; the attribute is a :class:`Conveyor` app, a
mapping of queue names to handlers, or one handler for the queues named
with ``--queues``."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from conveyor.engine.connection import connect
from conveyor.engine.queue import Queue
from conveyor.engine.worker import Worker
from conveyor.errors import ConveyorError
from conveyor.tasks.app import Conveyor


def load_target(target: str) -> Any:
    """The object ``module:attribute`` names (the module found from the
    current directory too); raises ConveyorError with what is wrong."""
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
    return found


def load_handlers(target: str, found: Any, queues: list[str]) -> dict[str, Callable[..., Any]]:
    """The handler of each queue, from a mapping or one handler; raises
    ConveyorError with what is wrong."""
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
        raise ConveyorError(
            f"{target} is neither a Conveyor app, a handler nor a mapping of queues to handlers"
        )
    for name, handler in handlers.items():
        if not callable(handler):
            raise ConveyorError(f"the handler of queue {name!r} is not callable")
    return handlers


def stop_on_signals(
    close: Callable[[], Coroutine[Any, Any, Any]], hand_back: Callable[[], None] | None = None
) -> None:
    """SIGTERM or SIGINT runs ``close``; a second one runs ``hand_back``
    (running jobs go back to waiting at once)."""
    loop = asyncio.get_running_loop()
    closing: set[asyncio.Task[Any]] = set()  # holds the task; non-empty once stopping

    def on_signal() -> None:
        if not closing:
            closing.add(loop.create_task(close()))
        elif hand_back is not None:
            hand_back()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)


async def run_app(app: Conveyor, queues: list[str], concurrency: int | None, scheduler: bool) -> None:
    """Works an app's queues (and fires its schedules, with ``scheduler``)
    until SIGTERM or SIGINT (a second one hands running jobs back at once)."""
    stop_on_signals(app.close, app.hand_back_all)
    names = queues or list(app.queues)
    extra = " and their schedules" if scheduler else ""
    print(f"working {', '.join(names)}{extra}", flush=True)
    try:
        await app.run_worker(names, concurrency=concurrency, scheduler=scheduler)
    finally:
        await app.aclose()


async def run_workers(handlers: dict[str, Callable[..., Any]], concurrency: int) -> None:
    """Works the queues until SIGTERM or SIGINT (a second one hands running
    jobs back at once)."""
    redis = connect()
    try:
        workers = [
            Worker(Queue(name, redis), handler, concurrency=concurrency) for name, handler in handlers.items()
        ]

        async def close() -> None:
            await asyncio.gather(*(w.close() for w in workers))

        def hand_back() -> None:
            for w in workers:
                w.hand_back_all()

        stop_on_signals(close, hand_back)
        print(f"working {', '.join(handlers)} ({concurrency} at a time each)", flush=True)
        await asyncio.gather(*(worker.run() for worker in workers))
    finally:
        await redis.aclose()
