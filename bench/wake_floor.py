"""The machine's floor for enqueue-to-start: one process pushes a
timestamp into a list over a raw socket at a steady rate, another is
blocked in ``BLPOP`` on it, and the time from push to receipt is what
two wake-ups (Redis's and the consumer's) and loopback cost with no
engine at all. Compare with ``bench/run.py --only latency``.

    python bench/wake_floor.py [--seconds 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import time
from typing import Any

from conveyor.testing import RedisServer


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _consume(port: int, n: int, out: Any) -> None:
    sock = _connect(port)
    took = []
    for _ in range(n):
        sock.sendall(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nfloor\r\n$1\r\n0\r\n")
        data = b""
        while data.count(b"\r\n") < 5:
            data += sock.recv(4096)
        took.append((time.time_ns() - int(data.split(b"\r\n")[-2])) / 1e6)
    out.put(took)


def _produce(port: int, n: int, rate: int) -> None:
    sock = _connect(port)
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        stamp = str(time.time_ns()).encode()
        sock.sendall(b"*3\r\n$5\r\nLPUSH\r\n$5\r\nfloor\r\n$%d\r\n%s\r\n" % (len(stamp), stamp))
        sock.recv(100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    with RedisServer() as server:
        port = server.port
        for rate in (200, 500):
            n = int(rate * args.seconds)
            out = ctx.Queue()
            consumer = ctx.Process(target=_consume, args=(port, n, out))
            consumer.start()
            time.sleep(0.3)
            producer = ctx.Process(target=_produce, args=(port, n, rate))
            producer.start()
            took = sorted(out.get())
            producer.join()
            consumer.join()

            def q(p: float, took: list[float] = took) -> float:
                return took[int(p * (len(took) - 1))]

            print(f"push to BLPOP @ {rate}/s: p50 {q(0.5):.3f}  p95 {q(0.95):.3f}  p99 {q(0.99):.3f} ms")


if __name__ == "__main__":
    main()
