"""A scheduler process for tests: fires the schedules of one queue until
SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from conveyor import Queue, Scheduler, connect


async def main(url: str, queue_name: str, poll: float) -> None:
    redis = connect(url)
    scheduler = Scheduler([Queue(queue_name, redis)], poll=poll)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, scheduler.close)
    print("ready", flush=True)
    await scheduler.run()
    await redis.aclose()


if __name__ == "__main__":
    url, name, poll = sys.argv[1:4]
    asyncio.run(main(url, name, float(poll)))
