"""What the adapters share: one error tree that says what the caller can do,
short in-process retries, and redaction of secrets from anything logged."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, TypeVar

import httpx

log = logging.getLogger("setlist.upstream")
T = TypeVar("T")

#: Waits up to this long happen inside the job; longer ones reschedule it.
MAX_INLINE_WAIT = 2.0

#: What each request to an upstream enters first: a rate limiter shared by
#: every worker process (Conveyor's ``Limiter``), or nothing.
Gate = AbstractAsyncContextManager[Any]


def open_gate() -> Gate:
    return nullcontext()


#: What a whole call to an upstream (its retries included) runs inside: a
#: circuit breaker shared by every worker process (Conveyor's
#: ``CircuitBreaker``, which raises ``CircuitOpen`` while the upstream is
#: taken for down), or nothing.
Breaker = AbstractAsyncContextManager[Any]


class UpstreamError(Exception):
    """Raised when an upstream API call fails; ``retryable`` says whether
    trying again later can help."""

    retryable = True

    def __init__(self, service: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status


class Throttled(UpstreamError):
    """Raised when an upstream asks us to wait ``retry_after`` seconds
    (rate limit, spike arrest, daily quota): the job should be put back
    and the queue held, not a worker kept asleep."""

    def __init__(self, service: str, message: str, retry_after: float) -> None:
        super().__init__(service, message, status=429)
        self.retry_after = retry_after


class Unavailable(UpstreamError):
    """Raised on 5xx answers and network errors that outlasted the retries."""


class Rejected(UpstreamError):
    """Raised on a 4xx that a retry would not fix (bad key, bad request)."""

    retryable = False


_SECRET_PARAMS = re.compile(
    r"(apikey=|api_key=|x-api-key[\"':\s]+|Identifier : )([^&\s\"',}]+)", re.IGNORECASE
)


def redact(text: str, *secrets: str) -> str:
    """``text`` with API keys and the given secrets replaced by ``***``
    (Ticketmaster's quota fault echoes the key in its body)."""
    out = _SECRET_PARAMS.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out


def retry_after(response: httpx.Response, default: float) -> float:
    """Seconds from a ``Retry-After`` header (any case); ``default`` when it
    is missing, empty, zero or not a number."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if seconds > 0 else default


async def with_retries(
    service: str,
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 4,
    base_delay: float = 0.25,
    breaker: Breaker | None = None,
) -> T:
    """Runs ``call``, retrying Unavailable and short Throttled waits with
    jittered exponential backoff; a Throttled wait beyond MAX_INLINE_WAIT,
    and everything else, is raised at once. Inside ``breaker`` when given:
    a call that still fails counts against the upstream there."""
    if breaker is None:
        return await _retried(service, call, attempts, base_delay)
    async with breaker:
        return await _retried(service, call, attempts, base_delay)


async def _retried(service: str, call: Callable[[], Awaitable[T]], attempts: int, base_delay: float) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Throttled as exc:
            if exc.retry_after > MAX_INLINE_WAIT or attempt == attempts:
                raise
            log.info("%s throttled; waiting %.2fs", service, exc.retry_after)
            await asyncio.sleep(exc.retry_after)
        except (Unavailable, httpx.TransportError) as exc:
            if attempt == attempts:
                if isinstance(exc, httpx.TransportError):
                    raise Unavailable(service, f"network error: {type(exc).__name__}") from None
                raise
            await asyncio.sleep(base_delay * 2 ** (attempt - 1) * (1 + random.random() / 2))
    raise AssertionError("unreachable")
