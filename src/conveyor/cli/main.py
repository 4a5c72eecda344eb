"""Entry point of the ``conveyor`` command."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from conveyor import __version__
from conveyor.cli import admin

app = typer.Typer(help="Conveyor: background jobs on Redis.", no_args_is_help=True)
admin.register(app)


@app.command()
def demo() -> None:
    """Run a short demo workload (starts a private Redis unless REDIS_URL/REDIS_HOST is set)."""
    from conveyor.cli.demo import run_demo

    run_demo()


@app.command()
def worker(
    target: Annotated[str, typer.Argument(metavar="APP", help="module:attribute of the app or handlers.")],
    queues: Annotated[
        list[str] | None, typer.Option("--queues", "-q", help="Only these queues (repeatable).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs at a time, per queue (default: the app's, or 10).")
    ] = None,
    with_scheduler: Annotated[
        bool, typer.Option("--scheduler", help="Also fire the app's schedules in this process.")
    ] = False,
) -> None:
    """Run workers: APP names a Conveyor app, a mapping of queue names to
    handlers, or one handler for the queues given with --queues. SIGTERM or
    SIGINT stops them gracefully."""
    from conveyor.cli.worker import load_handlers, load_target, run_app, run_workers
    from conveyor.errors import ConveyorError
    from conveyor.tasks.app import Conveyor

    try:
        found = load_target(target)
        if isinstance(found, Conveyor):
            found.select_queues(queues)  # unknown queue names fail before any I/O
            asyncio.run(run_app(found, queues or [], concurrency, with_scheduler))
            return
        if with_scheduler:
            raise ConveyorError("--scheduler needs a Conveyor app (handlers declare no schedules)")
        handlers = load_handlers(target, found, queues or [])
    except ConveyorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    asyncio.run(run_workers(handlers, concurrency or 10))


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address of the API and dashboard.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and dashboard.")] = 8000,
) -> None:
    """Everything in one command: a private Redis (unless REDIS_URL/REDIS_HOST
    is set), workers, the scheduler, the API and dashboard, and a demo
    workload. Prints the dashboard URL; Ctrl-C stops it all."""
    from conveyor.cli.up import up as run_up

    run_up(host, port)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def check() -> None:
    """Check Redis for Conveyor: reachable, version, persistence, eviction
    policy and latency. Exits non-zero on problems."""
    from conveyor.cli.check import run_check

    raise typer.Exit(run_check())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    stream: Annotated[
        list[str] | None, typer.Option(help="An event stream to report on (repeatable).")
    ] = None,
) -> None:
    """Serve the HTTP API (token from CONVEYOR_API_TOKEN)."""
    import uvicorn

    from conveyor.server import create_app
    from conveyor.server.auth import warn_if_open

    api = create_app(streams=stream or ())
    warn_if_open(host, api.state.conveyor.token)
    uvicorn.run(api, host=host, port=port, log_level="info")


@app.command()
def scheduler(
    queues: Annotated[
        list[str] | None, typer.Argument(help="Queues whose schedules to fire (default: the app's).")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--app", metavar="APP", help="module:attribute of a Conveyor app.")
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks for new schedules.")] = 1.0,
) -> None:
    """Fire the schedules of the given queues, or of an app's queues with
    --app (writing the app's declared schedules first), until SIGTERM or
    SIGINT. Run as many as you like: each tick is enqueued once."""
    import signal

    from conveyor import Queue, Scheduler, connect
    from conveyor.cli.worker import load_target, stop_on_signals
    from conveyor.errors import ConveyorError
    from conveyor.tasks.app import Conveyor

    found: Conveyor | None = None
    try:
        if target is not None:
            found = load_target(target)
            if not isinstance(found, Conveyor):
                raise ConveyorError(f"{target} is not a Conveyor app")
            found.select_queues(queues)
        elif not queues:
            raise ConveyorError("name the queues whose schedules to fire, or an app with --app")
    except ConveyorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

    async def go() -> None:
        if found is not None:
            stop_on_signals(found.close)
            typer.echo(f"scheduler running for {', '.join(queues or found.queues)}")
            try:
                await found.run_scheduler(queues, poll=poll)
            finally:
                await found.aclose()
            return
        redis = connect()
        runner = Scheduler([Queue(name, redis) for name in queues or []], poll=poll)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.close)
        typer.echo(f"scheduler running for {', '.join(queues or [])}")
        try:
            await runner.run()
        finally:
            await redis.aclose()

    asyncio.run(go())


def main() -> None:
    app()
