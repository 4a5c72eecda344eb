"""``setlist up``, the one command, as a user runs it: a process that starts
its own Redis, the fake APIs, the workers and the app, imports the fixture
artists, and stops everything (its Redis included) on Ctrl-C."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx

from conveyor.testing import announced_redis_port, free_port, port_open, start_command, stop_process


def test_setlist_up_runs_the_demo_and_stops_everything(tmp_path: Path) -> None:
    port, fake_port = free_port(), free_port()
    command = [sys.executable, "-m", "setlist.cli", "up", "--port", str(port), "--fake-port", str(fake_port)]
    process, output = start_command(
        command,
        cwd=tmp_path,
        drop_env=("REDIS_", "DATABASE_URL", "SETLIST_"),
        SETLIST_DATA=str(tmp_path / "data"),
    )
    try:
        output.wait_for("Ctrl-C stops everything", within=60)
        redis_port = announced_redis_port(output.text)
        slugs = re.findall(rf"importing .+: http://127\.0\.0\.1:{port}/artists/(\S+)", output.text)
        assert len(slugs) == 3

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 90
            statuses: dict[str, dict[str, object]] = {}
            while len(statuses) < 3:
                assert time.monotonic() < deadline, statuses
                for slug in slugs:
                    status = http.get(f"/api/artists/{slug}/status").json()
                    if status["finished"]:
                        statuses[slug] = status
                time.sleep(0.25)
            assert {s["stage"] for s in statuses.values()} == {"completed"}, statuses
            trending = http.get("/api/trending")
            assert trending.status_code == 200
            page = http.get(f"/api/artists/{slugs[0]}").json()
            assert page["counts"]["shows"] > 0 and page["status"]["stage"] == "completed"
            assert http.get("/").status_code == 200
            # the admin surface takes the token printed at start, and nothing else
            token = re.findall(r"admin token: (\S+)\)", output.text)[0]
            assert http.get("/conveyor/api/queues").status_code == 401
            assert http.post("/conveyor/api/queues/artist-import/pause").status_code == 401
            assert http.get("/conveyor/dashboard").status_code == 303  # to its login page
            http.headers["authorization"] = f"Bearer {token}"
            queues = http.get("/conveyor/api/queues").json()
            assert {"artist-import", "ticketmaster-sync"} <= {q["name"] for q in queues}
            counters = httpx.get(f"http://127.0.0.1:{fake_port}/_fake/counters").json()
            assert counters  # the imports went through the fake APIs over HTTP

        assert stop_process(process) == 0, output.text
    finally:
        stop_process(process)  # after a failed check too: its Redis must go
        output.close()
    assert "redis-server stopped" in output.text
    for stopped in (port, fake_port, redis_port):
        assert not port_open(stopped), f"port {stopped} still open"
    assert (tmp_path / "data" / "setlist.db").exists()
    assert list((tmp_path / "data" / "redis").iterdir())  # the AOF is on disk
