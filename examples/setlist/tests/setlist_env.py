"""What the setlist tests share: fast settings and the pipeline wired to
the fake upstream APIs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from upstream import Upstream

from conveyor import Conveyor, JobState
from setlist.pipeline import Pipeline
from setlist.progress import subject
from setlist.services import Services

#: The admin token and the cron secret of the ``admin`` fixture's API.
ADMIN = {"authorization": "Bearer adm1n"}
CRON = {"authorization": "Bearer cr0n"}

#: Test settings: fast retries, and limits high enough not to slow tests
#: down (the tests that check limits set their own).
FAST = {
    "retry_backoff": 0.05,
    "upstream_retry_delay": 0.01,
    "ticketmaster_spike_wait": 0.05,
    "setlistfm_backoff": 0.05,
    "ticketmaster_rate": 500,
    "spotify_rate": 500,
    "setlistfm_rate": 500,
}


@dataclass
class Env:
    app: Conveyor
    services: Services
    pipeline: Pipeline
    upstream: Upstream

    async def import_artist(self, key: str) -> str:
        """Starts the import of a fixture artist and runs it to its end."""
        return await self.run_import(self.upstream.artist(key).attraction_id)

    async def run_import(self, attraction_id: str, within: float = 60.0) -> str:
        """Starts an import and works the queues until it completes or fails
        (retries and rate-limit holds included)."""
        started = await self.pipeline.start(attraction_id)
        assert started is not None
        await self.work_until_finished(started[0], within)
        # the failed parent of a failed child is settled by the worker: let
        # it finish what it was doing
        await self.app.run_worker(burst=True)
        return started[0]

    async def drain(self, *queues: str, within: float = 30.0) -> None:
        """Works ``queues`` (all by default) until none has a job waiting,
        delayed (a retry's backoff) or running."""
        names = list(queues) or list(self.app.queues)
        async with asyncio.timeout(within):
            while True:
                await self.app.run_worker(names, burst=True)
                counts = [await self.app.queues[n].queue.counts() for n in names]
                if not any(
                    c[s] for c in counts for s in (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
                ):
                    return
                await asyncio.sleep(0.05)

    async def work_until_finished(self, artist_id: str, within: float = 60.0) -> None:
        """Runs workers until the artist's import ends (retries and
        rate-limit holds included)."""
        worker = asyncio.create_task(self.app.run_worker())
        try:
            async with asyncio.timeout(within):
                async for status in self.app.progress.subscribe(subject(artist_id)):
                    if status.finished:
                        break
        finally:
            await self.app.close()
            await worker
