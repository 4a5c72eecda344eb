"""A scheduler process for tests: fires the schedules of one queue until
SIGTERM. With a clock key, its time is the number of milliseconds stored
under that key (the test moves it), so cron ticks minutes apart can be
raced over in a second."""

from __future__ import annotations

import asyncio
import signal
import sys

import redis

from conveyor import Queue, Scheduler, connect
from faults import fault_clock  # before the rest: it sets this process's clock


class KeyClock:
    """Time read from a Redis key that the test sets."""

    def __init__(self, url: str, key: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._key = key

    def now_ms(self) -> int:
        return int(self._client.get(self._key) or 0)


async def main(url: str, queue_name: str, poll: float, clock_key: str) -> None:
    client = connect(url)
    clock = KeyClock(url, clock_key) if clock_key else None
    scheduler = Scheduler([Queue(queue_name, client, clock=clock)], poll=poll)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, scheduler.close)
    print("ready", flush=True)
    await scheduler.run()
    await client.aclose()


if __name__ == "__main__":
    fault_clock.apply()
    url, name, poll = sys.argv[1:4]
    asyncio.run(main(url, name, float(poll), sys.argv[4] if len(sys.argv) > 4 else ""))
