"""``eventhub up`` as a user runs it: three Redis servers of its own, one
per role, the workers, the event processor, the dead-letter processor,
the fake Airtable and the API; the demo's events and Airtable changes
start their jobs and its long job finishes; each role's keys are on its
own server; Ctrl-C stops everything, the three Redis servers included."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from conveyor.testing import free_port, port_open, start_command, stop_process

JOB_QUEUES = ("long-running-jobs", "async-processing", "event-driven-jobs", "dead-letter-queue")


def test_eventhub_up_runs_the_demo_on_three_redis_servers_and_stops_everything(tmp_path: Path) -> None:
    port, airtable_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "eventhub.cli",
        "up",
        "--port",
        str(port),
        "--airtable-port",
        str(airtable_port),
        "--demo-steps",
        "2",
    ]
    process, output = start_command(
        command, cwd=tmp_path, drop_env=("REDIS_", "EVENTHUB_"), EVENTHUB_DATA=str(tmp_path / "data")
    )
    try:
        output.wait_for("Ctrl-C stops everything", within=60)
        roles = {
            role: int(found)
            for found, role in re.findall(
                r"redis-server \(AOF on\) at redis://127.0.0.1:(\d+)/0 for the (\w+) role", output.text
            )
        }
        assert set(roles) == {"master", "streams", "queue"} and len(set(roles.values())) == 3
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            health = http.get("/health")
            assert health.status_code == 200
            assert health.json()["redis"] == {"master": "ok", "streams": "ok", "queue": "ok"}
            # The demo: a welcome job and a provisioning job from its two
            # events, an Airtable sync from the fake's webhook, a long job of 2 steps
            deadline = time.monotonic() + 30
            want = {
                "long-running-jobs": 1,
                "async-processing": 1,
                "event-driven-jobs": 2,
                "dead-letter-queue": 0,
            }
            while True:
                stats: dict[str, Any] = http.get("/stats").json()
                done = {name: q["completed"] for name, q in stats["queues"].items()}
                group = stats["stream"]["groups"].get("event-processors")
                if done == want and group == {"pending": 0, "lag": 0}:
                    break  # the jobs' own job.finished and the Airtable events handled too
                assert time.monotonic() < deadline, stats
                time.sleep(0.25)
            assert stats["stream"]["deadLetters"] == 0 and stats["alerts"] == 0
            # A published event goes the same way; a bad one changes nothing
            published = http.post(
                "/events", json={"type": "user.created", "data": {"user_id": "u9", "email": "x@example.com"}}
            )
            assert published.status_code == 202
            bad = http.post("/events", json={"type": "user.created", "data": {"user_id": "u9"}})
            assert bad.status_code == 422
            while http.get("/stats").json()["queues"]["async-processing"]["completed"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            session = http.post("/sessions", json={"userId": "u9"})
            assert session.status_code == 201
            # The UI where the design has it, with the event stream listed
            dashboard = http.get("/admin/queues", follow_redirects=True)
            assert dashboard.status_code == 200 and dashboard.url.path == "/admin/queues/dashboard"
            assert http.get("/admin/queues/api/streams").json() == ["platform-events"]
            assert sorted(q["name"] for q in http.get("/admin/queues/api/queues").json()) == sorted(
                JOB_QUEUES
            )
        _each_role_on_its_own_server(roles)
        assert stop_process(process) == 0, output.text
    finally:
        stop_process(process)  # after a failed check too: its Redis servers must go
        output.close()
    assert "redis-server stopped (all three)" in output.text
    for stopped in (port, airtable_port, *roles.values()):
        assert not port_open(stopped), f"port {stopped} still open"


def _each_role_on_its_own_server(roles: dict[str, int]) -> None:
    keys = {}
    for role, redis_port in roles.items():
        with redis.Redis(port=redis_port, decode_responses=True) as client:
            keys[role] = set(client.keys("*"))
            if role == "master":
                mirror = client.hgetall("eventhub:airtable:appDemo:tblTasks")
                assert [json.loads(v) for v in mirror.values()] == [{"Name": "Write docs", "Done": True}]
    # the jobs' own progress (Conveyor's progress bus) lives with the jobs
    queue_tags = (*(f"conveyor:{{{q}}}:" for q in JOB_QUEUES), "conveyor:{progress/progress}:")
    strays = [
        k
        for k in keys["queue"]
        if not (
            k.startswith(queue_tags)
            or (k.startswith("conveyor:") and "{" not in k and k != "conveyor:streams")
        )
    ]
    assert keys["queue"] and strays == []
    assert "conveyor:{platform-events}:stream" in keys["streams"]
    assert all(
        k.startswith("conveyor:{platform-events}:") or k == "conveyor:streams" for k in keys["streams"]
    )
    assert any(k.startswith("eventhub:session:") for k in keys["master"])
    assert "eventhub:welcomed" in keys["master"] and "eventhub:airtable:synced" in keys["master"]
    assert all(k.startswith("eventhub:") for k in keys["master"]), keys["master"]
