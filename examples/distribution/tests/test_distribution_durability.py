"""The seed's durability criteria with real processes: queued jobs survive
a Redis crash and restart (AOF), and a worker stopped with SIGTERM finishes
the jobs it is running before it exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from distribution_env import FAST

from conveyor import Conveyor, JobState, connect
from conveyor.testing import RedisServer, serving
from distribution.config import Settings
from distribution.fake import FakeNetworks, create_fake
from distribution.service import (
    DISPATCH,
    DispatchJobData,
    Distribution,
    QueueService,
    ScheduledPublishJobData,
    Services,
)


async def _wire(
    url: str, db: str, http: httpx.AsyncClient, network_url: str
) -> tuple[QueueService, Services]:
    settings = Settings(network_url=network_url, **FAST)
    services = Services.create(settings, database_url=db, http=http)
    await services.store.create_schema()
    return QueueService(Distribution(Conveyor(connect(url)), services, settings)), services


async def _schedule(service: QueueService, targets: list[int], at: datetime | None = None) -> int:
    store = service.distribution.services.store
    post = await store.add_post("Durable")
    schedule, _ = await store.add_schedule(
        post.id, targets, scheduled_for=at, custom_message=None, request_ai_assets=False
    )
    if at is not None:
        await service.add_scheduled_publish_job(ScheduledPublishJobData(schedule_id=schedule.id), at)
    else:
        for target in targets:
            await service.add_dispatch_job(
                DispatchJobData(schedule_id=schedule.id, post_id=post.id, target_id=target)
            )
    return schedule.id


async def _connect_accounts(service: QueueService, n: int) -> list[int]:
    ids = []
    for i in range(n):
        tokens = await service.distribution.services.network.grant("mastodon", f"@user{i}")
        assert tokens.refresh_token is not None
        row = await service.distribution.services.store.add_connection(
            "mastodon", f"@user{i}", tokens.access_token, tokens.refresh_token, tokens.expires_at
        )
        ids.append(row.id)
    return ids


async def test_queued_jobs_survive_a_redis_crash_and_restart(tmp_path: Path) -> None:
    networks = FakeNetworks()
    server = RedisServer(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always").start()
    transport = httpx.ASGITransport(app=create_fake(networks))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
            service, services = await _wire(server.url, f"sqlite:///{tmp_path / 'd.db'}", http, "http://fake")
            try:
                targets = await _connect_accounts(service, 3)
                now_id = await _schedule(service, targets)
                later_id = await _schedule(service, targets[:1], datetime.now(UTC) + timedelta(seconds=0.5))
                before = {n: await service.get_queue_status(n) for n in ("dispatch", "scheduled")}
                assert (before["dispatch"].waiting, before["scheduled"].delayed) == (3, 1)

                server.kill()  # SIGKILL: no shutdown save; the AOF is all there is
                server.start()

                after = {n: await service.get_queue_status(n) for n in ("dispatch", "scheduled")}
                assert after == before
                worker = asyncio.create_task(service.app.run_worker(scheduler=True))
                try:
                    async with asyncio.timeout(20):
                        while True:
                            statuses = {
                                (await services.store.schedule(i))[0].status for i in (now_id, later_id)
                            }
                            if statuses == {"published"}:
                                break
                            await asyncio.sleep(0.05)
                finally:
                    await service.app.close()
                    await worker
                assert len(networks.posts) == 4
            finally:
                await services.aclose()
                await service.app.redis.aclose()
    finally:
        server.cleanup()


async def test_sigterm_lets_running_dispatches_finish(tmp_path: Path) -> None:
    networks = FakeNetworks(latency_ms=1500)  # each post takes 1.5 s
    db = f"sqlite:///{tmp_path / 'd.db'}"
    with RedisServer() as redis_server:
        async with serving(create_fake(networks)) as fake_url, httpx.AsyncClient(base_url=fake_url) as http:
            service, services = await _wire(redis_server.url, db, http, fake_url)
            networks.latency_ms = 0  # quick grants
            targets = await _connect_accounts(service, 6)
            networks.latency_ms = 1500
            env = {
                **os.environ,
                "REDIS_URL": redis_server.url,
                "DATABASE_URL": db,
                "DISTRIBUTION_NETWORK_URL": fake_url,
                "DISTRIBUTION_CONCURRENCY": "5",
                "PYTHONUNBUFFERED": "1",
            }
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "distribution.cli",
                "worker",
                env=env,
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                schedule_id = await _schedule(service, targets)
                queue = service.app.queues[DISPATCH].queue
                async with asyncio.timeout(30):  # five running, the sixth waiting
                    while True:
                        if (await queue.counts())[JobState.ACTIVE] == 5:
                            break
                        await asyncio.sleep(0.05)
                worker.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    output, _ = await worker.communicate()
                assert worker.returncode == 0, output.decode()
            finally:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()

            _, rows = await services.store.schedule(schedule_id)
            assert sorted(r.status for r in rows) == ["queued"] + ["sent"] * 5
            counts = await queue.counts()
            assert (counts[JobState.COMPLETED], counts[JobState.WAITING], counts[JobState.ACTIVE]) == (
                5,
                1,
                0,
            )
            assert len(networks.posts) == 5
            assert "letting running jobs finish" in output.decode()
            await services.aclose()
            await service.app.redis.aclose()
