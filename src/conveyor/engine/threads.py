"""Plain (``def``) handlers on threads, and what to do with a thread that
outlives its job's timeout, cancel or the worker's shutdown.

Python cannot stop a thread. A handler thread that is still running when
its job is timed out or cancelled keeps running, so:

- it no longer counts against the worker's ``concurrency`` (the pool has
  twice that many threads, so jobs that come next start at once instead of
  queueing behind it);
- its job stays held, its lease renewed, until the thread ends, so no
  other worker can start the job while this one is still in it; the
  timeout or cancel is recorded then.

Work that must be stoppable belongs in the process executor, whose pool
process is killed on a timeout.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
from collections.abc import Callable
from typing import Any


class HandlerAborted(Exception):
    """Internal: a handler raised a ``BaseException`` that is not an
    ``Exception`` (``SystemExit``, ``KeyboardInterrupt``,
    ``GeneratorExit``...); its job fails, the worker goes on."""

    def __init__(self, exc: BaseException) -> None:
        text = str(exc)
        name = type(exc).__name__
        super().__init__(f"handler raised {name}: {text}" if text else f"handler raised {name}")


def _guarded(fn: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return fn(arg)
    except Exception:
        raise
    except BaseException as exc:  # a handler's SystemExit must not end the worker
        raise HandlerAborted(exc) from exc


class ThreadRunner:
    """Runs plain handlers on a pool of ``2 * concurrency`` threads."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._pool = concurrent.futures.ThreadPoolExecutor(2 * concurrency, thread_name_prefix="conveyor-job")

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> concurrent.futures.Future[Any]:
        """Starts ``fn(arg)`` on a thread, in a copy of the caller's context
        (its context variables: a tracing span, say); a BaseException it
        raises comes back as HandlerAborted."""
        return self._pool.submit(contextvars.copy_context().run, _guarded, fn, arg)

    def close(self) -> None:
        """Lets idle threads go; running ones end when their handler does."""
        self._pool.shutdown(wait=False, cancel_futures=True)
