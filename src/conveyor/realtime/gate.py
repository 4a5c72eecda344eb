"""A gate for handlers: any number run together, except suspects, which
run alone. A suspect waits until the running handlers finished and holds
back new ones until it is done, so that if it kills the process, no other
entry is blamed for it. Suspects go first when both wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class SuspectGate:
    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._running = 0
        self._waiting = 0
        self._alone = False

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        if self._waiting or self._alone:
            async with self._cond:
                await self._cond.wait_for(lambda: not self._waiting and not self._alone)
                self._running += 1
        else:
            self._running += 1  # the common case: no lock taken
        try:
            yield
        finally:
            self._running -= 1
            if self._running == 0 and self._waiting:
                async with self._cond:
                    self._cond.notify_all()

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        self._waiting += 1
        try:
            async with self._cond:
                await self._cond.wait_for(lambda: self._running == 0 and not self._alone)
                self._alone = True
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            async with self._cond:
                self._alone = False
                self._cond.notify_all()
