"""Entry point of the ``conveyor`` command."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from conveyor import __version__
from conveyor.cli import admin, events, jobs
from conveyor.cli.loop import run as run_loop

app = typer.Typer(help="Conveyor: background jobs on Redis.", no_args_is_help=True)
admin.register(app)
jobs.register(app)
events.register(app)

#: Commands that start a Redis of their own when none is named.
OWN_REDIS = {"up", "demo", "version"}


@app.callback()
def options(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            metavar="URL",
            help="The Redis to use (anywhere on the line; default: $REDIS_URL, else $REDIS_HOST...).",
        ),
    ] = None,
) -> None:
    """Conveyor: background jobs on Redis."""
    from conveyor.cli.failures import where
    from conveyor.settings import RedisSettings

    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    elif ctx.invoked_subcommand not in OWN_REDIS and not RedisSettings().is_configured():
        typer.echo(f"note: no --redis-url, REDIS_URL or REDIS_HOST set: using Redis at {where()}", err=True)


def lift_redis_url(args: list[str]) -> list[str]:
    """``args`` with ``--redis-url URL`` (or ``--redis-url=URL``) moved in
    front of the command, so that it may be given anywhere on the line."""
    rest: list[str] = []
    lifted: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--redis-url":
            lifted = [arg, next(items, "")]
        elif arg.startswith("--redis-url="):
            lifted = [arg]
        else:
            rest.append(arg)
    return lifted + rest


LogLevel = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        metavar="LEVEL",
        help="debug, info, warning or error (default: $CONVEYOR_LOG_LEVEL, else info).",
    ),
]
LogFormat = Annotated[
    str | None,
    typer.Option(
        "--log-format", metavar="FORMAT", help="text or json (default: $CONVEYOR_LOG_FORMAT, else text)."
    ),
]


def start_logs(level: str | None, fmt: str | None) -> str:
    """Configures logging for a long-running command; returns the level
    (a bad one is told in one line by ``failures.guarded``)."""
    from conveyor.cli.logs import configure

    return configure(level, fmt)[0]


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
    processes: Annotated[
        str | None,
        typer.Option(
            metavar="N|auto",
            help="Run N worker processes (auto: one per core) under a supervisor that starts "
            "again any that dies.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve this process's job metrics (Prometheus) on this port; "
            "with --processes, process N on this port + N.",
        ),
    ] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Run workers: APP names a Conveyor app, a mapping of queue names to
    handlers, or one handler for the queues given with --queues. SIGTERM or
    SIGINT stops them gracefully; a second signal hands running jobs back."""
    from conveyor.cli.worker import load_handlers, load_target, run_app, run_workers, serve_metrics, supervise
    from conveyor.errors import ConveyorError
    from conveyor.tasks.app import Conveyor

    start_logs(log_level, log_format)
    try:
        found = load_target(target)
        if isinstance(found, Conveyor):
            found.select_queues(queues)  # unknown queue names fail before any I/O
        elif with_scheduler:
            raise ConveyorError("--scheduler needs a Conveyor app (handlers declare no schedules)")
        else:
            handlers = load_handlers(target, found, queues or [])
        if processes is not None:
            raise typer.Exit(
                supervise(target, found, processes, queues or [], concurrency, with_scheduler, metrics_port)
            )
        metrics = serve_metrics(metrics_port)
    except ConveyorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if isinstance(found, Conveyor):
        found.use(*metrics)
        run_loop(run_app(found, queues or [], concurrency, with_scheduler))
    else:
        run_loop(run_workers(handlers, concurrency or 10, metrics))


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address of the API and dashboard.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and dashboard.")] = 8000,
    processes: Annotated[
        str | None,
        typer.Option(
            metavar="N|auto", help="Run the workers in N processes of their own (auto: one per core)."
        ),
    ] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Everything in one command: a private Redis (unless REDIS_URL/REDIS_HOST
    is set), workers, the scheduler, the API and dashboard, and a demo
    workload. Prints the dashboard URL; Ctrl-C stops it all. Logs at
    warning unless told otherwise (info: a line per step of every job)."""
    from conveyor.extras import SERVER

    SERVER.require("conveyor up")
    from conveyor.cli.supervisor import process_count
    from conveyor.cli.up import up as run_up

    # the demo's console shows its address and what it does: job steps only when asked
    start_logs(log_level or os.environ.get("CONVEYOR_LOG_LEVEL") or "warning", log_format)
    run_up(host, port, process_count(processes) if processes is not None else None)


@app.command()
def archive(
    database: Annotated[
        str,
        typer.Argument(
            metavar="DATABASE_URL",
            help="SQLAlchemy URL with an async driver (sqlite+aiosqlite:///jobs.db, postgresql+asyncpg://...).",
        ),
    ],
    queues: Annotated[
        list[str] | None, typer.Option("--queues", "-q", help="Only these queues (default: every queue).")
    ] = None,
    create_tables: Annotated[
        bool, typer.Option("--create-tables", help="Create the archive's tables where they are missing.")
    ] = False,
    burst: Annotated[
        bool, typer.Option("--burst", help="Archive what has finished so far, then exit.")
    ] = False,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Archive every finished job of the queues to SQL (queue_jobs, and
    cron_logs and cron_metrics for schedule runs), in a process of its own.
    Resumes where it left off; SIGTERM or SIGINT stops it after the batch
    being written. Needs conveyor[sql] and the database's async driver."""
    from conveyor.extras import SQL

    SQL.require("conveyor archive")
    from conveyor.cli.archive import run_archive
    from conveyor.errors import ConveyorError

    start_logs(log_level, log_format)
    try:
        done = run_loop(run_archive(database, queues or [], create_tables=create_tables, burst=burst))
    except ConveyorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    stats = done.stats
    typer.echo(f"archived {stats.jobs} jobs and {stats.cron_runs} schedule runs in {stats.batches} batches")
    if stats.missed:
        typer.echo(f"warning: {stats.missed} events were dropped before they were read", err=True)


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
    target: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="APP",
            help="module:attribute of a Conveyor app: jobs added to its queues are checked by its tasks.",
        ),
    ] = None,
    events_url: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_EVENTS_URL",
            help="Redis URL of the event streams, when they live apart from the queues.",
        ),
    ] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Serve the HTTP API (token from CONVEYOR_API_TOKEN)."""
    from conveyor.extras import SERVER

    SERVER.require("conveyor serve")
    import uvicorn

    from conveyor.cli.worker import load_app
    from conveyor.collector import tune_collector
    from conveyor.server import create_app
    from conveyor.server.auth import warn_if_open
    from conveyor.server.hosting import Server

    level = start_logs(log_level, log_format)
    tasks = load_app(target) if target is not None else None
    api = create_app(streams=stream or (), tasks=tasks, events_redis=events_url)
    warn_if_open(host, api.state.conveyor.token)
    tune_collector()
    # uvicorn's own lines (access log included) go through the same handler
    Server(uvicorn.Config(api, host=host, port=port, log_level=level, log_config=None)).run()


@app.command()
def scheduler(
    queues: Annotated[
        list[str] | None, typer.Argument(help="Queues whose schedules to fire (default: the app's).")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--app", metavar="APP", help="module:attribute of a Conveyor app.")
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks for new schedules.")] = 1.0,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Fire the schedules of the given queues, or of an app's queues with
    --app (writing the app's declared schedules first), until SIGTERM or
    SIGINT. Run as many as you like: each tick is enqueued once."""
    from conveyor import Queue, Scheduler, connect
    from conveyor.cli.worker import load_app
    from conveyor.engine.signals import stop_on_signals
    from conveyor.errors import ConveyorError
    from conveyor.tasks.app import Conveyor

    start_logs(log_level, log_format)
    found: Conveyor | None = None
    try:
        if target is not None:
            found = load_app(target)
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

        async def close() -> None:
            runner.close()

        stop_on_signals(close)
        typer.echo(f"scheduler running for {', '.join(queues or [])}")
        try:
            await runner.run()
        finally:
            await redis.aclose()

    run_loop(go())


def main() -> None:
    import sys

    from conveyor.cli.failures import guarded

    sys.argv[1:] = lift_redis_url(sys.argv[1:])
    guarded(app)
