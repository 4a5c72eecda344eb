"""``eventhub``: run the service.

- ``eventhub up``: everything in one process. Unless a Redis is configured
  (``REDIS_URL``, ``REDIS_STREAMS_URL``, ``REDIS_QUEUE_URL`` or their
  ``EVENTHUB_*`` names), it starts three private ``redis-server``s (AOF
  on), one per role, as the design ran them; and a fake Airtable whose
  webhook feeds the event stream.
- ``eventhub worker`` / ``processor`` / ``dlq`` / ``api``: the parts, as
  separate processes. Each stops on SIGTERM or SIGINT; running jobs and
  event handlers finish first. ``processor`` and ``dlq`` answer ``GET
  /health`` on ``--health-port``; ``eventhub health URL`` asks one (exit
  status 0 when healthy), for a container's health check.
- ``eventhub fake-airtable``: the fake Airtable on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvicorn
from rich.console import Console

from conveyor.server.hosting import quiet_server
from conveyor.testing import RedisServer
from eventhub.api import create_api, register_airtable_webhook
from eventhub.config import Settings
from eventhub.events import UserCreated, WorkspaceCreated
from eventhub.fake_airtable import FakeAirtable, create_fake_airtable
from eventhub.health import Heartbeat, create_health_app
from eventhub.hub import ROLES, Connections, Hub

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="Event infrastructure on Conveyor.")
console = Console()
DATA = Path(os.environ.get("EVENTHUB_DATA", ".eventhub"))
#: Variables that name a Redis of one of the roles.
ROLE_VARIABLES = (
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_STREAMS_URL",
    "REDIS_QUEUE_URL",
    "EVENTHUB_MASTER_URL",
    "EVENTHUB_STREAMS_URL",
    "EVENTHUB_QUEUE_URL",
)


def _run(body: Callable[[Hub, asyncio.Event], Awaitable[None]], settings: Settings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

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


@contextlib.asynccontextmanager
async def _health(
    hub: Hub, process: str, port: int | None, host: str, heartbeat: Heartbeat
) -> AsyncIterator[None]:
    """Serves ``/health`` on ``port`` (none: nothing) for the block."""
    if port is None:
        yield
        return
    server = quiet_server(create_health_app(process, heartbeat, hub.redis.ping), host, port, lifespan="off")
    serving = asyncio.create_task(server.serve())
    await server.wait_started()
    console.print(f"health: http://{host}:{port}/health")
    try:
        yield
    finally:
        server.should_exit = True
        await serving


HealthPort = Annotated[int | None, typer.Option(help="Serve GET /health on this port.")]
HealthHost = Annotated[str, typer.Option(help="Address of the health endpoint.")]


@cli.command()
def worker() -> None:
    """Works the job queues and the dead-letter queue."""

    async def body(hub: Hub, stop: asyncio.Event) -> None:
        if not hub.worker_queues:
            console.print("the queues are turned off (QUEUE_ENABLED=false): nothing to work")
            return
        console.print(f"worker on {', '.join(hub.worker_queues)}")
        await _until(stop, hub.app.run_worker(hub.worker_queues, scheduler=True), hub.app.close)

    _run(body)


@cli.command()
def processor(health_port: HealthPort = None, health_host: HealthHost = "127.0.0.1") -> None:
    """Consumes the event stream in the processors' group."""

    async def body(hub: Hub, stop: asyncio.Event) -> None:
        if not hub.settings.event_bus_enabled:
            console.print("the event bus is turned off (EVENT_BUS_ENABLED=false): nothing to consume")
            return
        heartbeat = Heartbeat(stale=10.0)
        async with _health(hub, "processor", health_port, health_host, heartbeat):
            consumer = hub.consumer()
            console.print(f"event processor on {hub.settings.stream}, group {hub.settings.group}")
            running = asyncio.ensure_future(consumer.run())
            beating = asyncio.create_task(_beat_while(running, heartbeat))
            await _until(stop, running, consumer.close)
            beating.cancel()

    _run(body)


async def _beat_while(task: asyncio.Future[None], heartbeat: Heartbeat) -> None:
    while not task.done():
        heartbeat.beat()
        await asyncio.sleep(1.0)


@cli.command()
def dlq(health_port: HealthPort = None, health_host: HealthHost = "127.0.0.1") -> None:
    """The dead-letter processor: sweeps dead jobs and events every
    ``EVENTHUB_DLQ_INTERVAL`` seconds and works the dead-letter queue."""

    async def body(hub: Hub, stop: asyncio.Event) -> None:
        heartbeat = Heartbeat(stale=max(30.0, 3 * hub.settings.dlq_interval))
        async with _health(hub, "dlq", health_port, health_host, heartbeat):
            console.print(f"dead-letter processor on {hub.settings.dlq_queue}")
            sweeping = asyncio.create_task(hub.dead_letters.sweep_forever(stop, heartbeat.beat))
            await _until(stop, hub.app.run_worker([hub.settings.dlq_queue]), hub.app.close)
            await sweeping

    _run(body)


@cli.command()
def health(
    url: Annotated[str, typer.Argument(help="The process's health URL.")] = "http://127.0.0.1:8010/health",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
) -> None:
    """Asks a process's health endpoint; exit status 0 when it is healthy."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        console.print(f"unhealthy: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    console.print(response.text)
    raise typer.Exit(0 if response.status_code == 200 else 1)


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


@cli.command("fake-airtable")
def fake_airtable(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8093,
) -> None:
    """Serves the fake Airtable (webhooks, payloads, records)."""
    uvicorn.run(create_fake_airtable(FakeAirtable()), host=host, port=port, log_level="warning")


@contextlib.contextmanager
def _three_redis() -> Iterator[dict[str, str] | None]:
    """The configured Redis, or one private server per role."""
    if any(os.environ.get(name) for name in ROLE_VARIABLES):
        yield None
        return
    with contextlib.ExitStack() as stack:
        urls = {}
        for role in ROLES:
            server = stack.enter_context(RedisServer(data_dir=DATA / f"redis-{role}", appendonly=True))
            console.print(f"started a private redis-server (AOF on) at {server.url} for the {role} role")
            urls[role] = server.url
        yield urls
    console.print("redis-server stopped (all three)")


@cli.command()
def up(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8009,
    airtable_port: Annotated[int, typer.Option(help="Port of the fake Airtable.")] = 8093,
    demo: Annotated[
        bool, typer.Option(help="Publish a few events, change Airtable records, start a long job.")
    ] = True,
    demo_steps: Annotated[int, typer.Option(min=1, help="Steps of 1 s of the demo's long job.")] = 30,
) -> None:
    """Runs everything in one process."""

    def start(urls: dict[str, str] | None) -> None:
        airtable = f"http://{host}:{airtable_port}"
        overrides = {"airtable_api_url": airtable}
        if urls is not None:
            overrides |= {
                "master_url": urls["master"],
                "streams_url": urls["streams"],
                "queue_url": urls["queue"],
            }
        settings = Settings(**overrides)  # type: ignore[arg-type]

        async def body(hub: Hub, stop: asyncio.Event) -> None:
            server = quiet_server(create_api(hub), host, port, lifespan="off")
            fake = FakeAirtable()
            fake_server = quiet_server(create_fake_airtable(fake), host, airtable_port, lifespan="off")
            consumer = hub.consumer()
            events_on = hub.settings.event_bus_enabled
            async with asyncio.TaskGroup() as group:
                group.create_task(server.serve())
                group.create_task(fake_server.serve())
                queues = hub.worker_queues
                worker = group.create_task(hub.app.run_worker(queues, scheduler=True)) if queues else None
                events = group.create_task(consumer.run()) if events_on else None
                group.create_task(hub.dead_letters.sweep_forever(stop))
                await server.wait_started()
                await fake_server.wait_started()
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=airtable) as http:
                    webhook = await register_airtable_webhook(
                        hub, "appDemo", f"{base}/webhooks/airtable", http
                    )
                console.print(f"API:        {base}/docs   health: {base}/health   stats: {base}/stats")
                console.print(f"dashboard:  {base}/admin/queues")
                console.print(f"fake Airtable: {airtable} (base appDemo, webhook {webhook})")
                if demo:
                    await _demo(hub, airtable, demo_steps)
                console.print("Ctrl-C stops everything")
                await stop.wait()
                console.print("stopping")
                await asyncio.gather(hub.app.close(grace=10), consumer.close())
                await asyncio.gather(*(task for task in (worker, events) if task is not None))
                server.should_exit = fake_server.should_exit = True

        _run(body, settings)

    with _three_redis() as urls:
        start(urls)


async def _demo(hub: Hub, airtable: str, steps: int) -> None:
    if hub.settings.event_bus_enabled:
        await hub.publisher.publish_many(
            [
                UserCreated(user_id="u1", email="ada@example.com"),
                WorkspaceCreated(workspace_id="w1", owner_id="u1", name="Research"),
            ]
        )
    async with httpx.AsyncClient(base_url=airtable) as http:
        created = await http.post(
            "/v0/appDemo/tblTasks", json={"records": [{"fields": {"Name": "Write docs"}}]}
        )
        record = created.json()["records"][0]["id"]
        await http.patch("/v0/appDemo/tblTasks", json={"records": [{"id": record, "fields": {"Done": True}}]})
    console.print(f"Airtable:   record {record} created and updated in appDemo/tblTasks")
    if hub.settings.long_running_jobs_enabled and hub.settings.queue_enabled:
        job = await hub.process_dataset.enqueue(dataset_id="demo", steps=steps, step_seconds=1.0)
        console.print(f"long job {job.id}: {steps} steps of 1 s, progress on the dashboard")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
