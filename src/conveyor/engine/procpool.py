"""Handlers in other processes (``executor="process"``): a pool of spawned
processes, each running one job at a time, talking JSON over a pipe.

A pool process that dies (``os._exit``, a signal, the OOM killer) fails
only the job it was running, with the exit code or signal as the cause,
and is replaced for the next job. A call that is cancelled (the job's
timeout, an operator's cancel, a shutdown) kills its process, since a
process, unlike a thread, can be stopped.

Only JSON crosses the pipe, in both directions: ``send_bytes`` and
``recv_bytes`` move raw bytes, never pickles of job data or results. A
call is a dialogue: the parent sends the job, the handler may ask the
parent to report progress or log lines (each a request and its answer),
and its ending comes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import signal
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from conveyor.engine.codec import dumps, loads
from conveyor.errors import (
    ConveyorError,
    Discard,
    HandlerSignal,
    InvalidArgument,
    PayloadError,
    RateLimited,
    Retry,
    StaleLease,
)

if TYPE_CHECKING:
    from conveyor.engine.children import Children

_SPAWN = multiprocessing.get_context("spawn")

#: The pipe to the parent, in a pool process.
_parent: Connection | None = None
_asking = threading.Lock()

#: Answers a pool process's request about its job (see ProcessJob).
Serve = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class HandlerFailed(Exception):
    """Internal: a handler running in a pool process raised (its text is
    the original ``Type: message``)."""

    remote_traceback: str | None = None


class ChildDied(HandlerFailed):
    """Internal: the pool process running a job died before it answered."""

    remote_traceback = ""


@dataclass(slots=True)
class ProcessJob:
    """What a handler running in a process pool receives. Its reports go
    through the worker, which holds the job's lease: each call blocks until
    the worker has stored it, and raises StaleLease when another worker has
    taken the job over."""

    id: str
    name: str
    data: Any
    attempt: int
    queue: str
    attempts: int = 1
    fence: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)

    def update_progress(self, progress: Any) -> None:
        """Stores the job's progress (any JSON value)."""
        _ask({"op": "progress", "value": progress})

    def log(self, *lines: str) -> None:
        """Appends lines to the job's log."""
        _ask({"op": "log", "lines": list(lines)})

    def children(self) -> Children:
        """For a flow's parent: its children's results, keyed by job id."""
        from conveyor.engine.children import Children

        got = _ask({"op": "children"})
        return Children(got["results"], got["failures"], got["pending"])


def _ask(request: dict[str, Any]) -> Any:
    """Sends ``request`` to the parent and returns its answer (raising the
    error it reports)."""
    if _parent is None:
        raise RuntimeError("a ProcessJob reports only while its worker runs it")
    with _asking:  # one request at a time on the pipe, whatever thread asks
        _parent.send_bytes(dumps(request))
        answer = loads(_parent.recv_bytes())
    if "error" in answer:
        if answer["error"] == "StaleLease":
            raise StaleLease(answer["message"])
        raise PayloadError(answer["message"])
    return answer.get("ok")


async def serve_job(job: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The worker's answer to a pool process's request about ``job`` (its
    JobContext): the report made, or the error it raised."""
    try:
        op = request.get("op")
        if op == "progress":
            await job.update_progress(request.get("value"))
        elif op == "log":
            await job.log(*request.get("lines", ()))
        elif op == "children":
            kids = await job.children()
            return {"ok": {"results": kids.results, "failures": kids.failures, "pending": kids.pending}}
        else:
            return {"error": "PayloadError", "message": f"unknown request {op!r}"}
    except ConveyorError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"ok": None}


def death_cause(exitcode: int | None) -> str:
    """``worker process died: ...`` for a pool process's exit code."""
    if exitcode is None:
        return "worker process died (exit status unknown)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process died: killed by {name}"
    return f"worker process died: exit code {exitcode}"


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def process_entry(module: str, qualname: str, ctx_json: bytes) -> bytes:
    """Runs a handler in this (pool) process and encodes how it ended.
    Whatever the handler raises, ``SystemExit`` and ``KeyboardInterrupt``
    included, comes back as its text and traceback."""
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        job = ProcessJob(**loads(ctx_json))
        entry = getattr(target, "run_in_process", None)
        result = entry(job) if entry is not None else target(job)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        try:
            return dumps({"result": result})
        except PayloadError as exc:
            return dumps(
                {"signal": "payload", "message": f"handler result is not JSON: {exc}", "traceback": ""}
            )
    except BaseException as exc:  # every ending is reported; none ends the process
        out: dict[str, Any] = {
            "error": describe_error(exc),
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }
        if isinstance(exc, Discard):
            out["signal"] = "discard"
        elif isinstance(exc, Retry):
            out["signal"], out["delay"] = "retry", exc.delay
        elif isinstance(exc, RateLimited):
            out["signal"], out["delay"] = "limited", exc.retry_after
        return dumps(out)


def from_process(raw: bytes) -> Any:
    """The handler's result, or its exception raised again here."""
    out = loads(raw)
    if "result" in out:
        return out["result"]
    signal_name, message = out.get("signal"), out.get("message", "")
    exc: HandlerFailed | HandlerSignal
    if signal_name == "payload":
        raise PayloadError(message)
    if signal_name == "limited":
        raise RateLimited(out.get("delay") or 0.0)
    if signal_name == "discard":
        exc = Discard(message)
    elif signal_name == "retry":
        exc = Retry(message, delay=out.get("delay"))
    else:
        exc = HandlerFailed(out.get("error", message))
    exc.remote_traceback = out.get("traceback", "")
    raise exc


def _child_main(conn: Connection) -> None:
    """A pool process: runs one call per message until the pipe closes."""
    # Ctrl-C reaches the whole process group: the parent decides what
    # becomes of the job, so the child must not die of it on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _parent
    _parent = conn
    conn.send_bytes(b"ready")
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        call = loads(message)
        conn.send_bytes(process_entry(call["module"], call["qualname"], call["ctx"].encode()))


class _Child:
    __slots__ = ("conn", "proc", "started")

    def __init__(self) -> None:
        self.started = False
        self.conn, theirs = _SPAWN.Pipe(duplex=True)
        self.proc: BaseProcess = _SPAWN.Process(
            target=_child_main, args=(theirs,), name="conveyor-job", daemon=True
        )
        self.proc.start()
        theirs.close()

    async def start(self) -> None:
        """Waits until the process runs and can take a job."""
        if await self._read() != b"ready":
            raise ChildDied("worker process did not start")

    async def call(self, message: bytes, serve: Serve | None) -> bytes:
        """Sends a job and returns its ending, answering the handler's
        requests on the way."""
        self.conn.send_bytes(message)
        while True:
            reply = await self._read()
            if not reply.startswith(b'{"op"'):
                return reply
            request = loads(reply)
            answer = (
                await serve(request) if serve is not None else {"error": "PayloadError", "message": "no job"}
            )
            self.conn.send_bytes(dumps(answer))

    async def _read(self) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            return self.conn.recv_bytes()
        except (EOFError, OSError):
            pass
        # the pipe closed: the process is gone or going
        await asyncio.to_thread(self.proc.join, 5)
        raise ChildDied(death_cause(self.proc.exitcode))

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.kill()
        with contextlib.suppress(OSError):
            self.conn.close()

    def stop(self) -> None:
        """Asks an idle process to leave (it exits when its pipe closes)."""
        with contextlib.suppress(OSError):
            self.conn.close()


class ProcessPool:
    """Up to ``size`` pool processes, started when first needed."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise InvalidArgument("processes must be >= 1")
        self.size = size
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._slots: asyncio.Semaphore | None = None
        #: Pool processes that died while running a job.
        self.deaths = 0
        #: Pool processes killed to stop their job (timeout, cancel, shutdown).
        self.kills = 0

    async def call(
        self, module: str, qualname: str, ctx_json: bytes, limit: float | None, serve: Serve | None = None
    ) -> bytes:
        """Runs ``module.qualname`` on the job in a pool process (``serve``
        answering its requests about the job: progress, log lines); raises
        ChildDied when that process dies first, TimeoutError when it runs
        past ``limit`` seconds (counted from the job's start in the
        process, not from the wait for a free one)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        message = dumps({"module": module, "qualname": qualname, "ctx": ctx_json.decode()})
        async with self._slots:
            child = self._idle.pop() if self._idle else _Child()
            self._busy.add(child)
            answered = False
            try:
                if not child.started:
                    await child.start()
                    child.started = True
                if limit is None:
                    reply = await child.call(message, serve)
                else:
                    try:
                        async with asyncio.timeout(limit):
                            reply = await child.call(message, serve)
                    except TimeoutError:
                        raise TimeoutError(f"job timed out after {limit:g}s") from None
                answered = True
                return reply
            except ChildDied:
                self.deaths += 1
                raise
            finally:
                self._busy.discard(child)
                if answered:
                    self._idle.append(child)
                else:  # cancelled, or dead: never reuse it
                    if child.proc.is_alive():
                        self.kills += 1
                    child.kill()

    def close(self) -> None:
        """Stops every pool process (a running one is killed)."""
        for child in self._idle:
            child.stop()
        for child in self._busy:
            child.kill()
        for child in [*self._idle, *self._busy]:
            child.proc.join(1)
            if child.proc.is_alive():
                child.kill()
        self._idle.clear()
        self._busy.clear()
