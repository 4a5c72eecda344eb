"""Making Redis clients. ``connect()`` gives the async client that queues and
workers share; workers derive a sync client from it for their lease thread.

Besides ``redis://``, ``rediss://`` and ``unix://``, a URL may name a
Sentinel-managed primary: ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``
(``rediss+sentinel://`` for TLS to the primary; ``?sentinel_password=`` when
the sentinels have a password of their own). The client asks the sentinels
where the primary is whenever it connects, so after a failover it follows
the new primary by itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import redis
import redis.asyncio as aredis
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
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


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True)
class SentinelAddress:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Reads ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``.

    Raises ValueError saying what is wrong with the URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL (expected {' or '.join(SENTINEL_SCHEMES)}://): {url!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    auth, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"a sentinel must be given as host:port, not {item!r}, in {url!r}")
        sentinels.append((host.strip("[]"), int(port)))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"a Sentinel URL names the service after the hosts (…/service[/db]): {url!r}")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"the database must be a number, not {parts[1]!r}, in {url!r}")
    options = parse_qs(query)
    return SentinelAddress(
        sentinels=sentinels,
        service=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=username,
        password=password,
        sentinel_password=options.get("sentinel_password", [None])[-1],
        tls=scheme.startswith("rediss"),
    )


def connect(url: str | None = None, *, settings: RedisSettings | None = None) -> Client:
    """An asyncio Redis client for ``url``, or for the environment's settings.

    No I/O happens here; use :func:`ping` to fail fast on a bad address or
    password. Commands retry a lost connection with capped exponential
    backoff (about 3 s in all) before raising ConnectionFailed. The client
    works like any redis-py client; close it with ``await client.aclose()``.
    """
    s = settings or RedisSettings()
    url = url or s.resolved_url()
    common: dict[str, Any] = {
        "socket_timeout": s.timeout,
        "socket_connect_timeout": s.timeout,
        "retry": _AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), retries=6),
        "retry_on_error": list(_RETRY_ON),
        "health_check_interval": 0,
    }
    if url.partition("://")[0] in SENTINEL_SCHEMES:
        return _via_sentinels(parse_sentinel_url(url), s, common)
    tcp: dict[str, Any] = {} if url.startswith("unix:") else {"socket_keepalive": True}
    if url.startswith("rediss:") and s.tls_ca_file and "ssl_ca_certs=" not in url:
        tcp["ssl_ca_certs"] = s.tls_ca_file
    client: Client = Client.from_url(url, **common, **tcp)  # type: ignore[assignment]
    return client


def _via_sentinels(address: SentinelAddress, s: RedisSettings, common: dict[str, Any]) -> Client:
    """A client of the primary the sentinels name, asked again on every
    connect. A dead sentinel is skipped; the sentinels are not retried (the
    client's own retry asks them all again)."""
    asking: dict[str, Any] = {
        "socket_timeout": s.timeout,
        "socket_connect_timeout": s.timeout,
        "retry": AsyncRetry(ExponentialBackoff(), retries=0),
    }
    if address.sentinel_password:
        asking["password"] = address.sentinel_password
    sentinels = Sentinel(address.sentinels, sentinel_kwargs=asking)  # type: ignore[no-untyped-call]
    primary: dict[str, Any] = {
        **common,
        "socket_keepalive": True,
        "db": address.db,
        "username": address.username,
        "password": address.password,
    }
    if address.tls:
        primary["ssl"] = True
        if s.tls_ca_file:
            primary["ssl_ca_certs"] = s.tls_ca_file
    client: Client = sentinels.master_for(address.service, redis_class=Client, **primary)
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
    (for threads that must not depend on the event loop); for a client of a
    Sentinel-managed primary, one that asks the same sentinels."""
    pool = client.connection_pool
    kwargs: dict[str, Any] = dict(pool.connection_kwargs)
    for key in ("retry", "retry_on_error", "redis_connect_func", "event_dispatcher", "connection_pool"):
        kwargs.pop(key, None)
    kwargs.setdefault("socket_connect_timeout", 5.0)
    kwargs["socket_timeout"] = 10.0
    retry: dict[str, Any] = {
        "retry": _Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        "retry_on_error": list(_RETRY_ON),
    }
    if isinstance(pool, SentinelConnectionPool):
        manager = pool.sentinel_manager
        addresses = [
            (c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
            for c in manager.sentinels
        ]
        asking = {k: v for k, v in manager.sentinel_kwargs.items() if k != "retry"}
        asking["retry"] = _Retry(ExponentialBackoff(), retries=0)
        sentinels = redis.sentinel.Sentinel(addresses, sentinel_kwargs=asking)  # type: ignore[no-untyped-call]
        if pool.connection_class.__name__.endswith("SSLConnection"):
            kwargs["ssl"] = True
        twin: redis.Redis = sentinels.master_for(pool.service_name, **kwargs, **retry)  # type: ignore[no-untyped-call]
        if isinstance(client, Client) and (watch := client.follow_failovers()) is not None:
            watch.follow(twin.connection_pool)
        return twin
    cls = _SYNC_CLASSES.get(pool.connection_class.__name__, redis.Connection)
    sync_pool = redis.ConnectionPool(connection_class=cls, **kwargs)
    return redis.Redis(connection_pool=sync_pool, **retry)
