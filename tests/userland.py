"""Running pytest on a user's project, as its user would: in its own
directory, with Conveyor's plugin loaded from the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_pytest(project: Path, *args: str, passed: int) -> None:
    """Runs pytest in ``project`` and checks that ``passed`` tests passed
    and nothing failed."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project), *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{passed} passed" in done.stdout, done.stdout
