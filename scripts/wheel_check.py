"""Builds the wheel and the sdist, and tries the wheel as a user would:
installed into a fresh virtualenv outside the repository.

1. The bare install (``pip install conveyor``) imports no web stack,
   ``python -m conveyor version`` gives the package's version, and
   ``conveyor serve`` names the extra it needs in one line.
2. With the server extra added, ``conveyor up`` starts from an empty
   directory (its own private Redis) and a demo job completes, seen
   through the HTTP API; Ctrl-C stops it all with exit 0.

Usage: python scripts/wheel_check.py [--keep]   (--keep leaves the venv)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what a user's install must hold besides the Python modules
SHIPPED = ("conveyor/py.typed", "conveyor/engine/lua/", "conveyor/server/static/")


def step(text: str) -> None:
    print(f"wheel check: {text}", flush=True)


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build(out: Path) -> tuple[Path, Path]:
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, ROOT, cwd=ROOT)
    wheel = next(out.glob("conveyor-*.whl"))
    sdist = next(out.glob("conveyor-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    for part in SHIPPED:
        assert any(n.startswith(part) for n in names), f"{part} is not in {wheel.name}"
    assert any(n.endswith("licenses/LICENSE") for n in names), f"no LICENSE in {wheel.name}"
    assert "conveyor/testing/plugin.py" in names
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    top = members[0].split("/")[0]
    for need in ("LICENSE", "README.md", "pyproject.toml", "src/conveyor/engine/lua"):
        assert any(m.startswith(f"{top}/{need}") for m in members), f"{need} is not in {sdist.name}"
    step(f"built {wheel.name} ({len(names)} files) and {sdist.name}")
    return wheel, sdist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_install(venv: Path, wheel: Path, home: Path, env: dict[str, str]) -> None:
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=home)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    said = run(python, "-m", "conveyor", "version", cwd=home, env=env).strip()
    assert said == version, f"python -m conveyor version said {said!r}, the package is {version}"
    loaded = run(
        python,
        "-c",
        "import sys, importlib.util, conveyor, conveyor.testing, conveyor.cli.main; "
        "print([m for m in ('fastapi', 'uvicorn', 'sse_starlette') "
        "if m in sys.modules or importlib.util.find_spec(m)])",
        cwd=home,
        env=env,
    ).strip()
    assert loaded == "[]", f"a bare install brought {loaded}"
    done = subprocess.run(
        [str(venv / "bin" / "conveyor"), "serve"], cwd=home, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "pip install 'conveyor[server]'" in done.stderr, done.stderr
    step(f"bare install: version {said}, no web stack, `conveyor serve` says: {done.stderr.strip()}")


def up_with_server(venv: Path, wheel: Path, home: Path, env: dict[str, str]) -> None:
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", f"{wheel}[server]", cwd=home)
    port = free_port()
    proc = subprocess.Popen(
        [str(venv / "bin" / "conveyor"), "up", "--port", str(port)],
        cwd=home,
        env={**env, "CONVEYOR_DATA": str(home / "data")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )
    try:
        deadline = time.monotonic() + 60
        completed = 0
        while time.monotonic() < deadline and not completed:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/queues", timeout=5) as answer:
                    queues = json.load(answer)
            except OSError:
                continue  # not listening yet
            completed = sum(q["counts"]["completed"] for q in queues)
        assert completed, "no job completed through `conveyor up` within 60 s"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    step(f"with conveyor[server]: `conveyor up` completed {completed} jobs, seen through the API; stopped")


def main() -> None:
    keep = "--keep" in sys.argv
    home = Path(tempfile.mkdtemp(prefix="conveyor-wheel-"))
    try:
        wheel, _ = build(home / "dist")
        venv = home / "venv"
        run(sys.executable, "-m", "venv", venv, cwd=home)
        # the user's environment: no Redis named, nothing of the repository on the path
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REDIS_", "CONVEYOR_", "PYTHON", "VIRTUAL_ENV"))
        }
        env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
        bare_install(venv, wheel, home, env)
        up_with_server(venv, wheel, home, env)
    finally:
        if keep:
            step(f"left in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
