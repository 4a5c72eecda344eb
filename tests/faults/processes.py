"""Starting the test processes (a worker, an event consumer) and watching
their side effects: each process script prints ``ready`` once it runs and
records every run of a job or event in a ledger hash."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

from conveyor import ConnectionFailed, JobState, NotReplicated, Queue
from polling import wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def spawn(
    script: str, *args: str, output: bool = False, skew: float = 0.0, books: str | None = None
) -> subprocess.Popen[str]:
    """Runs ``tests/faults/<script>`` with ``args`` and waits until it is
    ready; with ``output``, what it prints after that stays readable. With
    ``skew``, the process's wall clock runs that many seconds off
    (``fault_clock``). ``books``: the URL of the Redis that keeps the
    ledger, when it is not the queue's own (a failover must not lose it)."""
    # tests/ too: the scripts import their helpers as faults.*
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    env = {**os.environ, "PYTHONPATH": path, "FAULT_CLOCK_SKEW": str(skew)}
    if books:
        env["FAULT_BOOKS_URL"] = books
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    if not output:
        proc.stdout.close()
    assert ready == "ready"
    return proc


def spawn_worker(
    url: str,
    queue: str,
    sleep: float,
    concurrency: int,
    lock: float,
    *,
    max_stalled: int = 1,
    skew: float = 0.0,
    books: str | None = None,
) -> subprocess.Popen[str]:
    args = (url, queue, str(sleep), str(concurrency), str(lock), str(max_stalled))
    return spawn("worker_proc.py", *args, skew=skew, books=books)


def spawn_consumer(
    url: str,
    stream: str,
    group: str,
    name: str,
    *,
    sleep: float = 0.0,
    max_deliveries: int = 5,
    burst: bool = False,
) -> subprocess.Popen[str]:
    mode = "burst" if burst else "run"
    return spawn("consumer_proc.py", url, stream, group, name, str(sleep), str(max_deliveries), mode)


def dump_path(pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"conveyor-fault-tasks-{pid}.txt"


def dump_tasks_on_signal() -> None:
    """In a test process: SIGUSR1 writes the stack of every asyncio task and
    thread to :func:`dump_path` (what a process that will not stop waits on)."""
    loop = asyncio.get_running_loop()

    def dump() -> None:
        with dump_path(os.getpid()).open("w") as out:
            for task in asyncio.all_tasks(loop):
                print(f"--- {task!r}", file=out)
                task.print_stack(file=out)
            for thread_id, frame in sys._current_frames().items():
                print(f"--- thread {thread_id}", file=out)
                traceback.print_stack(frame, file=out)

    loop.add_signal_handler(signal.SIGUSR1, dump)


def stop_gracefully(*procs: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM to every process, then each must exit 0 within ``timeout``.
    One that does not is killed, and the failure shows what it waited on."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            dump = dump_path(proc.pid)
            stacks = dump.read_text() if dump.exists() else "(no task dump)"
            dump.unlink(missing_ok=True)
            for other in procs:
                other.kill()
                other.wait()
            raise AssertionError(
                f"process {proc.args!r} did not stop in {timeout} s; it waited on:\n{stacks}"
            ) from None
        assert code == 0


async def ledger(redis: aredis.Redis, name: str) -> dict[str, int]:
    """How many times each job or event id of queue or stream ``name`` ran
    (the ledger has one field per run: the id, a space, the run's token)."""
    runs: dict[str, int] = {}
    fields: Any = await redis.hkeys(f"ledger:{name}")
    for field in fields:
        item = field.decode().rsplit(" ", 1)[0]
        runs[item] = runs.get(item, 0) + 1
    return runs


async def spans(redis: aredis.Redis, name: str) -> dict[str, list[tuple[float, float]]]:
    """Each job's runs that ended (not cancelled or killed): (start, end).
    A row seen twice is one run whose RPUSH was sent again after its reply
    was lost (Redis killed under it), not two runs: it counts once."""
    out: dict[str, list[tuple[float, float]]] = {}
    rows: Any = await redis.lrange(f"spans:{name}", 0, -1)
    for row in dict.fromkeys(rows):
        job_id, start, end, _pid = row.decode().split(" ")
        out.setdefault(job_id, []).append((float(start), float(end)))
    return out


async def starts(redis: aredis.Redis, name: str) -> list[tuple[float, int, str]]:
    """Every handler start of queue ``name``: (time, jobs of the queue
    running with it, job id), in the order recorded."""
    out = []
    recorded: Any = await redis.lrange(f"starts:{name}", 0, -1)
    for row in recorded:
        at, running, job_id = row.decode().split(" ", 2)
        out.append((float(at), int(running), job_id))
    return out


async def completions(redis: aredis.Redis, queue: str) -> dict[str, int]:
    """How many completions of each job the queue accepted, from its event
    stream (each accepted completion emits one ``completed`` event)."""
    return await event_counts(redis, queue, "completed")


async def event_counts(redis: aredis.Redis, queue: str, event: str) -> dict[str, int]:
    """How many ``event`` events (``completed``, ``stalled``...) each job of
    the queue had, from its event stream."""
    counts: dict[str, int] = {}
    key = Queue(queue, redis).keys.events
    last = "-"
    while True:
        page: Any = await redis.xrange(key, min=last, max="+", count=1000)
        for _, fields in page:
            if fields.get(b"e") == event.encode():
                for job_id in json.loads(fields[b"jobs"]):
                    counts[job_id] = counts.get(job_id, 0) + 1
        if len(page) < 1000:
            return counts
        last = "(" + page[-1][0].decode()


class DurableProducer:
    """Adds jobs ``job-0``, ``job-1``... to a durable queue until stopped.
    An id is acknowledged (``acked``) once its add returned; an add that
    raised NotReplicated (on the primary, on no replica yet) or met an
    outage is made again under the same id."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.acked: list[str] = []
        self.unconfirmed = 0
        self.outages = 0
        self.stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        self.stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def settle(self, watch: Queue, *, past: int, more: int = 300) -> None:
        """Waits for ``more`` acknowledged adds past the first ``past``,
        stops adding, then waits until every acknowledged job has completed
        and none is active (``watch``: a handle on the queue)."""

        async def confirmed_again() -> bool:
            return len(self.acked) > past + more

        await wait_until(confirmed_again, within=40)
        await self.stop()

        async def all_done() -> bool:
            counts = await watch.counts()
            return counts[JobState.COMPLETED] >= len(self.acked) and counts[JobState.ACTIVE] == 0

        await wait_until(all_done, within=60)

    async def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            try:
                await self.queue.add("j", i, job_id=f"job-{i}")
                self.acked.append(f"job-{i}")
                i += 1
            except NotReplicated:
                self.unconfirmed += 1
                await asyncio.sleep(0.05)
            except ConnectionFailed:
                self.outages += 1
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.002)
