"""Runs the code of one documentation page as its reader would, in order,
in the current directory: ``python tests/docs_page.py docs/PAGE.md``.

- A fenced block with a file name as its title (```` ```python
  title="myapp.py" ````, any language) is written to that file; a Python
  file is then imported, so it must load. A title with an absolute path
  (``/etc/...``) is shown only, never written.
- Every other ``python`` block runs in one namespace shared by the page.
  A block may ``await`` at its top level, as in ``python -m asyncio``; all
  such blocks of a page share one event loop.
- A ``python`` block titled with another library's name (``title="Celery"``,
  on the migration guides) is that library's code, shown beside ours: it
  is compiled, so it is Python, but not run.
- Test files written by the page (``test_*.py``) are run with pytest at the
  end, and must pass.

A failure names the page and the line its block starts on.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
TITLE = re.compile(r'title="([^"]+)"')
PYTHON = ("python", "py", "pycon")
PEERS = ("Celery", "RQ", "arq")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    title: str | None
    code: str


def blocks(text: str) -> Iterator[Block]:
    """The page's fenced blocks, their code dedented to the fence."""
    for found in FENCE.finditer(text):
        info = found["info"].strip()
        language = info.split()[0] if info else ""
        title = TITLE.search(info)
        body = textwrap.dedent(found["body"])
        line = text.count("\n", 0, found.start()) + 2
        yield Block(line, language, title.group(1) if title else None, body)


def python_blocks(text: str) -> list[Block]:
    return [b for b in blocks(text) if b.language in PYTHON]


def run_page(page: Path) -> None:
    sys.path.insert(0, str(Path.cwd()))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    loop = asyncio.new_event_loop()
    tests: list[str] = []
    for block in blocks(page.read_text(encoding="utf-8")):
        where = f"{page}:{block.line}"
        if block.title is not None and "." in Path(block.title).name and not Path(block.title).is_absolute():
            path = Path(block.title)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.code, encoding="utf-8")
            if path.suffix == ".py":
                if path.name.startswith("test_"):
                    tests.append(str(path))
                elif path.name != "conftest.py":
                    importlib.invalidate_caches()
                    importlib.import_module(".".join(path.with_suffix("").parts))
            continue
        if block.language not in PYTHON:
            continue
        if block.title in PEERS:
            compile(block.code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            continue
        code = compile(block.code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            loop.run_until_complete(eval(code, namespace))
        else:
            exec(code, namespace)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    if tests:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests])
        if done.returncode != 0:
            raise SystemExit(f"{page}: the page's tests failed")


if __name__ == "__main__":
    run_page(Path(sys.argv[1]).resolve())
