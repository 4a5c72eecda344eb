"""What the command line prints when a command fails for a reason the user
can act on (Redis unreachable, wrong credentials, a malformed URL, a bad
argument): one line naming the Redis and the reason, and exit status 1,
never a traceback. ``CONVEYOR_TRACEBACK=1`` shows the traceback too."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

import redis.exceptions

from conveyor.errors import ConveyorError


def where() -> str:
    """host:port (or socket) of the Redis the environment names, without
    credentials; never raises."""
    try:
        from conveyor.settings import RedisSettings

        url = RedisSettings().resolved_url()
    except Exception:  # the settings themselves are what is wrong
        return "the configured Redis"
    if url.startswith("unix:"):
        return urlsplit(url).path or url
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[2] or url


def explain(exc: BaseException) -> str | None:
    """The one line for ``exc``, or None for an error that is a bug."""
    if isinstance(exc, ConveyorError):
        return str(exc)
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return f"Redis at {where()} refused the credentials: {exc}"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError):
        return f"cannot reach Redis at {where()}: {exc}"
    if isinstance(exc, redis.exceptions.ResponseError):
        return f"Redis at {where()} refused a command: {exc}"
    if isinstance(exc, ValueError):  # a malformed URL or setting, a bad argument
        first = str(exc).strip().splitlines()
        return first[0] if first else type(exc).__name__
    return None


def guarded(main: Callable[[], object]) -> None:
    """Runs ``main``; a failure the user can act on becomes one line on
    stderr and exit status 1."""
    try:
        main()
    except Exception as exc:
        line = explain(exc)
        if line is None or os.environ.get("CONVEYOR_TRACEBACK") == "1":
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)
