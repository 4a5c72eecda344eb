"""Live streams benchmark: many Server-Sent Events clients on one API process.

    python bench/sse_fanout.py [--clients 1000] [--rate 20] [--seconds 10]

Runs, each in its own process: a private redis-server, the API
(``conveyor serve``, one uvicorn process), and the clients: ``--clients``
connections to one queue's ``/api/queues/{name}/events``, each parsing
its own stream. This process adds ``--rate`` jobs a second for
``--seconds`` (each add is one ``added`` event every client must receive),
and meanwhile calls ``GET /health`` and ``GET /api/queues`` ten times a
second each, so that the API's latency is measured while it streams.

It reports whether every client got every event, in order; the delay from
an event's time to its arrival at a client; the API's latency; the
server's CPU, memory and Redis connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

from conveyor import Queue
from conveyor.engine.client.connection import connect
from conveyor.testing import RedisServer, free_port
from lean import LeanClient, pct, wait_http

ID = re.compile(rb"\bid: (\d+)")
TIME = re.compile(rb'"time":"([^"]+)"')


def more_files() -> None:
    """A thousand sockets need more descriptors than a default soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


# -- the clients (a process of their own) ------------------------------------


async def follow(
    port: int,
    path: str,
    expected: int,
    connected: list[int],
    everyone: asyncio.Event,
    clients: int,
    timed: bool,
) -> dict[str, object]:
    """One client: its stream's event ids in order, and (``timed``) each
    event's lag."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    connected.append(status)
    if len(connected) == clients:
        everyone.set()
    ids: list[int] = []
    lags: list[int] = []
    buffer = b""
    try:
        while len(ids) < expected:
            chunk = await reader.read(65536)
            if not chunk:
                break
            now = time.time() * 1000
            buffer += chunk
            complete, _, buffer = buffer.rpartition(b"\r\n\r\n")
            ids += [int(i) for i in ID.findall(complete)]
            lags += [
                int(now - datetime.fromisoformat(t.decode()).timestamp() * 1000)
                for t in TIME.findall(complete)
            ]
    finally:
        writer.close()
    return {"ids": ids, "lags": lags}


async def clients(args: argparse.Namespace) -> None:
    path = f"/api/queues/{args.queue}/events"
    connected: list[int] = []
    everyone = asyncio.Event()
    began = time.perf_counter()
    tasks = [
        asyncio.create_task(
            follow(args.port, path, args.expected, connected, everyone, args.clients, i % 10 == 0)
        )
        for i in range(args.clients)
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everyone.wait(), 120)
    print(json.dumps({"ready": len(connected), "seconds": time.perf_counter() - began}), flush=True)
    done, pending = await asyncio.wait(tasks, timeout=args.seconds + 60)
    for task in pending:
        task.cancel()
    results = [t.result() for t in done if t.exception() is None]
    complete = sum(1 for r in results if len(r["ids"]) == args.expected)  # type: ignore[arg-type]
    in_order = sum(1 for r in results if r["ids"] == sorted(set(r["ids"])))  # type: ignore[arg-type]
    lags = [lag for r in results for lag in r["lags"]]  # type: ignore[attr-defined]
    summary = {
        "statuses": sorted(set(connected)),
        "complete": complete,
        "in_order": in_order,
        "errors": sum(1 for t in done if t.exception() is not None) + len(pending),
        "events": max((len(r["ids"]) for r in results), default=0),  # type: ignore[arg-type]
        "lag": [pct(lags, 0.5), pct(lags, 0.99), max(lags, default=0)],
    }
    summary["cpu"] = time.process_time()
    print(json.dumps(summary), flush=True)


# -- the load and the measures (this process) --------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def connections(queue: Queue) -> tuple[int, int]:
    """Connections to Redis besides this process's one, and those blocked
    in a read (a live feed's XREAD)."""
    listed = await queue.redis.client_list()
    return len(listed) - 1, sum(1 for c in listed if "b" in c.get("flags", ""))


async def probe(
    lean: LeanClient, path: str, latencies: list[float], statuses: list[int], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        began = time.perf_counter()
        try:
            status, _ = await lean.request("GET", path)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        latencies.append((time.perf_counter() - began) * 1000)
        statuses.append(status)
        await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    name = f"live-{uuid.uuid4().hex[:6]}"
    with RedisServer() as redis_server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "REDIS_"))}
        env["REDIS_URL"] = redis_server.url
        server = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "conveyor"),
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=more_files,
        )
        redis = connect(redis_server.url)
        try:
            await wait_http(f"http://127.0.0.1:{port}/health")
            queue = Queue(name, redis)
            await queue.register()
            await measure(args, port, server.pid, queue, redis_server.url)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
            await redis.aclose()


async def measure(args: argparse.Namespace, port: int, pid: int, queue: Queue, url: str) -> None:
    expected = int(args.rate * args.seconds)
    command = [sys.executable, __file__, "--role", "clients", "--port", str(port), "--queue", queue.name]
    command += ["--clients", str(args.clients), "--expected", str(expected), "--seconds", str(args.seconds)]
    idle = await connections(queue)
    followers = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    assert followers.stdout is not None
    ready = json.loads(await asyncio.wait_for(followers.stdout.readline(), 120))
    held = await connections(queue)

    stop = asyncio.Event()
    lean = LeanClient("127.0.0.1", port, {})
    measures: dict[str, tuple[list[float], list[int]]] = {"/health": ([], []), "/api/queues": ([], [])}
    probes = [asyncio.create_task(probe(lean, path, *measures[path], stop)) for path in measures]
    cpu_before, began = cpu_seconds(pid), time.perf_counter()
    for i in range(expected):
        await asyncio.sleep(max(0.0, began + i / args.rate - time.perf_counter()))
        await queue.add("tick", i)
    summary = json.loads(await asyncio.wait_for(followers.stdout.readline(), args.seconds + 90))
    elapsed, cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu_before
    stop.set()
    await asyncio.gather(*probes)
    lean.close()
    await followers.wait()

    print(f"\n## Live streams: {args.clients} SSE clients on one API process, {expected} events")
    print(f"({args.rate:g} jobs added a second for {args.seconds:g} s; Redis {url.split('@')[-1]})\n")
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| clients connected (status {summary['statuses']}) | {ready['ready']} in {ready['seconds']:.1f} s |"
    )
    print(f"| clients that got all {expected} events, in order | {summary['complete']} / {args.clients} |")
    print(f"| clients whose events arrived in order | {summary['in_order']} / {args.clients} |")
    print(f"| clients that failed | {summary['errors']} |")
    lag = summary["lag"]
    print(
        f"| event time → client (1 in 10 clients), p50 / p99 / max | "
        f"{lag[0]:.0f} / {lag[1]:.0f} / {lag[2]:.0f} ms |"
    )
    for path, (latencies, statuses) in measures.items():
        bad = sum(1 for s in statuses if s != 200)
        print(
            f"| GET {path} p50 / p95 / p99 / max ({len(statuses)} calls, {bad} not 200) | "
            f"{pct(latencies, 0.5):.1f} / {pct(latencies, 0.95):.1f} / {pct(latencies, 0.99):.1f} / "
            f"{max(latencies):.1f} ms |"
        )
    print(
        f"| server CPU while streaming | {cpu:.1f} s in {elapsed:.1f} s "
        f"({100 * cpu / elapsed:.0f}% of a core) |"
    )
    print(f"| server memory (RSS) | {rss_mb(pid):.0f} MB |")
    print(f"| the clients' process: CPU from start to end | {summary['cpu']:.1f} s |")
    print(
        f"| Redis connections open (in a blocking read), server idle → with {args.clients} clients | "
        f"{idle[0]} ({idle[1]}) → {held[0]} ({held[1]}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--role", choices=["load", "clients"], default="load", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    more_files()
    asyncio.run(clients(args) if args.role == "clients" else run(args))


if __name__ == "__main__":
    main()
