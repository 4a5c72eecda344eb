"""An event consumer process for tests: each event records a side effect (one
field per run in a ledger hash: the entry id and a token of the run) and sleeps; an event of type
``poison`` kills the process on the spot. SIGTERM closes gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from typing import Any

from conveyor import Event, EventBus, connect


async def main(
    url: str, stream: str, group: str, name: str, sleep: float, max_deliveries: int, burst: bool
) -> None:
    redis = connect(url)
    bus = EventBus(redis, stream)
    ledger = f"ledger:{stream}"

    @bus.on("*")
    async def handle(event: Event[Any]) -> None:
        if event.type == "poison":
            os._exit(3)
        await redis.hset(ledger, f"{event.id} {uuid.uuid4().hex}", 1)
        await asyncio.sleep(sleep)

    consumer = bus.consumer(
        group,
        name=name,
        concurrency=4,
        claim_idle=0.5,
        claim_interval=0.05,
        block=0.2,
        retry_delay=0.05,
        max_deliveries=max_deliveries,
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, consumer.request_stop)
    print("ready", flush=True)
    await consumer.run(burst=burst)
    await redis.aclose()


if __name__ == "__main__":
    url, stream, group, name, sleep, deliveries, mode = sys.argv[1:8]
    asyncio.run(main(url, stream, group, name, float(sleep), int(deliveries), mode == "burst"))
