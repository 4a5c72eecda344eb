"""``eventhub up`` as a user runs it: its own Redis, the workers, the event
processor, the dead-letter processor and the API; the demo's events start
their jobs and its long job finishes; Ctrl-C stops everything, its Redis
included."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from conveyor.testing import announced_redis_port, free_port, port_open, start_command, stop_process


def test_eventhub_up_runs_the_demo_and_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "eventhub.cli", "up", "--port", str(port), "--demo-steps", "2"]
    process, output = start_command(
        command, cwd=tmp_path, drop_env=("REDIS_", "EVENTHUB_"), EVENTHUB_DATA=str(tmp_path / "data")
    )
    try:
        output.wait_for("Ctrl-C stops everything", within=60)
        redis_port = announced_redis_port(output.text)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            health = http.get("/health")
            assert health.status_code == 200
            assert health.json()["redis"] == {"queues": "ok", "streams": "ok", "cache": "ok"}
            # The demo: a welcome job and a provisioning job from its two
            # events, and a long job of 2 steps
            deadline = time.monotonic() + 30
            while True:
                stats: dict[str, Any] = http.get("/stats").json()
                done = {name: q["completed"] for name, q in stats["queues"].items()}
                group = stats["stream"]["groups"].get("event-processors")
                if done == {
                    "long-running-jobs": 1,
                    "async-processing": 1,
                    "event-driven-jobs": 1,
                } and group == {
                    "pending": 0,
                    "lag": 0,
                }:
                    break  # the jobs' own job.finished events handled too
                assert time.monotonic() < deadline, stats
                time.sleep(0.25)
            assert stats["stream"]["deadLetters"] == 0 and stats["alerts"] == 0
            # A published event goes the same way; a bad one changes nothing
            published = http.post(
                "/events", json={"type": "user.created", "data": {"user_id": "u9", "email": "x@example.com"}}
            )
            assert published.status_code == 202
            assert (
                http.post("/events", json={"type": "user.created", "data": {"user_id": "u9"}}).status_code
                == 422
            )
            while http.get("/stats").json()["queues"]["async-processing"]["completed"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert http.get("/admin/queues/api/queues").status_code == 200
        assert stop_process(process) == 0, output.text
    finally:
        stop_process(process)  # after a failed check too: its Redis must go
        output.close()
    assert "redis-server stopped" in output.text
    for stopped in (port, redis_port):
        assert not port_open(stopped), f"port {stopped} still open"
    assert (tmp_path / "data" / "redis").is_dir()
