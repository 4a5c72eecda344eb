"""JSON encoding of payloads and results. No pickle, ever."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
import orjson

from conveyor.errors import PayloadError, PayloadTooLarge

DEFAULT_MAX_PAYLOAD = 512 * 1024


def dumps(value: Any) -> bytes:
    """Encodes ``value`` as JSON; raises PayloadError if it cannot be,
    NaN and infinities included (JSON has no such numbers)."""
    try:
        raw = orjson.dumps(value)
    except TypeError as exc:
        raise PayloadError(f"not JSON-serialisable: {exc}") from None
    # orjson writes NaN and infinities as null: look only when a null is there
    if b"null" in raw and _non_finite(value):
        raise PayloadError("not JSON-serialisable: NaN and Infinity are not JSON numbers")
    return raw


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_non_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def dumps_payload(value: Any, limit: int, what: str = "job data") -> bytes:
    """Encodes job data (or a result, progress: ``what``), enforcing the
    size limit (bytes; 0 = none)."""
    raw = dumps(value)
    if limit and len(raw) > limit:
        raise PayloadTooLarge(len(raw), limit, what)
    return raw


def loads(raw: bytes | str) -> Any:
    """Decodes JSON; raises PayloadError for bytes that are not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"undecodable JSON: {exc}") from None


def loads_or_text(raw: bytes) -> Any:
    """Decodes JSON, or gives the bytes as text when they are not JSON
    (for showing what is stored, never for running it)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


def text(raw: Any) -> str:
    """A Redis reply value as text: bytes decoded (undecodable ones
    replaced), anything else through ``str``."""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def packb(value: Any) -> bytes:
    """Packs rows for a script argument (msgpack, strings as raw, which
    Redis's Lua cmsgpack reads)."""
    return msgpack.packb(value, use_bin_type=False)  # type: ignore[no-any-return]


def unpack_reply(raw: bytes) -> Any:
    """Unpacks a script's msgpack reply; strings come back as str (bytes that
    are not UTF-8 survive as surrogate escapes and then fail JSON decoding)."""
    return msgpack.unpackb(raw, raw=False, unicode_errors="surrogateescape", strict_map_key=False)
