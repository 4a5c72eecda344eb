"""Running an app's jobs in a test: :func:`run_until_idle`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from conveyor.tasks.app import Conveyor


async def run_until_idle(app: Conveyor, queues: Iterable[str] | None = None, *, within: float = 30.0) -> None:
    """Runs the app's workers (of ``queues``, default all) until none of
    those queues has a job waiting, due or running, flows' parents
    included; delayed jobs not yet due stay. Raises TimeoutError after
    ``within`` seconds, the workers stopped first (running jobs handed
    back to waiting)."""
    run = asyncio.ensure_future(app.run_worker(queues, burst=True))
    done, _ = await asyncio.wait({run}, timeout=within)
    if not done:
        await app.close(grace=0)
        await run
        raise TimeoutError(f"the app's queues were still busy after {within:g} s")
    await run
