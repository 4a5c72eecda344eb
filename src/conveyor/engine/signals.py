"""SIGTERM and SIGINT for a process that works queues: the first signal
closes gracefully (running jobs may finish within the shutdown grace), a
second one hands running jobs back to waiting at once. And waiting on
something unless a stop comes first (:func:`unless_stopped`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from conveyor.engine.worker import Worker

R = TypeVar("R")


class Stopped(Exception):
    """Raised by :func:`unless_stopped` when the stop came first."""


async def unless_stopped(awaitable: Awaitable[R], stop: asyncio.Event) -> R:
    """What ``awaitable`` gives, unless ``stop`` is set first: then it is
    cancelled (and awaited) and Stopped is raised. A caller cancelled while
    it waits takes the awaitable with it."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Stopped
    return task.result()


def stop_on_signals(
    close: Callable[[], Coroutine[Any, Any, Any]], hand_back: Callable[[], None] | None = None
) -> None:
    """SIGTERM or SIGINT runs ``close``; a second one runs ``hand_back``."""
    loop = asyncio.get_running_loop()
    closing: set[asyncio.Task[Any]] = set()  # holds the task; non-empty once stopping

    def on_signal() -> None:
        if not closing:
            closing.add(loop.create_task(close()))
        elif hand_back is not None:
            hand_back()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)


def install_signal_handlers(worker: Worker) -> None:
    """The signals close ``worker``, then hand its jobs back."""
    stop_on_signals(worker.close, worker.hand_back_all)
