"""What the distribution tests share: fast settings and the service wired
to the fake networks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from conveyor import Conveyor
from distribution.config import Settings
from distribution.fake import FakeNetworks
from distribution.models import Connection
from distribution.service import DispatchJobData, QueueService

#: Retries after 0.02, 0.1 and 0.5 s (the same factor 5 as 5, 25, 125 s).
FAST: dict[str, Any] = {"backoff_delay": 0.02, "backoff_factor": 5.0, "api_token": "s3cret"}


@dataclass
class Env:
    app: Conveyor
    service: QueueService
    networks: FakeNetworks
    settings: Settings

    @property
    def store(self) -> Any:
        return self.service.distribution.services.store

    async def connect(self, network: str = "mastodon", account: str = "@ada") -> Connection:
        tokens = await self.service.distribution.services.network.grant(network, account)
        assert tokens.refresh_token is not None
        return await self.store.add_connection(  # type: ignore[no-any-return]
            network, account, tokens.access_token, tokens.refresh_token, tokens.expires_at
        )

    async def publish(
        self, body: str = "Hello", *, connections: int = 1, custom_message: str | None = None
    ) -> tuple[int, list[int]]:
        """A post dispatched now to ``connections`` new accounts: the schedule
        id and the connection ids (jobs added, not run)."""
        targets = [
            (await self.connect(network)).id for network in ("mastodon", "bluesky", "linkedin")[:connections]
        ]
        post = await self.store.add_post(body)
        schedule, _ = await self.store.add_schedule(
            post.id, targets, scheduled_for=None, custom_message=custom_message, request_ai_assets=False
        )
        for target in targets:
            await self.service.add_dispatch_job(
                DispatchJobData(
                    schedule_id=schedule.id, post_id=post.id, target_id=target, custom_message=custom_message
                )
            )
        return schedule.id, targets

    async def work_until_settled(self, schedule_id: int, within: float = 20.0) -> str:
        """Runs a worker (and the scheduler) until the schedule is published,
        partial or failed (retries and delays included); its status."""
        worker = asyncio.create_task(self.app.run_worker(scheduler=True))
        try:
            async with asyncio.timeout(within):
                while True:
                    found = await self.store.schedule(schedule_id)
                    if found[0].status in ("published", "partial", "failed"):
                        return str(found[0].status)
                    await asyncio.sleep(0.02)
        finally:
            await self.app.close()
            await worker
