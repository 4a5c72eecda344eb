"""Making Redis clients. ``connect()`` gives the async client that queues and
workers share; workers derive a sync client from it for their lease thread.

Besides ``redis://``, ``rediss://`` and ``unix://``, a URL may name a
Sentinel-managed primary: ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``
(``rediss+sentinel://`` for TLS to the primary; ``?sentinel_password=`` when
the sentinels have a password of their own). The client asks the sentinels
where the primary is whenever it connects, so after a failover it follows
the new primary by itself.

``redis+cluster://[user:password@]host:port[,host:port...]`` (or
``rediss+cluster://``) names a Redis Cluster by some of its nodes; the
client learns the rest and which primary serves which slot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import redis
import redis.sentinel
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, Connection
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from conveyor.engine.client.channel import Client
from conveyor.engine.client.cluster import CLUSTER_SCHEMES, ClusterClient, RedisClient, cluster_nodes
from conveyor.engine.client.errors import connection_failed, describe, redis_errors
from conveyor.errors import ConnectionFailed, InvalidArgument
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


def _split_url(
    url: str, schemes: tuple[str, ...], kind: str
) -> tuple[str, str | None, str | None, list[tuple[str, int]], str, str]:
    """(scheme, username, password, [(host, port)...], path, query) of a
    URL that names several hosts."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in schemes:
        raise InvalidArgument(f"not a {kind} URL (expected {' or '.join(schemes)}://): {url!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    auth, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    addresses: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"each {kind} node must be given as host:port, not {item!r}, in {url!r}")
        addresses.append((host.strip("[]"), int(port)))
    return scheme, username, password, addresses, path, query


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Reads ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``.

    Raises ValueError saying what is wrong with the URL."""
    scheme, username, password, sentinels, path, query = _split_url(url, SENTINEL_SCHEMES, "Sentinel")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise InvalidArgument(f"a Sentinel URL names the service after the hosts (…/service[/db]): {url!r}")
    if len(parts) == 2 and not parts[1].isdigit():
        raise InvalidArgument(f"the database must be a number, not {parts[1]!r}, in {url!r}")
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


@dataclass(frozen=True)
class ClusterAddress:
    """What a ``redis+cluster://`` URL names: nodes to start from (the
    client learns the others from them)."""

    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_cluster_url(url: str) -> ClusterAddress:
    """Reads ``redis+cluster://[user:password@]host:port[,host:port...]``.

    Raises ValueError saying what is wrong with the URL."""
    scheme, username, password, nodes, path, query = _split_url(url, CLUSTER_SCHEMES, "Redis Cluster")
    if path.strip("/") not in ("", "0") or query:
        raise InvalidArgument(f"a Redis Cluster has database 0 only and takes no options: {url!r}")
    return ClusterAddress(nodes=nodes, username=username, password=password, tls=scheme.startswith("rediss"))


#: Connections of a client's pool; callers past it wait (up to the timeout).
POOL_SIZE = 100


def connect(url: str | None = None, *, settings: RedisSettings | None = None) -> Client | ClusterClient:
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
    scheme = url.partition("://")[0]
    if scheme in SENTINEL_SCHEMES:
        return _via_sentinels(parse_sentinel_url(url), s, common)
    if scheme in CLUSTER_SCHEMES:
        return _cluster(parse_cluster_url(url), s, common)
    tcp: dict[str, Any] = {} if url.startswith("unix:") else {"socket_keepalive": True}
    if url.startswith("rediss:") and s.tls_ca_file and "ssl_ca_certs=" not in url:
        tcp["ssl_ca_certs"] = s.tls_ca_file
    # A burst of callers past the pool's size (a server's clients) waits up
    # to the timeout for a free connection instead of failing at once.
    pool = BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=s.timeout, **common, **tcp)
    client = Client(connection_pool=pool)
    client.auto_close_connection_pool = True
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
    sentinels = Sentinel(address.sentinels, sentinel_kwargs=asking)
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


def _cluster(address: ClusterAddress, s: RedisSettings, common: dict[str, Any]) -> ClusterClient:
    """A cluster client starting from the URL's nodes. Its retry covers a
    node that stopped answering: it reads the slot table again and resends."""
    options: dict[str, Any] = {k: v for k, v in common.items() if k != "retry_on_error"}
    if address.tls:
        options["ssl"] = True
        if s.tls_ca_file:
            options["ssl_ca_certs"] = s.tls_ca_file
    return ClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        **options,
    )


async def ping(client: RedisClient) -> float:
    """Checks that Redis answers; returns the round trip in seconds.

    Raises ConnectionFailed naming the host and port when Redis is
    unreachable or refuses the credentials.
    """
    import time

    start = time.perf_counter()
    try:
        with redis_errors(client):
            await client.ping()
    except OSError as exc:
        raise connection_failed(client, exc) from exc
    except ResponseError as exc:
        raise ConnectionFailed(f"Redis at {describe(client)} answered: {exc}") from exc
    return time.perf_counter() - start


_SYNC_CLASSES = {
    "Connection": redis.Connection,
    "SSLConnection": redis.SSLConnection,
    "UnixDomainSocketConnection": redis.UnixDomainSocketConnection,
}


def sync_twin(client: RedisClient) -> redis.Redis | redis.cluster.RedisCluster:
    """A blocking client for the same server and credentials as ``client``
    (for threads that must not depend on the event loop); for a client of a
    Sentinel-managed primary, one that asks the same sentinels; for a
    cluster's, a cluster client that starts from the nodes it knows."""
    if isinstance(client, RedisCluster):
        return _sync_cluster(client)
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
        sentinels = redis.sentinel.Sentinel(addresses, sentinel_kwargs=asking)
        if pool.connection_class.__name__.endswith("SSLConnection"):
            kwargs["ssl"] = True
        twin: redis.Redis = sentinels.master_for(pool.service_name, **kwargs, **retry)
        if isinstance(client, Client) and (watch := client.follow_failovers()) is not None:
            watch.follow(twin.connection_pool)
        return twin
    cls = _SYNC_CLASSES.get(pool.connection_class.__name__, redis.Connection)
    sync_pool = redis.ConnectionPool(connection_class=cls, **kwargs)
    return redis.Redis(connection_pool=sync_pool, **retry)


_CLUSTER_KWARGS = (
    "username",
    "password",
    "socket_keepalive",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)


def _sync_cluster(client: RedisCluster) -> redis.cluster.RedisCluster:
    kw = client.nodes_manager.connection_kwargs
    kwargs: dict[str, Any] = {k: kw[k] for k in _CLUSTER_KWARGS if kw.get(k) is not None}
    if kw.get("connection_class") is not Connection:
        kwargs["ssl"] = True
    return redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in cluster_nodes(client)],
        socket_connect_timeout=5.0,
        socket_timeout=10.0,
        retry=_Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        **kwargs,
    )
