"""``distribution up`` as a user runs it: its own Redis (run as the
production notes ask), the fake networks, the worker and the API; the
demo's posts go out (the scheduled one at its time), every job's state
changes are logged; Ctrl-C stops everything, its Redis included."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from conveyor import connect
from conveyor.testing import announced_redis_port, free_port, port_open, start_command, stop_process
from distribution.redis_policy import findings


def test_distribution_up_publishes_the_demo_and_stops_everything(tmp_path: Path) -> None:
    port, fake_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "distribution.cli",
        "up",
        "--port",
        str(port),
        "--fake-port",
        str(fake_port),
        "--demo-delay",
        "2",
    ]
    process, output = start_command(
        command,
        cwd=tmp_path,
        drop_env=("REDIS_", "DATABASE_URL", "DISTRIBUTION_"),
        DISTRIBUTION_DATA=str(tmp_path / "data"),
    )
    try:
        output.wait_for("Ctrl-C stops everything", within=60)
        redis_port = announced_redis_port(output.text)
        token = re.findall(r"Authorization: Bearer (\S+)\)", output.text)[0]
        schedules = re.findall(r"/api/schedules/(\d+)", output.text)
        assert len(schedules) == 2
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=10) as http:
            assert httpx.get(f"{base}/api/queue/health").status_code == 401
            deadline = time.monotonic() + 30  # the second one is due 2 s after start
            while True:
                statuses = [http.get(f"/api/schedules/{s}").json()["status"] for s in schedules]
                if statuses == ["published", "published"] or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            assert statuses == ["published", "published"]
            health = http.get("/api/queue/health").json()
            assert health["queues"]["dispatch"]["completed"] == 4
            assert health["queues"]["scheduled"]["completed"] == 1
        password = re.findall(r"its password: (\S+) ", output.text)[0]
        with redis.Redis(port=redis_port) as bare, pytest.raises(redis.AuthenticationError):
            bare.ping()
        assert _findings(f"redis://:{password}@127.0.0.1:{redis_port}/0") == []
        for job in ("dispatch-1-1", "dispatch-1-2"):
            for state in ("queued", "active", "completed"):
                assert (
                    f"distribution:dispatch {state} job={job} name=dispatch account=@conveyor" in output.text
                )
        posts = httpx.get(f"http://127.0.0.1:{fake_port}/_fake/posts").json()
        assert sorted(p["network"] for p in posts) == ["bluesky", "bluesky", "mastodon", "mastodon"]
        assert stop_process(process) == 0, output.text
    finally:
        stop_process(process)  # after a failed check too: its Redis must go
        output.close()
    assert "redis-server stopped" in output.text
    for stopped in (port, fake_port, redis_port):
        assert not port_open(stopped), f"port {stopped} still open"


def _findings(url: str) -> list[str]:
    """The production rules the Redis at ``url`` breaks."""

    async def go() -> list[str]:
        async with connect(url) as client:
            return [f.rule for f in await findings(client) if not f.ok]

    return asyncio.run(go())
