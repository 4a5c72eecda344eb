"""The optional parts of Conveyor and the extra that installs each.

A worker-only install (``pip install conveyor``) brings the engine, workers,
schedules, the event bus and the CLI. The HTTP API and dashboard
(``conveyor serve``, ``conveyor up``) need ``conveyor[server]``, tracing
(:mod:`conveyor.otel`) needs ``conveyor[otel]``, the archive of finished
jobs to SQL (:mod:`conveyor.archive`) ``conveyor[sql]`` and the database's
async driver. A feature whose extra is
missing raises :class:`~conveyor.errors.MissingExtra` naming the install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from conveyor.errors import MissingExtra


@dataclass(frozen=True, slots=True)
class Extra:
    """An optional dependency set: its name in ``conveyor[name]``, what it
    brings, and the top-level modules that tell it is installed."""

    name: str
    brings: str
    modules: tuple[str, ...]

    def installed(self) -> bool:
        """Whether every module of the extra can be imported."""
        return not self.missing()

    def missing(self) -> list[str]:
        """The extra's modules that cannot be found."""
        absent = []
        for module in self.modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                absent.append(module)
        return absent

    def require(self, feature: str) -> None:
        """Raise :class:`MissingExtra` unless the extra is installed;
        ``feature`` is what needs it, as the user named it."""
        absent = self.missing()
        if absent:
            raise MissingExtra(
                f"{feature} needs {self.brings}, which is not installed "
                f"(no {', '.join(absent)}): pip install 'conveyor[{self.name}]'"
            )


SERVER = Extra(
    "server",
    "the HTTP API and dashboard",
    ("fastapi", "uvicorn", "sse_starlette", "multipart"),
)
OTEL = Extra("otel", "OpenTelemetry", ("opentelemetry",))
SQL = Extra("sql", "SQLAlchemy", ("sqlalchemy",))

__all__ = ["OTEL", "SERVER", "SQL", "Extra"]
