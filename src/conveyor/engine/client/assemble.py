"""A script's source as sent to Redis: its ``lua/<name>.lua`` with each
``--@include name`` replaced by ``lua/includes/<name>.lua`` (once, the
first time it is asked for), then every top-level ``local function`` that
nothing in the script calls dropped.

Redis runs a script's whole chunk on every call, so each ``local function``
of every include is made anew each time: a closure, its upvalues and the
garbage they leave. With every include whole, that is some forty closures
a call, more than a quarter of Redis's work for adding one job. Dropping
those a script never reaches leaves what it runs unchanged.

A function is reached when its name appears in the script's other code
(outside comments) or in a function that is reached. An include's functions
are top-level blocks from ``local function <name>(`` to the first line that
is exactly ``end``, with the comment lines right above them; the house style
of the Lua files keeps to that shape, and the tests load every script."""

from __future__ import annotations

import re

from conveyor.engine.client.headers import lua_text

_INCLUDE = re.compile(r"^--@include (\w+)\s*$", re.MULTILINE)
_FUNCTION = re.compile(r"local function (\w+)\(")
_WORD = re.compile(r"[A-Za-z_]\w*")


def expand(name: str, seen: set[str] | None = None) -> str:
    """``lua/<name>.lua`` with its includes (and theirs) pulled in once."""
    seen = set() if seen is None else seen

    def include(match: re.Match[str]) -> str:
        inc = match.group(1)
        if inc in seen:
            return ""
        seen.add(inc)
        return expand(f"includes/{inc}", seen)

    return _INCLUDE.sub(include, lua_text(name))


def _units(source: str) -> list[tuple[str | None, list[str]]]:
    """The source in order, as (function name, lines) for each top-level
    function with the comments right above it, and (None, lines) between."""
    lines = source.split("\n")
    units: list[tuple[str | None, list[str]]] = []
    comments: list[str] = []
    other: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        found = _FUNCTION.match(line)
        if found is None:
            if line.startswith("--"):
                comments.append(line)
            else:
                other += [*comments, line]
                comments = []
            i += 1
            continue
        end = lines.index("end", i)
        if other:
            units.append((None, other))
            other = []
        units.append((found.group(1), [*comments, *lines[i : end + 1]]))
        comments = []
        i = end + 1
    units.append((None, [*other, *comments]))
    return units


def _code_of(line: str) -> str:
    """``line`` without its comment (from ``--`` outside a quoted string)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote and line[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif line.startswith("--", i):
            return line[:i]
    return line


def _names(lines: list[str], among: set[str]) -> set[str]:
    """The names of ``among`` that the code of ``lines`` (not its comments) mentions."""
    return set(_WORD.findall(" ".join(_code_of(line) for line in lines))) & among


def shake(source: str) -> str:
    """``source`` without the top-level functions nothing reaches."""
    units = _units(source)
    defined = {name for name, _ in units if name is not None}
    calls = {name: _names(lines, defined) - {name} for name, lines in units if name is not None}
    reached: set[str] = set()
    for name, lines in units:
        if name is None:
            reached |= _names(lines, defined)
    todo = list(reached)
    while todo:
        for callee in calls[todo.pop()] - reached:
            reached.add(callee)
            todo.append(callee)
    return "\n".join("\n".join(lines) for name, lines in units if name is None or name in reached)


def assemble(name: str) -> str:
    """The source of script ``name`` as loaded into Redis (without its ``#!lua`` line)."""
    return shake(expand(name))
