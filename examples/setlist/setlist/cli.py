"""``setlist``: run the app.

- ``setlist up``: everything offline in one process: a private Redis (AOF
  on) unless ``REDIS_URL``/``REDIS_HOST`` is set, SQLite unless
  ``DATABASE_URL`` is set, the fake upstream APIs, the workers and the
  scheduler, the API with its pages, and Conveyor's dashboard at
  ``/conveyor/dashboard``. ``--demo`` imports the three fixture artists.
- ``setlist worker`` / ``setlist api`` / ``setlist fake`` / ``setlist
  migrate``: the parts, for running them as separate processes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import SecretStr, ValidationError
from rich.console import Console

from conveyor import Conveyor, RedisSettings, connect
from conveyor.server import create_app
from conveyor.server.hosting import quiet_server
from conveyor.testing import configured_or_private_redis
from setlist.api import create_api
from setlist.checks import findings
from setlist.config import Settings
from setlist.db import database_url, migrate
from setlist.fake.fixtures import build_artists
from setlist.fake.server import FakeConfig, FakeState, create_fake
from setlist.pipeline import Pipeline
from setlist.services import Services

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="The setlist reference app on Conveyor.")
console = Console()
DATA = Path(os.environ.get("SETLIST_DATA", ".setlist"))


def _on_signals(stop: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


def _sqlite_default() -> str:
    if os.environ.get("DATABASE_URL"):
        return database_url()
    DATA.mkdir(parents=True, exist_ok=True)
    return database_url(f"sqlite:///{DATA.resolve() / 'setlist.db'}")


async def _run(body: Callable[[Conveyor, Pipeline], Awaitable[None]], settings: Settings, url: str) -> None:
    redis = connect(url)
    db = _sqlite_default()
    await migrate(db)
    app = Conveyor(redis)
    services = Services.create(redis, settings=settings, database_url=db)
    try:
        await body(app, Pipeline(app, services))
    finally:
        await services.aclose()
        await redis.aclose()


@cli.command()
def up(
    host: Annotated[str, typer.Option(help="Address of the app and the fake APIs.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the app (pages, API, dashboard).")] = 8700,
    fake_port: Annotated[int, typer.Option(help="Port of the fake upstream APIs.")] = 8790,
    demo: Annotated[bool, typer.Option(help="Import the three fixture artists at start.")] = True,
    latency_ms: Annotated[float, typer.Option(help="Latency the fake APIs add to each answer.")] = 20.0,
) -> None:
    """Runs the whole app offline, with the fake upstream APIs."""
    fake_base = f"http://{host}:{fake_port}"
    settings = _settings(lambda: Settings.for_fake(fake_base))
    artists = build_artists()

    async def body(app: Conveyor, pipeline: Pipeline) -> None:
        fake = create_fake(FakeState(artists, FakeConfig(latency_ms=latency_ms, enforce_limits=True)))
        token = _admin_token(settings)
        api = create_api(
            pipeline,
            dashboard=create_app(app.redis, tasks=app, token=token),
            admin_token=token,
            cron_secret=_secret(settings.cron_secret),
        )
        servers = [
            quiet_server(fake, host, fake_port, lifespan="off"),
            quiet_server(api, host, port, lifespan="off"),
        ]
        stop = asyncio.Event()
        _on_signals(stop.set)
        async with asyncio.TaskGroup() as group:
            for server in servers:
                group.create_task(server.serve())
            worker = group.create_task(app.run_worker(scheduler=True))
            archive = group.create_task(pipeline.archive.run())
            for server in servers:
                await server.wait_started()
            console.print(f"app:        [bold]http://{host}:{port}/[/bold]")
            console.print(f"dashboard:  http://{host}:{port}/conveyor/dashboard   (admin token: {token})")
            console.print(f"API docs:   http://{host}:{port}/docs")
            console.print(f"fake APIs:  {fake_base} (counters at {fake_base}/_fake/counters)")
            if demo:
                for artist in artists.values():
                    _, slug, _ = await pipeline.start(artist.attraction_id)
                    console.print(f"importing {artist.name}: http://{host}:{port}/artists/{slug}")
            console.print("Ctrl-C stops everything")
            await stop.wait()
            console.print("stopping")
            await app.close(grace=10)
            await worker
            pipeline.archive.stop()
            await archive
            for server in servers:
                server.should_exit = True

    with configured_or_private_redis(DATA / "redis", console.print) as url:
        asyncio.run(_run(body, settings, url))


@cli.command()
def worker(
    scheduler: Annotated[bool, typer.Option(help="Also fire the app's schedules.")] = True,
    concurrency: Annotated[int | None, typer.Option(help="Jobs at a time per queue.")] = None,
    archive: Annotated[
        bool, typer.Option(help="Also archive finished jobs and schedule runs to the database.")
    ] = True,
) -> None:
    """Works the import queues (``REDIS_URL``, ``DATABASE_URL``, ``SETLIST_*``)."""

    async def body(app: Conveyor, pipeline: Pipeline) -> None:
        _on_signals(lambda: asyncio.ensure_future(app.close()))
        console.print(f"worker on {', '.join(app.queues)}")
        if not archive:
            await app.run_worker(concurrency=concurrency, scheduler=scheduler)
            return
        async with pipeline.archive.running():
            await app.run_worker(concurrency=concurrency, scheduler=scheduler)

    asyncio.run(_run(body, _settings(), RedisSettings().resolved_url()))


@cli.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8700,
) -> None:
    """Serves the API, the pages and Conveyor's dashboard."""

    settings = _settings()

    async def body(app: Conveyor, pipeline: Pipeline) -> None:
        token = _admin_token(settings)
        dashboard = create_app(app.redis, tasks=app, token=token)
        routes = create_api(
            pipeline, dashboard=dashboard, admin_token=token, cron_secret=_secret(settings.cron_secret)
        )
        server = quiet_server(routes, host, port, lifespan="off")
        console.print(f"dashboard: http://{host}:{port}/conveyor/dashboard   (admin token: {token})")
        _on_signals(lambda: setattr(server, "should_exit", True))
        await server.serve()

    asyncio.run(_run(body, settings, RedisSettings().resolved_url()))


@cli.command()
def check() -> None:
    """Checks the environment: each variable, Redis, the database and its
    migrations, each upstream with its credentials (exit status 1 on a failure)."""
    found = asyncio.run(findings(_settings(failed="fail", code=1)))
    marks = {"ok": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]"}
    for finding in found:
        console.print(f"{marks[finding.level]}  {finding.what}: {finding.detail}")
    failed = sum(f.level == "fail" for f in found)
    console.print(f"{failed} failed, {sum(f.level == 'warn' for f in found)} warnings")
    raise typer.Exit(1 if failed else 0)


def _settings(load: Callable[[], Settings] = Settings, *, failed: str = "error", code: int = 2) -> Settings:
    """The settings, or an exit (status ``code``) with each bad one named on a line."""
    try:
        return load()
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "settings"
            where = f"SETLIST_{where.upper()}" if where in Settings.model_fields else where  # the variable
            console.print(f"[red]{failed}[/red]  {where}: {error['msg']}", highlight=False)
        raise typer.Exit(code) from None


def _admin_token(settings: Settings) -> str:
    """``ADMIN_TOKEN``, or one made for this run (printed by the caller)."""
    return _secret(settings.admin_token) or secrets.token_urlsafe(16)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


@cli.command()
def fake(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8790,
    latency_ms: Annotated[float, typer.Option()] = 0.0,
    profile: Annotated[str, typer.Option(help="Spotify profile: extended or development.")] = "extended",
    enforce_limits: Annotated[bool, typer.Option(help="Answer 429 past each upstream's rate.")] = True,
) -> None:
    """Serves the fake Ticketmaster, Spotify and setlist.fm APIs."""
    config = FakeConfig(latency_ms=latency_ms, spotify_profile=profile, enforce_limits=enforce_limits)  # type: ignore[arg-type]
    uvicorn.run(create_fake(FakeState(build_artists(), config)), host=host, port=port, log_level="warning")


@cli.command(name="migrate")
def migrate_command() -> None:
    """Brings the database schema up to date."""
    asyncio.run(migrate(_sqlite_default()))
    console.print("schema up to date")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
