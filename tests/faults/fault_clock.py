"""Skews a test process's wall clock, as on a host whose clock is wrong:
with ``FAULT_CLOCK_SKEW`` set (seconds, may be negative), ``time.time``,
``datetime.now`` and the rest of the wall-clock calls run that far ahead
or behind from here on (time-machine, ticking)."""

from __future__ import annotations

import os
import time

import time_machine


def apply() -> float:
    skew = float(os.environ.get("FAULT_CLOCK_SKEW") or 0)
    if skew:
        time_machine.travel(time.time() + skew, tick=True).start()
    return skew
