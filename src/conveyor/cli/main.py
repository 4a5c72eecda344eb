"""Entry point of the ``conveyor`` command."""

from __future__ import annotations

import asyncio

import typer

from conveyor import __version__

app = typer.Typer(help="Conveyor: background jobs on Redis.", no_args_is_help=True)


@app.command()
def demo() -> None:
    """Run a short demo workload (starts a private Redis unless REDIS_URL/REDIS_HOST is set)."""
    from conveyor.cli.demo import run_demo

    run_demo()


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def check() -> None:
    """Check that Redis answers (REDIS_URL or REDIS_HOST...)."""
    from conveyor import ConnectionFailed, connect, ping

    async def go() -> float:
        redis = connect()
        try:
            return await ping(redis)
        finally:
            await redis.aclose()

    try:
        latency = asyncio.run(go())
    except ConnectionFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Redis OK ({latency * 1000:.2f} ms)")


def main() -> None:
    app()
