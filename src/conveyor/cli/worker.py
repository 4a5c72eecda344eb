"""``conveyor worker APP``: runs workers for what an app module exports.
APP is ``module:attribute``; the attribute is a :class:`Conveyor` app, a
mapping of queue names to handlers, or one handler for the queues named
with ``--queues``."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor import __version__
from conveyor.cli.loop import loop_name
from conveyor.cli.supervisor import Supervisor, child_command, process_count, watch_supervisor
from conveyor.engine.client.connection import connect
from conveyor.engine.client.errors import describe
from conveyor.engine.middleware import Middleware
from conveyor.engine.queue import Queue
from conveyor.engine.signals import stop_on_signals
from conveyor.engine.worker import Worker
from conveyor.errors import ConveyorError
from conveyor.tasks.app import Conveyor

log = logging.getLogger(__name__)
#: Seconds past a worker's shutdown grace its process may take to stop
#: before its supervisor kills it.
STOP_MARGIN = 15.0
#: Seconds the workers of plain handlers may finish their running jobs in
#: when asked to stop.
HANDLERS_GRACE = 30.0


def load_target(target: str) -> Any:
    """The object ``module:attribute`` names (the module found from the
    current directory too); raises ConveyorError with what is wrong."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConveyorError(f"APP must look like module:attribute, not {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConveyorError(f"cannot load {target!r}: {exc}") from None
    return found


def load_app(target: str) -> Conveyor:
    """The Conveyor app ``module:attribute`` names; raises ConveyorError."""
    found = load_target(target)
    if not isinstance(found, Conveyor):
        raise ConveyorError(f"{target} is not a Conveyor app")
    return found


def load_handlers(target: str, found: Any, queues: list[str]) -> dict[str, Callable[..., Any]]:
    """The handler of each queue, from a mapping or one handler; raises
    ConveyorError with what is wrong."""
    if isinstance(found, Mapping):
        handlers = {str(name): handler for name, handler in found.items()}
        if queues:
            unknown = sorted(set(queues) - set(handlers))
            if unknown:
                raise ConveyorError(f"{target} has no handler for queue(s) {', '.join(unknown)}")
            handlers = {name: handlers[name] for name in queues}
    elif callable(found):
        if not queues:
            raise ConveyorError(f"{target} is one handler: name its queues with --queues")
        handlers = dict.fromkeys(queues, found)
    else:
        raise ConveyorError(
            f"{target} is neither a Conveyor app, a handler nor a mapping of queues to handlers"
        )
    for name, handler in handlers.items():
        if not callable(handler):
            raise ConveyorError(f"the handler of queue {name!r} is not callable")
    return handlers


def check_port_free(port: int) -> None:
    """ConveyorError when nothing can listen on ``port`` (taken, or out of range)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except (OSError, OverflowError) as exc:
            raise ConveyorError(
                f"cannot serve metrics on port {port}: {getattr(exc, 'strerror', None) or exc}"
            ) from None


def serve_metrics(port: int | None) -> list[Middleware]:
    """With a port: a WorkerMetrics whose ``/metrics`` this process serves
    there, as the middleware list to run with (else none)."""
    if port is None:
        return []
    from conveyor.prometheus import WorkerMetrics

    metrics = WorkerMetrics()
    try:
        metrics.serve(port)
    except OSError as exc:
        raise ConveyorError(f"cannot serve metrics on port {port}: {exc.strerror or exc}") from None
    log.info(
        "worker metrics on http://0.0.0.0:%d/metrics", port, extra={"event": "metrics_served", "port": port}
    )
    return [metrics]


async def run_app(app: Conveyor, queues: list[str], concurrency: int | None, scheduler: bool) -> None:
    """Works an app's queues (and fires its schedules, with ``scheduler``)
    until SIGTERM or SIGINT (a second one hands running jobs back at once)."""
    stop_on_signals(app.close, app.hand_back_all)
    names = queues or list(app.queues)
    extra = " and their schedules" if scheduler else ""
    announce(
        names,
        describe(app.redis),
        f"{extra} (concurrency per queue: the app's)"
        if not concurrency
        else f"{extra} ({concurrency} at a time each)",
    )
    watch = asyncio.create_task(watch_supervisor(app.close))
    try:
        await app.run_worker(names, concurrency=concurrency, scheduler=scheduler)
    finally:
        watch.cancel()
        await app.aclose()


async def run_workers(
    handlers: dict[str, Callable[..., Any]], concurrency: int, middleware: Sequence[Middleware] = ()
) -> None:
    """Works the queues until SIGTERM or SIGINT (a second one hands running
    jobs back at once)."""
    redis = connect()
    try:
        workers = [
            Worker(
                Queue(name, redis),
                handler,
                concurrency=concurrency,
                shutdown_grace=HANDLERS_GRACE,
                middleware=middleware,
            )
            for name, handler in handlers.items()
        ]

        async def close() -> None:
            await asyncio.gather(*(w.close() for w in workers))

        def hand_back() -> None:
            for w in workers:
                w.hand_back_all()

        stop_on_signals(close, hand_back)
        announce(list(handlers), describe(redis), f" ({concurrency} at a time each)")
        watch = asyncio.create_task(watch_supervisor(close))
        try:
            await asyncio.gather(*(worker.run() for worker in workers))
        finally:
            watch.cancel()
    finally:
        await redis.aclose()
    exit_if_hung(workers)


def exit_if_hung(workers: list[Worker]) -> None:
    """A handler thread that outlived the shutdown cannot be stopped, and
    would keep the process (and its jobs' leases) alive: exit at once, so
    that its jobs come back to another worker after their lease."""
    hung = sum(w.hung_threads for w in workers)
    if hung:
        log.error(
            "%d handler thread(s) still running after the shutdown grace; exiting without them "
            "(their jobs go back to waiting when their lease runs out)",
            hung,
            extra={"event": "hung_threads", "count": hung},
        )
        logging.shutdown()
        os._exit(0)


def announce(queues: list[str], redis: str, detail: str) -> None:
    """The start-up line: what this process works, on which Redis (never
    its password), and Conveyor's version."""
    kind = loop_name()
    log.info(
        "Conveyor %s working %s%s, Redis at %s, on %s",
        __version__,
        ", ".join(queues),
        detail,
        redis,
        kind,
        extra={
            "event": "process_started",
            "queues": queues,
            "redis": redis,
            "version": __version__,
            "pid": os.getpid(),
            "loop": kind,
        },
    )


def supervise(
    target: str,
    found: Any,
    processes: str,
    queues: list[str],
    concurrency: int | None,
    scheduler: bool,
    metrics_port: int | None = None,
) -> int:
    """Runs ``processes`` worker processes on ``target`` (already loaded as
    ``found``, so a bad one fails here, once) until SIGTERM or SIGINT; the
    schedules, with ``scheduler``, are fired by the first process only;
    with ``metrics_port``, process N serves its metrics on that port + N."""
    count = process_count(processes)
    if metrics_port is not None:
        for port in range(metrics_port, metrics_port + count):
            check_port_free(port)  # before any child starts, not in a restart loop
    options = [f"--queues={name}" for name in queues]
    if concurrency is not None:
        options.append(f"--concurrency={concurrency}")

    def own(index: int) -> list[str]:
        extra = ["--scheduler"] if scheduler and index == 0 else []
        if metrics_port is not None:
            extra.append(f"--metrics-port={metrics_port + index}")
        return extra

    commands = [child_command(target, [*options, *own(index)]) for index in range(count)]
    if isinstance(found, Conveyor):
        grace = max((q.worker_settings.shutdown_grace for q in found.select_queues(queues)), default=0.0)
    else:
        grace = HANDLERS_GRACE
    supervisor = Supervisor(commands, stop_within=grace + STOP_MARGIN, say=log.info)
    log.info(
        "supervising %d worker process(es) of %s",
        count,
        target,
        extra={"event": "supervisor_started", "processes": count},
    )

    async def main() -> None:
        supervisor.install_signal_handlers()
        await supervisor.run()

    asyncio.run(main())
    log.info("all worker processes stopped", extra={"event": "supervisor_stopped"})
    return 0
