"""Connection settings, connection failures and the pipelined channel."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from conveyor import ConnectionFailed, Job, JobState, OutcomeUnknown, Queue, RedisSettings, connect, ping
from conveyor.engine.client.channel import CHANNEL_NAME
from conveyor.engine.client.connection import SentinelAddress, parse_sentinel_url
from conveyor.testing import RedisServer, free_port


def test_settings_build_the_url_from_the_seeds_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
        "REDIS_USERNAME": "app",
        "REDIS_PASSWORD": "p@ss/word",
        "REDIS_DB": "2",
        "REDIS_TLS": "true",
    }.items():
        monkeypatch.setenv(name, value)

    settings = RedisSettings()

    assert settings.resolved_url() == "rediss://app:p%40ss%2Fword@cache.internal:6380/2"
    assert settings.is_configured()


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    url = "redis+sentinel://app:p%40ss@10.0.0.1:26379,[::1]:26380/orders/3?sentinel_password=s3"
    assert parse_sentinel_url(url) == SentinelAddress(
        sentinels=[("10.0.0.1", 26379), ("::1", 26380)],
        service="orders",
        db=3,
        username="app",
        password="p@ss",
        sentinel_password="s3",
    )
    assert parse_sentinel_url("rediss+sentinel://s1:26379/main").tls


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+sentinel://s1:26379", "names the service"),
        ("redis+sentinel://s1/main", "host:port"),
        ("redis+sentinel://s1:26379,s2:x/main", "host:port"),
        ("redis+sentinel://s1:26379/main/zero", "must be a number"),
        ("redis://s1:26379/main", "not a Sentinel URL"),
    ],
)
def test_a_bad_sentinel_url_is_refused_saying_why(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_sentinel_url(url)
    if url.startswith("redis+"):
        with pytest.raises(ValueError, match=complaint):
            connect(url)


def test_settings_prefer_redis_url_over_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "unix:///run/redis.sock")
    monkeypatch.setenv("REDIS_HOST", "ignored")

    assert RedisSettings().resolved_url() == "unix:///run/redis.sock"


@pytest.mark.parametrize(
    "url", ["redis://h:6379/0", "redis+sentinel://h:26379/main", "redis+cluster://h:7000"]
)
def test_tls_with_a_plain_tcp_url_is_refused_not_sent_in_the_clear(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("REDIS_TLS", "true")
    with pytest.raises(ConnectionFailed, match="REDIS_TLS is on but REDIS_URL is redis"):
        connect()
    monkeypatch.setenv("REDIS_URL", "rediss" + url.removeprefix("redis"))
    assert RedisSettings().resolved_url().startswith("rediss")


def test_settings_reject_an_out_of_range_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "70000")

    with pytest.raises(ValueError, match="port"):
        RedisSettings()


def test_settings_default_to_localhost_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_TLS", "REDIS_DB"):
        monkeypatch.delenv(name, raising=False)

    settings = RedisSettings()

    assert settings.resolved_url() == "redis://127.0.0.1:6379/0"
    assert not settings.is_configured()


@pytest.fixture(scope="module")
def password_server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--requirepass", "s3cret"]) as server:
        yield server


async def test_wrong_password_raises_connection_failed_naming_host_and_port(
    password_server: RedisServer,
) -> None:
    client = connect(f"redis://:wrong@127.0.0.1:{password_server.port}/0")
    where = f"127.0.0.1:{password_server.port}"
    try:
        with pytest.raises(ConnectionFailed, match=where):
            await ping(client)
        with pytest.raises(ConnectionFailed, match="credentials"):
            await Queue("q", client).add("j", 1)
    finally:
        await client.aclose()


async def test_right_password_adds_through_the_channel(password_server: RedisServer) -> None:
    client = connect(f"redis://:s3cret@127.0.0.1:{password_server.port}/3")
    try:
        job = await Queue("q", client).add("j", {"n": 1})

        assert await Queue("q", client).get_job(job.id) is not None
        assert await client.dbsize() > 0
    finally:
        await client.aclose()


async def test_unreachable_redis_raises_connection_failed_instead_of_hanging() -> None:
    port = free_port()
    client = connect(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}"):
            await Queue("q", client).add("j", 1)
    finally:
        await client.aclose()


async def test_unix_socket_url_works(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    with RedisServer(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"]):
        client = connect(f"unix://{sock}")
        try:
            job = await Queue("q", client).add("j", {"n": 1})

            assert (await Queue("q", client).counts())[JobState.WAITING] == 1
            assert job.id == "1"
        finally:
            await client.aclose()


@pytest.fixture
async def own_server() -> AsyncIterator[RedisServer]:
    with RedisServer() as server:
        yield server
        if server.process:  # a test may have left it stopped
            server.process.send_signal(signal.SIGCONT)


async def test_frozen_redis_fails_an_add_within_the_timeout(own_server: RedisServer) -> None:
    client = connect(settings=RedisSettings(url=own_server.url, timeout=0.3))
    queue = Queue("q", client)
    await queue.add("j", 1)
    assert own_server.process is not None
    own_server.process.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(OutcomeUnknown):
            await queue.add("j", 2)

        assert time.monotonic() - start < 2.0
    finally:
        own_server.process.send_signal(signal.SIGCONT)
        await client.aclose()


async def _add_and_lose_the_reply(redis: aredis.Redis, queue: Queue, **options: Any) -> Job:
    """Pauses writes, adds, waits until the add is held in Redis, kills the
    channel's connection, then lets writes go on; returns the add's outcome."""
    await redis.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    try:
        add = asyncio.create_task(queue.add("j", 1, **options))
        for _ in range(200):
            clients = await redis.client_list()
            held = [c for c in clients if c.get("name") == CHANNEL_NAME and c.get("cmd") == "evalsha"]
            if held:
                await redis.client_kill_filter(_id=held[0]["id"])
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the add never reached Redis")
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    return await add


@pytest.fixture
async def channel_queue(redis_server: RedisServer, queue_name: str) -> AsyncIterator[Queue]:
    client = connect(redis_server.url)
    queue = Queue(queue_name, client)
    await queue.add("warm-up", 0)  # opens the channel
    yield queue
    await queue.obliterate(force=True)
    await client.aclose()


@pytest.mark.single_node("pauses the one server and kills the channel's connection")
async def test_add_without_id_whose_reply_is_lost_raises_outcome_unknown(
    redis: aredis.Redis, channel_queue: Queue
) -> None:
    with pytest.raises(OutcomeUnknown):
        await _add_and_lose_the_reply(redis, channel_queue)

    assert (await channel_queue.add("j", 2)).id  # the channel reconnects by itself


@pytest.mark.single_node("pauses the one server and kills the channel's connection")
async def test_add_with_id_whose_reply_is_lost_is_resent_and_added_once(
    redis: aredis.Redis, channel_queue: Queue
) -> None:
    job = await _add_and_lose_the_reply(redis, channel_queue, job_id="order-1")

    assert job.id == "order-1"
    assert (await channel_queue.counts())[JobState.WAITING] == 2
