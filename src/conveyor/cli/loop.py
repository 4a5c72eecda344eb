"""The event loop of a long-running command (worker, scheduler, serve, up):
uvloop when it is installed (it comes with Conveyor on Linux and macOS),
unless ``CONVEYOR_UVLOOP`` is ``0``, ``false``, ``no`` or ``off``;
asyncio's own loop otherwise. The process's garbage collection is tuned
for a long run first (see ``conveyor.collector``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from conveyor.collector import tune_collector

T = TypeVar("T")

OFF = ("0", "false", "no", "off")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs ``main`` to completion on a new loop of the chosen kind."""
    tune_collector()
    if os.environ.get("CONVEYOR_UVLOOP", "").strip().lower() not in OFF:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def loop_name() -> str:
    """The kind of the running loop: ``uvloop`` or ``asyncio``."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
