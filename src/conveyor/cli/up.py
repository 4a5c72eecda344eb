"""``conveyor up``: everything in one command. A private Redis (AOF on, in a
data directory) unless REDIS_URL/REDIS_HOST names one, workers, the
scheduler, the API and dashboard, and a demo workload that keeps showing
priorities, retries, a rate-limited queue, dead letters, groups, a cron
job, a flow and live progress, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from pathlib import Path
from typing import Any

from rich.console import Console

from conveyor.cli.loop import run as run_loop
from conveyor.cli.supervisor import Supervisor, child_command
from conveyor.cli.worker import HANDLERS_GRACE, STOP_MARGIN
from conveyor.engine.backoff import Exponential
from conveyor.engine.client.connection import connect
from conveyor.engine.flows import FlowJob, FlowProducer
from conveyor.engine.job import JobContext
from conveyor.engine.limits import RateLimit
from conveyor.engine.options import Priority
from conveyor.engine.queue import Queue
from conveyor.engine.scheduler import Scheduler
from conveyor.engine.signals import stop_on_signals
from conveyor.engine.worker import Worker
from conveyor.errors import Discard, RateLimited
from conveyor.localredis import configured_or_private_redis
from conveyor.server import create_app
from conveyor.server.auth import warn_if_open
from conveyor.server.hosting import quiet_server

console = Console()
QUEUES = ("up-emails", "up-spotify", "up-shows", "up-imports")


async def handle(job: JobContext) -> Any:
    """The demo's jobs: steps with progress, some flaky, some refused."""
    data = job.data if isinstance(job.data, dict) else {}
    steps = int(data.get("steps", 3))
    for step in range(1, steps + 1):
        await asyncio.sleep(float(data.get("step_seconds", 0.3)))
        await job.update_progress({"percent": round(100 * step / steps), "step": step})
    if data.get("flaky") and job.attempt < 3:
        raise ConnectionError(f"upstream timed out (attempt {job.attempt})")
    if data.get("invalid"):
        raise Discard("the address is not valid")
    if data.get("throttled") and job.attempt == 1 and job.fence == 1:
        raise RateLimited(2.0, "upstream answered 429")
    if job.name == "wrap-up":
        children = await job.children()
        return {"parts": len(children.results)}
    return {"ok": True, "attempt": job.attempt}


#: The demo's handlers, for ``conveyor worker conveyor.cli.up:HANDLERS``
#: (what each worker process runs with ``up --processes``).
HANDLERS = dict.fromkeys(QUEUES, handle)


async def setup(redis: Any) -> dict[str, Queue]:
    queues = {name: Queue(name, redis) for name in QUEUES}
    for queue in queues.values():
        await queue.register()
    await queues["up-spotify"].set_rate_limit(RateLimit(3, per=1.0))
    await queues["up-shows"].set_group_limits(concurrency=1)
    await queues["up-imports"].upsert_schedule(
        "trending", "compute-trending", {"steps": 2}, cron="* * * * *", missed="skip"
    )
    return queues


async def feed(queues: dict[str, Queue], redis: Any, stop: asyncio.Event) -> None:
    """Adds a little of everything every few seconds."""
    flows = FlowProducer(redis)
    n = 0
    while not stop.is_set():
        n += 1
        emails = queues["up-emails"]
        await emails.add("password-reset", {"steps": 1}, priority=Priority.CRITICAL)
        await emails.add("newsletter", {"steps": 4}, priority=Priority.LOW)
        if n % 2:
            await emails.add("welcome", {"flaky": True}, attempts=3, backoff=Exponential(1.0))
        if n % 3 == 0:
            await emails.add("bounce", {"invalid": True}, attempts=3)
        await queues["up-spotify"].add_bulk(
            [("album", {"steps": 2, "throttled": n % 4 == 0 and i == 0}) for i in range(4)]
        )
        for account in random.sample(["big", "big", "big", "small"], 3):
            await queues["up-shows"].add("shows-page", {"account": account}, group=account)
        if n % 3 == 1:
            await flows.add(
                FlowJob(
                    "wrap-up",
                    "up-imports",
                    {"artist": n},
                    children=[
                        FlowJob("catalog", "up-spotify", {"steps": 2}),
                        FlowJob("shows", "up-shows", {}),
                    ],
                )
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


def worker_processes(url: str, count: int) -> Supervisor:
    """``count`` worker processes of the demo's queues, on ``url``."""
    command = child_command(f"{__name__}:HANDLERS", ["--concurrency=8"])
    return Supervisor(
        [command] * count, stop_within=HANDLERS_GRACE + STOP_MARGIN, env={"REDIS_URL": url}, say=console.print
    )


async def run_up(url: str, host: str, port: int, processes: int | None = None) -> None:
    redis = connect(url)
    queues = await setup(redis)
    stop = asyncio.Event()
    # the workers run here, or in processes of their own under a supervisor
    supervisor = worker_processes(url, processes) if processes else None
    workers = (
        [] if supervisor else [Worker(q, handle, concurrency=8, shutdown_grace=5) for q in queues.values()]
    )

    async def begin_stopping() -> None:
        stop.set()

    def at_once() -> None:
        """A second signal: running jobs go back to waiting now."""
        for worker in workers:
            worker.hand_back_all()
        if supervisor is not None:
            supervisor.hand_back()

    stop_on_signals(begin_stopping, at_once)
    scheduler = Scheduler(list(queues.values()))
    api = create_app(redis)
    warn_if_open(host, api.state.conveyor.token)
    server = quiet_server(api, host, port)
    async with asyncio.TaskGroup() as tg:
        for worker in workers:
            tg.create_task(worker.run())
        if supervisor is not None:
            tg.create_task(supervisor.run())
        tg.create_task(scheduler.run())
        tg.create_task(server.serve())
        tg.create_task(feed(queues, redis, stop))
        await server.wait_started()  # print the address once it answers
        console.print(
            f"dashboard: [bold]http://{host}:{port}/dashboard[/bold]   API: http://{host}:{port}/docs"
        )
        console.print("Ctrl-C stops everything")
        await stop.wait()
        console.print("stopping")
        scheduler.close()
        server.should_exit = True
        await asyncio.gather(*(w.close(grace=5) for w in workers))
        if supervisor is not None:
            await supervisor.close()
    await redis.aclose()


def up(host: str, port: int, processes: int | None = None) -> None:
    """Runs everything; stops the private Redis on the way out."""
    data = Path(os.environ.get("CONVEYOR_DATA", ".conveyor/redis"))
    with configured_or_private_redis(data, console.print) as url:
        run_loop(run_up(url, host, port, processes))
