"""The suspect gate: handlers run together, suspects run alone."""

from __future__ import annotations

import asyncio

from conveyor.realtime.gate import SuspectGate


async def test_a_suspect_runs_alone_and_before_handlers_that_came_after_it() -> None:
    # Given a gate with two handlers running
    gate = SuspectGate()
    log: list[str] = []
    release = asyncio.Event()

    async def handler(name: str, suspect: bool = False, wait: bool = False) -> None:
        async with gate.alone() if suspect else gate.shared():
            log.append(f"start {name}")
            if wait:
                await release.wait()
            await asyncio.sleep(0)
            log.append(f"end {name}")

    first = [asyncio.create_task(handler(n, wait=True)) for n in ("a", "b")]
    await asyncio.sleep(0.01)

    # When a suspect arrives, then another handler
    suspect = asyncio.create_task(handler("suspect", suspect=True))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(handler("late"))
    await asyncio.sleep(0.01)
    assert log == ["start a", "start b"]  # both wait
    release.set()
    await asyncio.gather(*first, suspect, late)

    # Then the suspect ran with nothing else running, and the late handler after it
    at = log.index("start suspect")
    assert log[at + 1] == "end suspect"
    assert {"end a", "end b"} <= set(log[:at])
    assert log[at + 2 :] == ["start late", "end late"]
