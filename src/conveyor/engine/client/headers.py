"""What each script's header says it takes: how many KEYS and ARGV, and
whether more may follow (``then ...`` or ``12...``), and what it calls
each of them and each field of its reply (which a test holds the script's
:class:`~conveyor.engine.client.command.Command` to). With
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


_ITEM = re.compile(r"(?:^|(?<=[,:;\s]))(\d+)(\.\.\.)?\s+(?=[a-z'(\[{])")
_NAME_END = re.compile(r"\(|:|\s=\s|,\s*then\b|;|\.\s|\.$|\s\d+\.\.\.|\s'\d'")
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


@cache
def lua_text(name: str) -> str:
    """The text of ``lua/<name>.lua`` (``includes/<name>`` for a shared step)."""
    return (resources.files("conveyor.engine") / "lua" / f"{name}.lua").read_text()


def _header(name: str) -> str:
    """The comment lines of ``lua/<name>.lua``."""
    return "\n".join(line for line in lua_text(name).splitlines() if line.startswith("--"))


def _section(header: str, name: str) -> str:
    found = re.search(rf"^-- {name}:(.*?)(?=^-- [A-Z][A-Za-z]+:|\Z)", header, re.S | re.M)
    if found is None:
        raise ValueError(f"no {name} in the header")
    return " ".join(line.lstrip("- ").strip() for line in found.group(1).splitlines())


def _items(text: str) -> tuple[tuple[str, ...], Count]:
    """The name of each numbered value, and how many values there are:
    ``1 a, 2 b`` two; ``1 a, then c`` two or more; ``1 a, 2... c`` one or
    more (``2...``: the values from the second on, if any)."""
    parts = _ITEM.split(" " + text)  # text, then number, '...' or None, text, ...
    names = []
    optional = False
    for i in range(1, len(parts) - 2, 3):
        body = parts[i + 2]
        end = _NAME_END.search(body)
        names.append(slug((body[: end.start()] if end else body).rstrip(", ")))
        optional = parts[i + 1] is not None
    return tuple(names), Count(len(names) - optional, bool(_MORE.search(text)) or not names)


def shape_of(name: str) -> Shape:
    """The KEYS and ARGV that ``lua/<name>.lua``'s header lists."""
    return _read(name)[1]


def check_call(name: str, keys: Sequence[object], args: Sequence[object]) -> None:
    """Raises AssertionError when a call does not fit the script's header."""
    shape = shape_of(name)
    for what, count, given in (("KEYS", shape.keys, len(keys)), ("ARGV", shape.argv, len(args))):
        if not count.fits(given):
            wanted = f"{count.least}{' or more' if count.more else ''}"
            raise AssertionError(f"script {name}: {given} {what} given, its header lists {wanted}")


@dataclass(frozen=True, slots=True)
class Names:
    """What a header calls each of a script's KEYS, ARGV and reply fields
    (as identifiers: ``job key prefix`` is ``job_key_prefix``)."""

    keys: tuple[str, ...]
    more_keys: bool
    argv: tuple[str, ...]
    more_argv: bool
    returns: tuple[str, ...] | None  # the fields of a ``{ ... }`` reply


def slug(text: str) -> str:
    """``the group's error hash`` -> ``groups_error_hash``."""
    text = re.sub(r"^(the|a|an)\s+", "", text.strip().lower())
    return re.sub(r"[^a-z0-9]+", "_", text.replace("'", "")).strip("_")


def _fields(text: str) -> tuple[str, ...] | None:
    """The top-level names in ``{ a, b (note), c }``, or None."""
    start = text.find("{")
    if start < 0 or text[:start].strip() not in ("", "msgpack"):
        return None
    depth, field, out = 0, "", []
    for ch in text[start + 1 :]:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(field)
            field = ""
            continue
        if depth == 0 and ch not in ")}]":
            field += ch
    out.append(field)
    return tuple(slug(re.split(r"\s(?:or|per)\s|\s-?\d", f.strip())[0]) for f in out)


def names_of(name: str) -> Names:
    """What ``lua/<name>.lua``'s header calls its KEYS, ARGV and reply fields."""
    return _read(name)[0]


@cache
def _read(name: str) -> tuple[Names, Shape]:
    """One reading of a header: its names, and its counts."""
    header = _header(name)
    keys, key_count = _items(_section(header, "KEYS"))
    argv, argv_count = _items(_section(header, "ARGV"))
    names = Names(keys, key_count.more, argv, argv_count.more, _fields(_section(header, "Returns")))
    return names, Shape(key_count, argv_count)
