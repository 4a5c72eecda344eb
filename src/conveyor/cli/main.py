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
    target: Annotated[str, typer.Argument(metavar="APP", help="module:attribute of the handlers.")],
    queues: Annotated[
        list[str] | None, typer.Option("--queues", "-q", help="Only these queues (repeatable).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs at a time, per queue.")] = 10,
) -> None:
    """Run workers for an app's handlers: APP names a mapping of queue names
    to handlers, or one handler for the queues given with --queues. SIGTERM
    or SIGINT stops them gracefully."""
    from conveyor.cli.worker import load_handlers, run_workers
    from conveyor.errors import ConveyorError

    try:
        handlers = load_handlers(target, queues or [])
    except ConveyorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    asyncio.run(run_workers(handlers, concurrency))


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
    queues: Annotated[list[str], typer.Argument(help="Queues whose schedules to fire.")],
    poll: Annotated[float, typer.Option(help="Seconds between looks for new schedules.")] = 1.0,
) -> None:
    """Fire the schedules of the given queues until SIGTERM or SIGINT (run
    as many as you like: each tick is enqueued once)."""
    import signal

    from conveyor import Queue, Scheduler, connect

    async def go() -> None:
        redis = connect()
        runner = Scheduler([Queue(name, redis) for name in queues], poll=poll)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.close)
        typer.echo(f"scheduler running for {', '.join(queues)}")
        try:
            await runner.run()
        finally:
            await redis.aclose()

    asyncio.run(go())


def main() -> None:
    app()
