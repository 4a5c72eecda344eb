"""``eventhub``: run the service.

- ``eventhub up``: everything in one process on a private Redis (AOF on)
  unless ``REDIS_URL`` is set: workers, the event processor, the
  dead-letter processor and the API (dashboard at ``/admin/queues``).
- ``eventhub worker`` / ``processor`` / ``dlq`` / ``api``: the parts, as
  separate processes. Each stops on SIGTERM or SIGINT; running jobs and
  event handlers finish first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from conveyor.server.hosting import quiet_server
from conveyor.testing import configured_or_private_redis
from eventhub.api import create_api
from eventhub.config import Settings
from eventhub.events import UserCreated, WorkspaceCreated
from eventhub.hub import Connections, Hub

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="Event infrastructure on Conveyor.")
console = Console()
DATA = Path(os.environ.get("EVENTHUB_DATA", ".eventhub"))


def _run(body: Callable[[Hub, asyncio.Event], Awaitable[None]], settings: Settings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def main() -> None:
        config = settings or Settings()
        connections = Connections.open(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await body(Hub(config, connections), stop)
        finally:
            await connections.aclose()

    asyncio.run(main())


async def _until(stop: asyncio.Event, run: Awaitable[None], close: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.ensure_future(run)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    console.print("stopping: letting running work finish")
    await close()
    await task
    console.print("stopped")


@cli.command()
def worker() -> None:
    """Works the three job queues."""

    async def body(hub: Hub, stop: asyncio.Event) -> None:
        console.print(f"worker on {', '.join(hub.app.queues)}")
        await _until(stop, hub.app.run_worker(scheduler=True), hub.app.close)

    _run(body)


@cli.command()
def processor() -> None:
    """Consumes the event stream in the processors' group."""

    async def body(hub: Hub, stop: asyncio.Event) -> None:
        consumer = hub.consumer()
        console.print(f"event processor on {hub.settings.stream}, group {hub.settings.group}")
        await _until(stop, consumer.run(), consumer.close)

    _run(body)


@cli.command()
def dlq() -> None:
    """Reviews the dead-letter stream every ``EVENTHUB_DLQ_INTERVAL`` seconds."""

    async def body(hub: Hub, stop: asyncio.Event) -> None:
        console.print("dead-letter processor running")
        await hub.run_dead_letter_processor(stop)

    _run(body)


@cli.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8009,
) -> None:
    """Serves the API and the dashboard."""

    async def body(hub: Hub, stop: asyncio.Event) -> None:
        server = quiet_server(create_api(hub), host, port, lifespan="off")
        serving = asyncio.create_task(server.serve())
        await stop.wait()
        server.should_exit = True
        await serving

    _run(body)


@cli.command()
def up(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8009,
    demo: Annotated[bool, typer.Option(help="Publish a few events and start a long job.")] = True,
    demo_steps: Annotated[int, typer.Option(min=1, help="Steps of 1 s of the demo's long job.")] = 30,
) -> None:
    """Runs everything in one process."""

    def start(url: str) -> None:
        settings = Settings(queue_url=url, streams_url=url, cache_url=url)

        async def body(hub: Hub, stop: asyncio.Event) -> None:
            server = quiet_server(create_api(hub), host, port, lifespan="off")
            consumer = hub.consumer()
            async with asyncio.TaskGroup() as group:
                group.create_task(server.serve())
                worker = group.create_task(hub.app.run_worker(scheduler=True))
                events = group.create_task(consumer.run())
                group.create_task(hub.run_dead_letter_processor(stop))
                await server.wait_started()
                base = f"http://{host}:{port}"
                console.print(f"API:        {base}/docs   health: {base}/health   stats: {base}/stats")
                console.print(f"dashboard:  {base}/admin/queues/dashboard")
                if demo:
                    await hub.publisher.publish_many(
                        [
                            UserCreated(user_id="u1", email="ada@example.com"),
                            WorkspaceCreated(workspace_id="w1", owner_id="u1", name="Research"),
                        ]
                    )
                    job = await hub.process_dataset.enqueue(
                        dataset_id="demo", steps=demo_steps, step_seconds=1.0
                    )
                    console.print(f"long job {job.id}: {demo_steps} steps of 1 s, progress on the dashboard")
                console.print("Ctrl-C stops everything")
                await stop.wait()
                console.print("stopping")
                await asyncio.gather(hub.app.close(grace=10), consumer.close())
                await asyncio.gather(worker, events)
                server.should_exit = True

        _run(body, settings)

    with configured_or_private_redis(DATA / "redis", console.print) as url:
        start(url)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
