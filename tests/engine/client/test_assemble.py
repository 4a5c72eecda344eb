"""A script's source: includes pulled in once, and the top-level functions
nothing reaches dropped, without dropping one that is reached (every
script still defines each function its code names) and without changing
what Redis compiles."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import redis.asyncio as aredis

from conveyor.engine.client.assemble import assemble, expand, shake
from conveyor.engine.client.scripts import Script

NAMES = sorted(
    entry.name.removesuffix(".lua")
    for entry in (resources.files("conveyor.engine") / "lua").iterdir()
    if entry.name.endswith(".lua")
)
_DEFINED = re.compile(r"^local function (\w+)\(", re.MULTILINE)


def _code(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if not line.lstrip().startswith("--"))


SAMPLE = """-- header
--@include none
local LIMIT = 3

-- used(x): called by the body
local function used(x)
  return helper(x) + LIMIT
end

-- helper(x): called only by used
local function helper(x)
  if x then
    return 1
  end
  return 2
end

-- unused(): named only in comments (see unused)
local function unused()
  return 0
end

local function tagged()
  return 'x'
end

local n = used(1) -- not unused
local tag = "--" .. '--' .. tagged() -- a string is not a comment
return n
"""


def test_functions_nothing_reaches_are_dropped_with_their_comments() -> None:
    shaken = shake(SAMPLE)
    assert _DEFINED.findall(shaken) == ["used", "helper", "tagged"]
    assert "-- unused(): named only in comments" not in shaken
    assert "-- helper(x): called only by used" in shaken
    # the rest is left as written, in order
    assert shaken.startswith("-- header\n--@include none\nlocal LIMIT = 3\n")
    assert shaken.endswith("local n = used(1) -- not unused\n" + SAMPLE.split("-- not unused\n")[1])


@pytest.mark.parametrize("name", NAMES)
def test_every_script_still_defines_each_function_its_code_names(name: str) -> None:
    whole, shaken = expand(name), assemble(name)
    kept = set(_DEFINED.findall(shaken))
    named = set(re.findall(r"[A-Za-z_]\w*", _code(shaken)))
    assert set(_DEFINED.findall(whole)) & named <= kept
    # nothing else changed: the kept functions read as they did
    for fn in kept:
        body = re.search(rf"^local function {fn}\(.*?^end$", shaken, re.M | re.S)
        assert body is not None and body.group(0) in whole


async def test_every_assembled_script_compiles_in_redis(redis: aredis.Redis) -> None:
    for name in NAMES:
        script = Script(name)
        assert await redis.script_load(script.source) == script.sha, name
