"""Redis's work per job counted in instructions: runs a private
redis-server under valgrind's callgrind and reports the instructions it
executed per job while a worker drains bulk-added no-op jobs, and per
one-by-one add. Unlike time, the count hardly moves from run to run or
hour to hour, so a change to a script can be weighed by one run of each
build (drain batches follow timing, so expect a few hundred either way).

    python bench/redis_instructions.py [--jobs 4000] [--only drain,add,single]

single: one job at a time through an idle worker (add, the claim riding
behind the worker's blocking pop, the finish), the latency benchmark's
path; counted per job.

Needs valgrind (``apt install valgrind``); Redis runs some 50 times
slower under it, hence the small default count.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis as sync_redis

from conveyor import JobContext, Queue, Worker, connect
from conveyor.engine.client.command import COMMANDS


async def _noop(job: JobContext) -> None:
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], capture_output=True, check=False)


def _counted(pid: int, out: str) -> int:
    """Dumps the counts since the last zeroing; the instructions executed."""
    for old in glob.glob(f"{out}.*"):
        os.remove(old)
    _control(pid, "-d")
    for dump in glob.glob(f"{out}.*"):
        with open(dump) as f:
            for line in f:
                if line.startswith("summary:"):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no dump")


async def _measure(url: str, pid: int, out: str, what: str, n: int) -> float:
    redis = connect(url)
    queue = Queue("bench-instructions", redis)
    # scripts loaded and caches warm before counting
    await queue.add_bulk([("noop", i) for i in range(10)])
    await Worker(queue, _noop, concurrency=100).run(burst=True)
    for name in COMMANDS:
        await redis.script_load(COMMANDS[name].source)
    if what == "drain":
        for i in range(0, n, 10_000):
            await queue.add_bulk([("noop", j) for j in range(i, min(n, i + 10_000))])
        _control(pid, "-z")
        await Worker(queue, _noop, concurrency=100).run(burst=True)
    elif what == "single":
        await _one_at_a_time(queue, pid, n)
    else:
        _control(pid, "-z")
        for i in range(n):
            await queue.add("email", {"to": f"user{i}@example.com"})
    used = _counted(pid, out)
    await queue.obliterate(force=True)
    await redis.aclose()
    return used / n


async def _one_at_a_time(queue: Queue, pid: int, n: int) -> None:
    """Adds a job, waits for an idle worker to run it, and so on: the
    path of the latency benchmark (an add, the claim riding behind the
    worker's blocking pop, the finish)."""
    ran = asyncio.Event()

    async def handler(job: JobContext) -> None:
        ran.set()

    worker = Worker(queue, handler, concurrency=50)
    task = asyncio.create_task(worker.run())
    for counting in (False, True):
        if counting:
            await asyncio.sleep(0.5)  # the last finish written
            _control(pid, "-z")
        for i in range(n if counting else 20):
            ran.clear()
            await queue.add("tick", {"i": i})
            await ran.wait()
            await asyncio.sleep(0.002)  # the finish written, the next block begun
    await worker.close()
    await task


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--only", default="drain,add")
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "redis-server"]
        cmd += ["--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client: Any = sync_redis.Redis(port=port)
            for _ in range(300):
                try:
                    client.ping()
                    break
                except sync_redis.ConnectionError:
                    time.sleep(0.1)
            url = f"redis://127.0.0.1:{port}/0"
            for what in args.only.split(","):
                n = {"drain": args.jobs, "single": max(1, args.jobs // 8)}.get(what, max(1, args.jobs // 2))
                per_job = asyncio.run(_measure(url, server.pid, out, what, n))
                label = {"drain": "drain (claim + finish)", "single": "one at a time, idle worker"}.get(
                    what, "add, one by one"
                )
                print(f"{label:<24} {per_job:>10,.0f} instructions per job in redis-server")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
