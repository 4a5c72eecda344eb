"""What an installed package offers a user: ``python -m conveyor``, one
version, and the marker that lets type checkers read its types."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import subprocess
import sys

import conveyor


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and "worker" in done.stdout


def test_the_version_comes_from_the_package_metadata() -> None:
    assert conveyor.__version__ == importlib.metadata.version("conveyor")
    assert importlib.metadata.metadata("conveyor")["License"] == "MIT"


def test_the_package_is_marked_typed() -> None:
    assert importlib.resources.files("conveyor").joinpath("py.typed").is_file()
    assert "Typing :: Typed" in (importlib.metadata.metadata("conveyor").get_all("Classifier") or [])
