"""``conveyor worker --processes N``: one worker process per core. A
supervisor starts N children, each a ``conveyor worker`` of its own (its
own event loop, connections and worker registration), and keeps them
running:

- a child that exits is started again, at once after a healthy run, and
  after a growing delay while it keeps dying young (0.5 s, 1 s, 2 s...
  up to 30 s), so a child that crashes at start does not spin; the jobs of
  a child that died come back to waiting when their leases run out;
- SIGTERM or SIGINT stops every child gracefully (each finishes its
  running jobs within its shutdown grace); a second signal has each hand
  its running jobs back to waiting at once; a child still running past
  the grace is killed;
- the children run in sessions of their own, so Ctrl-C in a terminal
  reaches them once, through the supervisor; a child whose supervisor is
  gone (killed) stops by itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from conveyor.engine.signals import stop_on_signals
from conveyor.errors import InvalidArgument

#: Set in a child's environment: the supervisor's pid, and the child's number.
SUPERVISOR_PID = "CONVEYOR_SUPERVISOR_PID"
CHILD_INDEX = "CONVEYOR_WORKER_INDEX"


def process_count(value: str) -> int:
    """``--processes``: a count of 1 or more, or ``auto`` for the cores
    this process may run on."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise InvalidArgument(f"--processes takes a count of 1 or more, or 'auto', not {value!r}")
    return int(value)


@dataclass(frozen=True)
class Restarts:
    """When a child that exited is started again: after ``first`` seconds,
    doubled for each further exit within ``healthy_after`` seconds of its
    start, up to ``most``; a child that ran ``healthy_after`` seconds or
    more starts the count again."""

    first: float = 0.5
    most: float = 30.0
    healthy_after: float = 10.0

    def delay(self, young_exits: int) -> float:
        return float(min(self.most, self.first * 2 ** max(0, young_exits - 1)))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Keeps one process running per command in ``commands`` until
    :meth:`close`. ``stop_within``: seconds a child may take to stop
    gracefully before it is killed; ``env``: what the children's
    environment has besides this process's."""

    def __init__(
        self,
        commands: list[list[str]],
        *,
        stop_within: float,
        restarts: Restarts | None = None,
        env: Mapping[str, str] | None = None,
        say: Callable[[str], object] = print,
    ) -> None:
        self.commands = commands
        self.env = {**os.environ, **(env or {})}
        self.stop_within = stop_within
        self.restarts = restarts or Restarts()
        self.say = say
        self.children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._killer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Runs the children until :meth:`close` and every child has
        exited."""
        try:
            async with asyncio.TaskGroup() as group:
                for index, command in enumerate(self.commands):
                    group.create_task(self._keep(index, command))
        finally:
            self._signal_all(signal.SIGTERM)  # only if it failed: none is left otherwise
            if self._killer is not None:
                self._killer.cancel()

    def install_signal_handlers(self) -> None:
        """SIGTERM or SIGINT closes; a second one hands the jobs back."""
        stop_on_signals(self.close, self.hand_back)

    async def close(self) -> None:
        """Asks every child to stop gracefully; kills those still running
        after ``stop_within`` seconds."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.say(f"stopping {len(self.children)} worker process(es)")
        self._signal_all(signal.SIGTERM)
        self._killer = asyncio.get_running_loop().call_later(self.stop_within, self._kill_all)

    def hand_back(self) -> None:
        """A second signal to every child: each hands its running jobs back
        to waiting and exits. It is SIGINT after close's SIGTERM: a second
        SIGTERM sent before the child took the first would merge with it."""
        self._signal_all(signal.SIGINT)

    def _kill_all(self) -> None:
        for index, child in self.children.items():
            if child.returncode is None:
                self.say(
                    f"worker process {index} (pid {child.pid}) did not stop within {self.stop_within:g} s; "
                    "killing it (its jobs go back to waiting when their leases run out)"
                )
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, sig: signal.Signals) -> None:
        for child in list(self.children.values()):
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(sig)

    async def _keep(self, index: int, command: list[str]) -> None:
        loop = asyncio.get_running_loop()
        young_exits = 0
        env = {**self.env, SUPERVISOR_PID: str(os.getpid()), CHILD_INDEX: str(index)}
        while not self._stopping.is_set():
            started = loop.time()
            child = await asyncio.create_subprocess_exec(*command, env=env, start_new_session=True)
            self.children[index] = child
            self.say(f"worker process {index} started (pid {child.pid})")
            if self._stopping.is_set():  # closed while it started: the close did not reach it
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
            code = await child.wait()
            del self.children[index]
            if self._stopping.is_set():
                return
            ran = loop.time() - started
            young_exits = young_exits + 1 if ran < self.restarts.healthy_after else 1
            delay = self.restarts.delay(young_exits)
            self.say(
                f"worker process {index} (pid {child.pid}) {describe_exit(code)} after {ran:.1f} s; "
                f"starting it again in {delay:g} s"
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()


def child_command(target: str, options: list[str]) -> list[str]:
    """The command line of one child: this Python running ``conveyor
    worker`` on ``target`` with ``options``."""
    return [sys.executable, "-m", "conveyor", "worker", target, *options]


async def watch_supervisor(close: Callable[[], object], interval: float = 0.5) -> None:
    """In a child: calls ``close`` once the supervisor that started it is
    gone (killed: it could not stop its children itself)."""
    supervisor = os.environ.get(SUPERVISOR_PID)
    if not supervisor:
        return
    while True:  # no event tells a process its parent died: look
        await asyncio.sleep(interval)
        if os.getppid() != int(supervisor):
            break
    print("the supervisor is gone; stopping", file=sys.stderr, flush=True)
    result = close()
    if asyncio.iscoroutine(result):
        await result
