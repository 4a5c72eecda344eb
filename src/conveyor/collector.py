"""Garbage collection for a long-running process (a worker, a scheduler,
a server): what exists once it has started (modules, the app, its
handlers) is frozen out of every collection, and collections run less
often. Python's default thresholds collect the young generation every 700
new objects; a worker makes several per job, and a full collection walks
every object the imports left behind, pausing the event loop (and every
job waiting on it) for milliseconds at a time. With a thousand event
streams open, a server's default collections paused it for up to 200 ms
at a time (see docs/live.md)."""

from __future__ import annotations

import gc

#: Garbage collection thresholds of a long-running process.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_collector() -> None:
    """Freezes what exists now and raises the collection thresholds."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
