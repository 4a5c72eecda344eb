"""A job as people read it, the same in the API, the dashboard and the
command line: options under their public names and in words with units,
the attempt it is on out of those it may use, and an error only where it
is the job's outcome."""

from __future__ import annotations

from typing import Any

from conveyor.engine.job import Job
from conveyor.engine.states import JobState

TIMES = "\N{MULTIPLICATION SIGN}"
_WIRE_NAMES = {"a": "attempts", "b": "backoff", "t": "timeout", "kl": "keep_logs", "h": "headers"}
_BACKOFF_KINDS = {"exp": "exponential", "fixed": "fixed", "custom": "custom"}
_BACKOFF_NAMES = {"s": "seconds", "f": "factor", "m": "max_seconds", "j": "jitter", "n": "name"}


def readable_options(wire: dict[str, Any]) -> dict[str, Any]:
    """A job's stored options under their ``Queue.add`` names."""
    out: dict[str, Any] = {}
    for key, value in wire.items():
        if key in ("rc", "rf") and isinstance(value, list) and len(value) == 2:
            count, age_ms = value
            out["keep_completed" if key == "rc" else "keep_failed"] = {
                "count": None if count < 0 else count,
                "age_seconds": age_ms / 1000 if age_ms else None,
            }
        elif key == "b" and isinstance(value, dict):
            kind = str(value.get("t"))
            backoff: dict[str, Any] = {"kind": _BACKOFF_KINDS.get(kind, kind)}
            for short, long in _BACKOFF_NAMES.items():
                if short in value:
                    backoff[long] = bool(value[short]) if short == "j" else value[short]
            out["backoff"] = backoff
        else:
            out[_WIRE_NAMES.get(key, key)] = value
    return out


def seconds(value: float) -> str:
    """``0.2 s``, ``90 s``, ``2 h``, ``1 day``, ``7 days``."""
    if value >= 86_400 and value % 86_400 == 0:
        days = int(value // 86_400)
        return f"{days} day" if days == 1 else f"{days} days"
    if value >= 3_600 and value % 3_600 == 0:
        return f"{int(value // 3_600)} h"
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)} min"
    return f"{value:g} s"


def _keep(spec: Any, what: str) -> str:
    if not isinstance(spec, dict):
        return f"keep {what}: {spec}"
    count, age = spec.get("count"), spec.get("age_seconds")
    if count == 0:
        return f"remove when {what}"
    kept = "every" if count is None else f"{count:,}"
    return f"keep {kept} {what}" + (f" for {seconds(age)}" if age else "")


def _backoff(spec: Any) -> str:
    if not isinstance(spec, dict):
        return f"backoff {spec}"
    kind = spec.get("kind")
    if kind == "exponential":
        base, factor = seconds(spec.get("seconds", 1.0)), spec.get("factor", 2.0)
        text = f"backoff exponential {base} {TIMES} {factor:g}"
        if spec.get("max_seconds") is not None:
            text += f", at most {seconds(spec['max_seconds'])}"
        return text + (" with jitter" if spec.get("jitter") else "")
    if kind == "fixed":
        return f"backoff fixed {seconds(spec.get('seconds', 0))}"
    return f"backoff {spec.get('name', kind)}"


def options_summary(readable: dict[str, Any]) -> list[str]:
    """The options of :func:`readable_options` in words, one per line:
    ``attempts 3``, ``backoff exponential 0.2 s x 2 with jitter`` (with a
    multiplication sign), ``keep
    1,000 completed for 1 day``..."""
    lines = [f"attempts {readable.get('attempts', 1)}"]
    if "backoff" in readable:
        lines.append(_backoff(readable["backoff"]))
    if readable.get("timeout") is not None:
        lines.append(f"timeout {seconds(readable['timeout'])}")
    if "keep_completed" in readable:
        lines.append(_keep(readable["keep_completed"], "completed"))
    if "keep_failed" in readable:
        lines.append(_keep(readable["keep_failed"], "failed"))
    if "keep_logs" in readable:
        lines.append(f"keep {readable['keep_logs']:,} log lines")
    if readable.get("headers"):
        lines.append("headers " + ", ".join(sorted(readable["headers"])))
    return lines


def attempt_text(job: Job) -> str:
    """``1 of 3``: the attempt the job is on (or ended at) of those it may use."""
    allowed = job.options.get("a", 1) if isinstance(job.options, dict) else 1
    return f"{job.attempts_started} of {allowed}"


def outcome_error(job: Job) -> str | None:
    """The error that is the job's outcome: a failed job's. A job that
    completed after failed attempts has none (those are in its history)."""
    return job.error if job.state is JobState.FAILED else None
