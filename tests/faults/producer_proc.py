"""A producer process for tests: adds jobs with one dedup key, as fast as
it can, and prints the ids it got back."""

from __future__ import annotations

import asyncio
import sys

from conveyor import Queue, connect


async def main(url: str, queue_name: str, key: str, count: int) -> None:
    redis = connect(url)
    queue = Queue(queue_name, redis)
    print("ready", flush=True)
    jobs = await asyncio.gather(*(queue.add("j", i, dedup_key=key, dedup_ttl=60) for i in range(count)))
    print(" ".join(sorted({job.id for job in jobs})), flush=True)
    await redis.aclose()


if __name__ == "__main__":
    url, name, key, count = sys.argv[1:5]
    asyncio.run(main(url, name, key, int(count)))
