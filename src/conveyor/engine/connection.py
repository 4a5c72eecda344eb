"""Making Redis clients. ``connect()`` gives the async client that queues and
workers share; workers derive a sync client from it for their lease thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from conveyor.engine.channel import Client
from conveyor.engine.scripts import describe
from conveyor.errors import ConnectionFailed
from conveyor.settings import RedisSettings

T = TypeVar("T")
_RETRY_ON = [RedisConnectionError, RedisTimeoutError, ConnectionResetError]


def _worth_retrying(error: Exception) -> bool:
    """Wrong credentials, or a certificate that fails verification, fail the
    same way every time: they are reported at once, not retried."""
    if isinstance(error, AuthenticationError):
        return False
    return "certificate verify failed" not in str(error).lower()


def _narrowed(is_retryable: Callable[[Exception], bool] | None) -> Callable[[Exception], bool]:
    def retryable(error: Exception) -> bool:
        return _worth_retrying(error) and (is_retryable is None or is_retryable(error))

    return retryable


class _AsyncRetry(AsyncRetry):
    """redis-py's retry, minus the retries that cannot help."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        return await super().call_with_retry(do, fail, _narrowed(is_retryable), with_failure_count)


class _Retry(Retry):
    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        return super().call_with_retry(do, fail, _narrowed(is_retryable), with_failure_count)


def connect(url: str | None = None, *, settings: RedisSettings | None = None) -> Client:
    """An asyncio Redis client for ``url``, or for the environment's settings.

    No I/O happens here; use :func:`ping` to fail fast on a bad address or
    password. Commands retry a lost connection with capped exponential
    backoff (about 3 s in all) before raising ConnectionFailed. The client
    works like any redis-py client; close it with ``await client.aclose()``.
    """
    s = settings or RedisSettings()
    url = url or s.resolved_url()
    tcp: dict[str, Any] = {} if url.startswith("unix:") else {"socket_keepalive": True}
    if url.startswith("rediss:") and s.tls_ca_file and "ssl_ca_certs=" not in url:
        tcp["ssl_ca_certs"] = s.tls_ca_file
    client: Client = Client.from_url(  # type: ignore[assignment]
        url,
        socket_timeout=s.timeout,
        socket_connect_timeout=s.timeout,
        retry=_AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), retries=6),
        retry_on_error=list(_RETRY_ON),
        health_check_interval=0,
        **tcp,
    )
    return client


async def ping(client: aredis.Redis) -> float:
    """Checks that Redis answers; returns the round trip in seconds.

    Raises ConnectionFailed naming the host and port when Redis is
    unreachable or refuses the credentials.
    """
    import time

    start = time.perf_counter()
    try:
        await client.ping()
    except AuthenticationError as exc:
        raise ConnectionFailed(f"Redis at {describe(client)} refused the credentials: {exc}") from exc
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise ConnectionFailed(f"cannot reach Redis at {describe(client)}: {exc}") from exc
    except ResponseError as exc:
        raise ConnectionFailed(f"Redis at {describe(client)} answered: {exc}") from exc
    return time.perf_counter() - start


_SYNC_CLASSES = {
    "Connection": redis.Connection,
    "SSLConnection": redis.SSLConnection,
    "UnixDomainSocketConnection": redis.UnixDomainSocketConnection,
}


def sync_twin(client: aredis.Redis) -> redis.Redis:
    """A blocking client for the same server and credentials as ``client``
    (for threads that must not depend on the event loop)."""
    pool = client.connection_pool
    kwargs: dict[str, Any] = dict(pool.connection_kwargs)
    cls = _SYNC_CLASSES.get(pool.connection_class.__name__, redis.Connection)
    for key in ("retry", "retry_on_error", "redis_connect_func", "event_dispatcher"):
        kwargs.pop(key, None)
    kwargs.setdefault("socket_connect_timeout", 5.0)
    kwargs["socket_timeout"] = 10.0
    sync_pool = redis.ConnectionPool(connection_class=cls, **kwargs)
    return redis.Redis(
        connection_pool=sync_pool,
        retry=_Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=list(_RETRY_ON),
    )
