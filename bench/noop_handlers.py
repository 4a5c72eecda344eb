"""The handlers ``bench/worker_processes.py`` runs on one queue: no-op jobs, or
with ``BENCH_SPIN_US`` set, jobs that hold the CPU for that many
microseconds (work only more processes can spread over more cores)."""

from __future__ import annotations

import os
import time

from conveyor import JobContext

SPIN = int(os.environ.get("BENCH_SPIN_US", "0")) / 1e6


async def noop(job: JobContext) -> None:
    if SPIN:
        until = time.perf_counter() + SPIN
        while time.perf_counter() < until:
            pass


HANDLERS = {"bench-processes": noop}
