"""A worker-only install (``pip install conveyor``) has no web stack and no
OpenTelemetry: everything but the server works, and what needs an extra
says which in one line. The missing packages are hidden from a child
interpreter by a finder that refuses them, as an install without them
would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import JobState, Queue
from conveyor.errors import ConveyorError, MissingExtra
from conveyor.extras import OTEL, SERVER, SQL, Extra
from faults.processes import stop_gracefully
from polling import wait_until

WEB_STACK = ("fastapi", "starlette", "uvicorn", "sse_starlette", "multipart", "python_multipart", "httptools")

HIDE = """
import sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""

RUN_CLI = "from conveyor.cli.main import main\nmain()\n"

HANDLERS = """
async def send(job):
    return {"sent": job.data["to"]}

handlers = {"QUEUE": send}
"""


def python(code: str, *args: str, hidden: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-c", HIDE.format(hidden=set(hidden)) + code, *args]


def run(
    code: str, *args: str, hidden: tuple[str, ...], cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python(code, *args, hidden=hidden),
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def start(code: str, *args: str, cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        python(code, *args, hidden=WEB_STACK),
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_the_engine_the_cli_and_the_test_helpers_import_without_the_web_stack(tmp_path: Path) -> None:
    code = (
        "import conveyor, conveyor.tasks, conveyor.testing, conveyor.testing.plugin\n"
        "import conveyor.cli.main, conveyor.cli.admin, conveyor.cli.worker, conveyor.prometheus\n"
        "import conveyor.server.describe\n"
        f"loaded = sorted(m for m in sys.modules if m.partition('.')[0] in {set(WEB_STACK)!r})\n"
        "print('loaded:', loaded)\n"
    )
    done = run(code, hidden=WEB_STACK, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded: []"


async def test_a_worker_runs_jobs_and_the_cli_reads_them_without_the_web_stack(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    (tmp_path / "mailer.py").write_text(HANDLERS.replace("QUEUE", queue.name))
    job = await queue.add("welcome", {"to": "ada"})
    worker = start(RUN_CLI, "worker", "mailer:handlers", cwd=tmp_path, REDIS_URL=redis_url)
    try:

        async def completed() -> bool:
            return await queue.get_state(job.id) is JobState.COMPLETED

        await wait_until(completed, within=30)
    finally:
        stop_gracefully(worker)
    shown = run(
        RUN_CLI, "job", queue.name, job.id, "--json", hidden=WEB_STACK, cwd=tmp_path, REDIS_URL=redis_url
    )
    assert shown.returncode == 0, shown.stderr
    read = json.loads(shown.stdout)
    assert read["state"] == "completed" and read["result"] == {"sent": "ada"}


@pytest.mark.parametrize("command", ["serve", "up"])
def test_serve_and_up_name_the_extra_they_need_in_one_line(command: str, tmp_path: Path) -> None:
    done = run(RUN_CLI, command, hidden=WEB_STACK, cwd=tmp_path, REDIS_URL="redis://127.0.0.1:1")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"conveyor {command} needs the HTTP API and dashboard" in lines[0]
    assert "pip install 'conveyor[server]'" in lines[0]


def test_the_test_servers_helper_tracing_and_the_archive_name_their_extras(tmp_path: Path) -> None:
    code = (
        "from conveyor.errors import MissingExtra\n"
        "import conveyor.testing\n"
        "loads = (lambda: conveyor.testing.serving, lambda: __import__('conveyor.otel'),\n"
        "         lambda: __import__('conveyor.archive'))\n"
        "for load in loads:\n"
        "    try:\n"
        "        load()\n"
        "    except MissingExtra as e:\n"
        "        print(e)\n"
    )
    done = run(code, hidden=(*WEB_STACK, "opentelemetry", "sqlalchemy"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    serving, otel, archive = done.stdout.strip().splitlines()
    assert serving.startswith("conveyor.testing.serving needs the HTTP API and dashboard")
    assert serving.endswith("pip install 'conveyor[server]'")
    assert otel.startswith("conveyor.otel needs OpenTelemetry") and otel.endswith("'conveyor[otel]'")
    assert archive.startswith("conveyor.archive needs SQLAlchemy") and archive.endswith("'conveyor[sql]'")


def test_a_missing_extra_is_a_conveyor_error_and_an_import_error() -> None:
    extra = Extra("gpu", "the GPU kernels", ("conveyor_no_such_module", "json"))
    assert not extra.installed() and extra.missing() == ["conveyor_no_such_module"]
    with pytest.raises(MissingExtra) as raised:
        extra.require("resize")
    assert isinstance(raised.value, ConveyorError) and isinstance(raised.value, ImportError)
    assert str(raised.value) == (
        "resize needs the GPU kernels, which is not installed (no conveyor_no_such_module): "
        "pip install 'conveyor[gpu]'"
    )
    # this suite's environment has every extra
    assert SERVER.installed() and OTEL.installed() and SQL.installed()
