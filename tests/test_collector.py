"""Long-running commands run with the garbage collector tuned: what exists
at start-up frozen out of collections, and collections less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from conveyor.cli.loop import run
from conveyor.collector import GC_THRESHOLDS


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_command_loop_tunes_the_collector_before_it_runs(restored_collector: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)

    async def seen() -> tuple[tuple[int, int, int], int]:
        return gc.get_threshold(), gc.get_freeze_count()

    thresholds, frozen = run(seen())
    assert thresholds == GC_THRESHOLDS
    assert frozen > 1000  # the modules and objects loaded so far
