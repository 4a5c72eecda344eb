"""The worked example in docs/example runs as its reader would run it:
its own tests, through Conveyor's pytest plugin, pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from userland import run_pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "example"


@pytest.mark.single_node("its own private Redis, or none: the cluster pass adds nothing")
def test_the_worked_example_passes_its_own_tests() -> None:
    run_pytest(EXAMPLE, passed=5)
