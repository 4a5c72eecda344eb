"""``distribution``: run the service.

- ``distribution up``: everything offline in one process: a private Redis
  run as the design's production notes ask (AOF and RDB snapshots, a
  password, ``maxmemory`` with ``noeviction``) unless
  ``REDIS_URL``/``REDIS_HOST`` is set, SQLite unless
  ``DATABASE_URL`` is set, the fake networks, the workers and the
  scheduler, and the API with Conveyor's dashboard at ``/admin/queues``.
  ``--demo`` connects two accounts and publishes a post now and one later.
- ``distribution worker`` / ``api`` / ``fake``: the parts, as separate
  processes. A worker stops on SIGTERM or SIGINT after its running jobs
  finish (within ``DISTRIBUTION_SHUTDOWN_GRACE`` seconds; the rest go back
  to waiting). A worker also logs every job's state changes (the journal)
  unless ``--no-journal``.
- ``distribution check``: whether the configured Redis follows those
  production notes (exit status 1 when it does not).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvicorn
from redis.exceptions import RedisError
from rich.console import Console

from conveyor import Conveyor, RedisSettings, connect
from conveyor.errors import ConnectionFailed
from conveyor.server.hosting import quiet_server
from conveyor.testing import configured_or_private_redis
from distribution.api import create_api
from distribution.config import Settings
from distribution.fake import FakeNetworks, create_fake
from distribution.journal import Journal
from distribution.redis_policy import Finding, findings, server_args
from distribution.service import QUEUE_NAMES, Distribution, QueueService, Services
from distribution.store import database_url

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="Social-post distribution on Conveyor.")
console = Console()
DATA = Path(os.environ.get("DISTRIBUTION_DATA", ".distribution"))


def _database() -> str:
    if os.environ.get("DATABASE_URL"):
        return database_url()
    DATA.mkdir(parents=True, exist_ok=True)
    return database_url(f"sqlite:///{DATA.resolve() / 'distribution.db'}")


def _on_signals(stop: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


async def _run(body: Callable[[QueueService], Awaitable[None]], settings: Settings, url: str) -> None:
    redis = connect(url)
    app = Conveyor(redis)
    services = Services.create(settings, database_url=_database())
    await services.store.create_schema()
    try:
        await body(QueueService(Distribution(app, services, settings)))
    finally:
        await services.aclose()
        await redis.aclose()


def _journal(service: QueueService) -> Journal:
    return Journal(service.app, service.distribution.services.store, list(QUEUE_NAMES.values()))


async def _demo(base: str, token: str, later_s: float) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {token}"}) as http:
        ids = [
            (await http.post("/api/connections", json={"network": n, "account": "@conveyor"})).json()["id"]
            for n in ("mastodon", "bluesky")
        ]
        post = (await http.post("/api/posts", json={"body": "Hello from Conveyor"})).json()["id"]
        now = (await http.post(f"/api/posts/{post}/dispatch", json={"connectionIds": ids})).json()
        later = datetime.now(UTC) + timedelta(seconds=later_s)
        scheduled = (
            await http.post(
                f"/api/posts/{post}/dispatch", json={"connectionIds": ids, "scheduledFor": later.isoformat()}
            )
        ).json()
    console.print(f"published now:       {base}/api/schedules/{now['scheduleId']}")
    console.print(f"scheduled in {later_s:g} s:    {base}/api/schedules/{scheduled['scheduleId']}")


@cli.command()
def up(
    host: Annotated[str, typer.Option(help="Address of the API and the fake networks.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and dashboard.")] = 8701,
    fake_port: Annotated[int, typer.Option(help="Port of the fake networks.")] = 8791,
    demo: Annotated[bool, typer.Option(help="Connect two accounts and publish a post.")] = True,
    demo_delay: Annotated[float, typer.Option(help="Seconds until the demo's scheduled post.")] = 10.0,
) -> None:
    """Runs the whole service offline, with fake networks."""
    _logging()
    settings = Settings(network_url=f"http://{host}:{fake_port}")
    token = settings.api_token or secrets.token_urlsafe(16)

    async def body(service: QueueService) -> None:
        api = create_api(service, token=token)
        servers = [
            quiet_server(create_fake(FakeNetworks(latency_ms=50)), host, fake_port, lifespan="off"),
            quiet_server(api, host, port, lifespan="off"),
        ]
        stop = asyncio.Event()
        _on_signals(stop.set)
        journal = _journal(service)
        async with asyncio.TaskGroup() as group:
            for server in servers:
                group.create_task(server.serve())
            group.create_task(journal.run())
            worker = group.create_task(service.app.run_worker(scheduler=True))
            for server in servers:
                await server.wait_started()
            base = f"http://{host}:{port}"
            console.print(f"API:        {base}/docs   (Authorization: Bearer {token})")
            console.print(f"health:     {base}/api/queue/health")
            console.print(f"dashboard:  {base}/admin/queues/dashboard   (sign in with the token)")
            console.print(f"fake networks: http://{host}:{fake_port}/_fake/posts")
            if demo:
                await _demo(base, token, demo_delay)
            console.print("Ctrl-C stops everything")
            await stop.wait()
            console.print("stopping")
            await service.app.close(grace=settings.shutdown_grace)
            await worker
            journal.close()
            for server in servers:
                server.should_exit = True

    password = secrets.token_urlsafe(16)
    private = configured_or_private_redis(
        DATA / "redis", console.print, password=password, extra_args=server_args(settings.redis_maxmemory)
    )
    with private as url:
        if not RedisSettings().is_configured():  # the private server, with this password
            limit = settings.redis_maxmemory
            console.print(f"its password: {password} (RDB snapshots on, maxmemory {limit}, noeviction)")
        asyncio.run(_run(body, settings, url))


@cli.command()
def worker(
    scheduler: Annotated[bool, typer.Option(help="Also fire the repeated token refreshes.")] = True,
    journal: Annotated[
        bool, typer.Option(help="Log every job's state changes (turn it on in one process of several).")
    ] = True,
) -> None:
    """Works the three queues (``REDIS_URL``, ``DATABASE_URL``, ``DISTRIBUTION_*``)."""
    _logging()
    settings = Settings()

    async def body(service: QueueService) -> None:
        stop = asyncio.Event()
        _on_signals(stop.set)
        run = asyncio.create_task(service.app.run_worker(scheduler=scheduler))
        journal_ = _journal(service) if journal else None
        logging_ = asyncio.create_task(journal_.run()) if journal_ else None
        console.print(f"worker on {', '.join(service.app.queues)}")
        await asyncio.wait([run, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        console.print("stopping: letting running jobs finish")
        await service.app.close(grace=settings.shutdown_grace)
        await run
        if journal_ and logging_:
            journal_.close()
            await logging_
        console.print("stopped")

    asyncio.run(_run(body, settings, RedisSettings().resolved_url()))


@cli.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8701,
) -> None:
    """Serves the API and the dashboard."""
    settings = Settings()

    async def body(service: QueueService) -> None:
        server = quiet_server(create_api(service, token=settings.api_token), host, port, lifespan="off")
        _on_signals(lambda: setattr(server, "should_exit", True))
        await server.serve()

    asyncio.run(_run(body, settings, RedisSettings().resolved_url()))


@cli.command()
def fake(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8791,
    latency_ms: Annotated[float, typer.Option()] = 50.0,
) -> None:
    """Serves the fake social networks."""
    uvicorn.run(create_fake(FakeNetworks(latency_ms=latency_ms)), host=host, port=port, log_level="warning")


@cli.command()
def check() -> None:
    """Checks the configured Redis (``REDIS_URL`` or ``REDIS_*``) against the
    production notes: AOF and RDB on, a password, maxmemory, noeviction."""
    url = RedisSettings().resolved_url()

    async def go() -> list[Finding]:
        async with connect(url) as redis:
            return await findings(redis)

    try:
        found = asyncio.run(go())
    except (ConnectionFailed, RedisError) as exc:
        console.print(f"[red]fail[/red]  cannot ask Redis: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    console.print(f"Redis at {url.split('@')[-1]}")
    for f in found:
        console.print(f"{'[green]ok[/green]  ' if f.ok else '[red]fail[/red]'}  {f.rule}: {f.detail}")
    raise typer.Exit(0 if all(f.ok for f in found) else 1)


def _logging() -> None:
    """INFO for the service and Conveyor; the HTTP client's line per request
    only from WARNING up (each dispatch logs its own outcome)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
