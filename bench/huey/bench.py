"""The one-by-one add and latency measurements of bench/run.py, for huey:

    python bench.py <measure> <redis-url> [options as JSON]

measure: single | latency | produce. Prints one line of JSON with the
result. ``bench/run.py --compare huey`` installs the pinned huey
(``requirements.txt``) into ``lib/`` here on first use and runs this
beside its own measurements, against the same Redis, run by run.

huey is a synchronous queue: an add is one LPUSH, a consumer thread
takes jobs with BRPOP. Its default serializer is pickle; this harness
gives it a JSON one instead, which costs it nothing measurable for
messages this small and keeps pickle out of the repository's runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

from huey.api import RedisHuey
from huey.registry import Message
from huey.serializer import Serializer


class JsonSerializer(Serializer):  # type: ignore[misc]
    """huey's message, a named tuple of plain fields, as a JSON array."""

    def _serialize(self, data: Any) -> bytes:
        fields = list(data)
        if any(fields[i] is not None for i in (2, 8, 9, 11)):  # eta, callbacks, expiry
            raise ValueError("this harness sends plain messages only")
        return json.dumps(fields).encode()

    def _deserialize(self, data: bytes) -> Any:
        fields = json.loads(data)
        fields[6] = tuple(fields[6])  # args
        return Message(*fields)


def make(name: str, url: str) -> RedisHuey:
    return RedisHuey(name, url=url, serializer=JsonSerializer())


def single(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Adds one by one, each waiting for Redis's answer, as every peer does."""
    huey = make("bench-single", url)

    @huey.task()
    def email(to: str) -> None:
        pass

    n = options["jobs"]
    start = time.perf_counter()
    for i in range(n):
        email(f"user{i}@example.com")
    seconds = time.perf_counter() - start
    huey.flush()
    return {"rate": n / seconds}


def produce(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """One job every 1/rate s for ``seconds``, stamped with the wall clock."""
    huey = make("bench-latency", url)

    @huey.task()
    def tick(sent: int) -> None:
        pass

    interval = 1 / options["rate"]
    count = int(options["rate"] * options["seconds"])
    start = time.perf_counter()
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        tick(time.time_ns())
    return {"added": count}


def latency(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Enqueue-to-start with one idle consumer thread; the producer is another process."""
    huey = make("bench-latency", url)
    samples: list[float] = []
    lock = threading.Lock()

    @huey.task()
    def tick(sent: int) -> None:
        with lock:
            samples.append((time.time_ns() - sent) / 1e6)

    huey.flush()
    consumer = huey.create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    time.sleep(0.3)
    subprocess.run(
        [sys.executable, __file__, "produce", url, json.dumps(options)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    consumer.stop(graceful=True)
    huey.flush()
    return {"samples": samples}


if __name__ == "__main__":
    measure, url = sys.argv[1], sys.argv[2]
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    measures = {"single": single, "produce": produce, "latency": latency}
    print(json.dumps(measures[measure](url, options)))
