"""Logging for the long-running commands (``worker``, ``scheduler``,
``serve``, ``up``): one line per record on stderr, with a UTC timestamp,
the level and the logger, in text or JSON. The structured fields the
engine attaches to a record (``event``, ``queue``, ``job_id``, ``name``,
``attempt``, ``duration_ms``...) are the same in both: ``key=value``
after the message in text, keys of the object in JSON."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Literal

import orjson

from conveyor.errors import InvalidArgument

LEVEL_ENV = "CONVEYOR_LOG_LEVEL"
FORMAT_ENV = "CONVEYOR_LOG_FORMAT"
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]

#: What every LogRecord has: anything else was passed in ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def timestamp(record: logging.LogRecord) -> str:
    """The record's time in ISO 8601, UTC, to the millisecond."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record`` (what ``extra`` gave it)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """``2026-12-05T19:40:00.123Z INFO conveyor.engine.worker: message
    key=value ...`` and the traceback, if any, on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extra = " ".join(f"{k}={_text(v)}" for k, v in fields(record).items())
        if extra:
            line = f"{line} {extra}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``,
    ``message``, the record's fields and, for an exception, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def _text(value: Any) -> str:
    shown = str(value)
    return orjson.dumps(shown).decode() if (" " in shown or not shown) else shown


def resolve(level: str | None, fmt: str | None) -> tuple[str, LogFormat]:
    """The level and format asked for, else the environment's
    (``CONVEYOR_LOG_LEVEL``, ``CONVEYOR_LOG_FORMAT``), else info and text."""
    chosen_level = (level or os.environ.get(LEVEL_ENV) or "info").lower()
    chosen_format = (fmt or os.environ.get(FORMAT_ENV) or "text").lower()
    if chosen_level not in LEVELS:
        raise InvalidArgument(f"log level must be one of {', '.join(LEVELS)}, not {chosen_level!r}")
    if chosen_format not in FORMATS:
        raise InvalidArgument(f"log format must be text or json, not {chosen_format!r}")
    return chosen_level, "json" if chosen_format == "json" else "text"


def configure(level: str | None = None, fmt: str | None = None) -> tuple[str, LogFormat]:
    """Sends every record at ``level`` or above to stderr in ``fmt``; the
    choice is also put in the environment, so worker processes started by
    this one log the same way. Returns what was chosen."""
    chosen_level, chosen_format = resolve(level, fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(chosen_level.upper())
    os.environ[LEVEL_ENV], os.environ[FORMAT_ENV] = chosen_level, chosen_format
    return chosen_level, chosen_format
