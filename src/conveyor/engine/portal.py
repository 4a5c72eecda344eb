"""A portal from blocking code into the async engine: an event loop on a
daemon thread of its own, which sync callers (a Django or Flask view, a
script, a thread of a WSGI server) hand coroutines to and wait on.

Any number of threads may call at once; each call is one task on the
portal's loop. A process forked after the portal started (a pre-forking
server) gets a new loop on its first call, and the state kept for the old
one (:attr:`Portal.state`: clients, queues) is dropped, as their
connections belong to the parent.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

_PORTALS: weakref.WeakSet[Portal] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: a lock another thread of the parent held stays
    held for ever; every portal gets a new one."""
    for portal in list(_PORTALS):
        portal._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


class Portal:
    """Runs coroutines for blocking callers on a loop of its own."""

    def __init__(self, name: str = "conveyor-portal") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: What callers keep for this loop (and this process): dropped with it.
        self.state: dict[str, Any] = {}
        _PORTALS.add(self)

    def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Runs ``work()`` on the portal's loop and returns its result (or
        raises its exception) to this thread. Refused on a thread that runs
        an event loop: there, await the async API instead of blocking it."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "this is the blocking API, called from a running event loop: await the async one "
                "(Queue.add, task.enqueue...) instead of blocking the loop"
            )
        loop = self._started()

        async def run() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self.state = {}  # a fork's inherited clients are the parent's: start afresh
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def close(self, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        """Runs ``cleanup`` on the loop (closing clients, say), then stops
        the loop and its thread. A later call starts them again."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._pid != os.getpid():
                self._loop = self._thread = None
                self.state = {}
                return
            self._loop = self._thread = None
        try:
            if cleanup is not None:
                asyncio.run_coroutine_threadsafe(_awaited(cleanup), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self.state = {}


async def _awaited(work: Callable[[], Awaitable[None]]) -> None:
    await work()
