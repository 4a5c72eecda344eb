"""What each script's header says it takes: how many KEYS and ARGV, and
whether more may follow (``then ...`` or ``12...``). With
``CONVEYOR_CHECK_SCRIPTS=1`` in the environment (the test suite sets it),
every call is held to its script's header before it is sent, so a caller
and a script that disagree fail the first test that makes the call."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources


def checking() -> bool:
    """Whether calls are held to their script's header (read when a script is first used)."""
    return os.environ.get("CONVEYOR_CHECK_SCRIPTS") == "1"


_NUMBERED = re.compile(r"(?:^|[,:;]\s*|\s)(\d+)(?:\.\.\.)?\s+(?=[a-z'(\[{])")
_MORE = re.compile(r"\bthen\b|\d+\.\.\.")


@dataclass(frozen=True, slots=True)
class Count:
    """``least`` values, and whether more may follow."""

    least: int
    more: bool

    def fits(self, n: int) -> bool:
        return n >= self.least if self.more else n == self.least


@dataclass(frozen=True, slots=True)
class Shape:
    keys: Count
    argv: Count


def _section(header: str, name: str) -> str:
    found = re.search(rf"^-- {name}:(.*?)(?=^-- [A-Z][A-Za-z]+:|\Z)", header, re.S | re.M)
    if found is None:
        raise ValueError(f"no {name} in the header")
    return " ".join(line.lstrip("- ").strip() for line in found.group(1).splitlines())


def _count(text: str) -> Count:
    numbers = [int(n) for n in _NUMBERED.findall(" " + text)]
    return Count(max(numbers, default=0), bool(_MORE.search(text)) or not numbers)


@cache
def shape_of(name: str) -> Shape:
    """The KEYS and ARGV that ``lua/<name>.lua``'s header lists."""
    source = (resources.files("conveyor.engine") / "lua" / f"{name}.lua").read_text()
    header = "\n".join(line for line in source.splitlines() if line.startswith("--"))
    return Shape(_count(_section(header, "KEYS")), _count(_section(header, "ARGV")))


def check_call(name: str, keys: Sequence[object], args: Sequence[object]) -> None:
    """Raises AssertionError when a call does not fit the script's header."""
    shape = shape_of(name)
    for what, count, given in (("KEYS", shape.keys, len(keys)), ("ARGV", shape.argv, len(args))):
        if not count.fits(given):
            wanted = f"{count.least}{' or more' if count.more else ''}"
            raise AssertionError(f"script {name}: {given} {what} given, its header lists {wanted}")
