"""Every Python block of the documentation runs against a real Redis, page
by page, as its reader would run it (see ``docs_page.py``), so no example
can rot; and the site's navigation has a page for every CLI command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
import yaml
from typer.main import get_command

from conveyor.cli.main import app as cli_app
from docs_page import PEERS, python_blocks

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parents[1] / "docs_page.py"
PAGES = sorted(
    p
    for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    if "example" not in p.relative_to(ROOT).parts and python_blocks(p.read_text(encoding="utf-8"))
)

pytestmark = pytest.mark.single_node("runs the docs against one Redis server")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
async def test_the_pages_code_runs(page: Path, redis_url: str, redis: aredis.Redis, tmp_path: Path) -> None:
    await redis.flushall()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CONVEYOR_"))}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(tmp_path))
    done = await _run([sys.executable, str(RUNNER), str(page)], cwd=tmp_path, env=env)
    assert done.returncode == 0, f"{page.relative_to(ROOT)}:\n{done.stdout}\n{done.stderr}"


async def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def test_the_docs_have_code_to_run() -> None:
    assert len(PAGES) >= 10, [str(p) for p in PAGES]


def _commands(group: Any, prefix: str = "") -> list[str]:
    names = []
    for name, command in sorted(group.commands.items()):
        names.append(f"{prefix}{name}")
        if hasattr(command, "commands"):  # a group (Typer carries a click of its own)
            names.extend(_commands(command, f"{prefix}{name} "))
    return names


def test_every_cli_command_has_a_page_in_the_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace("!!python/name:", ""))
    listed: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            listed.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    wanted = {f"cli/{name.replace(' ', '-')}.md" for name in _commands(get_command(cli_app))}
    assert wanted <= set(listed), sorted(wanted - set(listed))


def test_only_the_migration_guides_show_code_that_is_not_run() -> None:
    """A block titled with another library's name is compiled, not run
    (it needs that library); anywhere but a migration guide it would hide
    an example of ours from the suite."""
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        peers = [b for b in python_blocks(page.read_text(encoding="utf-8")) if b.title in PEERS]
        if peers:
            assert page.parent.name == "migrating", f"{page.relative_to(ROOT)}:{peers[0].line}"
