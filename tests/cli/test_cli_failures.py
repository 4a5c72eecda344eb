"""Every command given a Redis it cannot use (unreachable, a malformed
URL, wrong credentials) or a bad argument prints one line saying why and
exits 1, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing import RedisServer, free_port

pytestmark = pytest.mark.single_node

CONVEYOR = str(Path(sys.executable).parent / "conveyor")

COMMANDS = [
    ["queues"],
    ["queues", "--json"],
    ["jobs", "q"],
    ["job", "q", "1"],
    ["pause", "q"],
    ["resume", "q"],
    ["clean", "q", "--state", "failed"],
    ["obliterate", "q", "--yes"],
    ["schedules", "q"],
    ["dlq", "list", "q"],
    ["dlq", "replay", "q"],
    ["dlq", "purge", "q"],
    ["events", "dead-letters", "s"],
    ["events", "replay", "s"],
    ["events", "purge", "s"],
    ["check"],
    ["scheduler", "q"],
    ["worker", "tests.cli.test_cli_failures:handlers"],
]


async def _noop(job: object) -> None:
    return None


handlers = {"q": _noop}


@pytest.fixture(scope="module")
def locked() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--requirepass", "right"]) as server:
        yield server


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": url, "REDIS_TIMEOUT": "1", "PYTHONPATH": os.getcwd()}


def run(url: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONVEYOR, *args], capture_output=True, text=True, env=_env(url), timeout=60, stdin=subprocess.DEVNULL
    )


def start(url: str, args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CONVEYOR, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(url),
    )


def assert_one_line(done: subprocess.CompletedProcess[str], *says: str) -> None:
    out = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, out
    assert "Traceback" not in out, out
    lines = [line for line in done.stderr.strip().splitlines() if line]
    assert 1 <= len(lines) <= 2 or done.stdout.strip().startswith("fail"), out
    for word in says:
        assert word in out, out


def test_an_unreachable_redis_is_named_in_one_line() -> None:
    # every command at once: each rides out a brief outage (its connection
    # retries take a few seconds) before it says so
    ports = [free_port() for _ in COMMANDS]
    started = [start(f"redis://127.0.0.1:{port}/0", args) for port, args in zip(ports, COMMANDS, strict=True)]
    for port, process in zip(ports, started, strict=True):
        out, err = process.communicate(timeout=60)
        done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        assert_one_line(done, f"127.0.0.1:{port}")


@pytest.mark.parametrize("args", [["queues"], ["jobs", "q"], ["check"], ["worker", "x:y"]], ids=" ".join)
@pytest.mark.parametrize("url", ["notaurl", "redis://127.0.0.1:99999/0", "http://example"])
def test_a_malformed_url_is_refused_in_one_line(url: str, args: list[str]) -> None:
    assert_one_line(run(url, args))


@pytest.mark.parametrize("args", [["queues"], ["jobs", "q"], ["check"], ["pause", "q"]], ids=" ".join)
def test_wrong_credentials_are_named_in_one_line(locked: RedisServer, args: list[str]) -> None:
    done = run(f"redis://:wrong@127.0.0.1:{locked.port}/0", args)
    assert_one_line(done, f"127.0.0.1:{locked.port}")
    assert "wrong" not in done.stdout + done.stderr  # never the password


def test_a_bad_argument_is_refused_in_one_line(redis_url: str) -> None:
    assert_one_line(run(redis_url, ["clean", "q", "--state", "bogus"]))
