"""Redis connections as production should run them: over TLS with a
certificate the test makes itself (and refused without its CA), and as an
ACL user that may touch only Conveyor's key prefix, with the engine's
features working under it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis
import trustme
from redis.exceptions import NoPermissionError

from conveyor import (
    ConnectionFailed,
    Durable,
    Event,
    EventBus,
    FlowJob,
    FlowProducer,
    JobContext,
    JobState,
    NotReplicated,
    Queue,
    Scheduler,
    Worker,
    connect,
    ping,
)
from conveyor.engine.client.cluster import RedisClient
from conveyor.server import create_app
from conveyor.testing import RedisServer, free_port
from polling import wait_until

pytestmark = pytest.mark.single_node("starts servers of its own (TLS, ACL users)")

#: The least-privilege user the docs recommend: Conveyor's keys and
#: channels only, no dangerous or admin commands.
ACL_RULES = ["on", ">app-secret", "resetkeys", "~conveyor:*", "resetchannels", "&conveyor:*"]
ACL_RULES += ["-@all", "+@read", "+@write", "+@scripting", "+@connection", "+@keyspace"]
ACL_RULES += ["+@transaction", "+@stream", "+@pubsub", "+@sortedset", "+@hash", "+@list", "+@string", "+@set"]
ACL_RULES += ["-@dangerous", "+info", "+time"]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int, Path]]:
    # A CA and a certificate for localhost, made here
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    where = tmp_path_factory.mktemp("tls")
    cert.private_key_pem.write_to_path(str(where / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    tls_port = free_port()
    args = ["--tls-port", str(tls_port), "--tls-auth-clients", "no"]
    args += ["--tls-cert-file", str(where / "cert.pem"), "--tls-key-file", str(where / "key.pem")]
    args += ["--tls-ca-cert-file", str(where / "ca.pem")]
    with RedisServer(extra_args=args) as server:
        yield server, tls_port, where / "ca.pem"


async def connections_made(client: aredis.Redis) -> int:
    return int((await client.info("stats"))["total_connections_received"])


async def workload(client: RedisClient) -> None:
    """Adds, delays, retries, a flow, a schedule tick, events and the API:
    every part asserts its own outcome."""
    queue = Queue(f"sec-{uuid.uuid4().hex[:8]}", client)
    tries: dict[str, int] = {}

    async def handler(job: JobContext) -> Any:
        tries[job.id] = tries.get(job.id, 0) + 1
        if job.data == "flaky" and tries[job.id] == 1:
            raise RuntimeError("first try fails")
        await job.update_progress(100)
        return {"done": job.data}

    plain = await queue.add("j", "plain")
    later = await queue.add("j", "later", delay=0.05)
    flaky = await queue.add("j", "flaky", attempts=2, backoff=0)
    bulk = await queue.add_bulk([("j", i) for i in range(20)])
    await FlowProducer(client).add(
        FlowJob("parent", queue.name, "parent", children=[FlowJob("child", queue.name, "child")])
    )
    await queue.upsert_schedule("tick", "j", every=0.05)
    await asyncio.sleep(0.06)
    ticks = await Scheduler([queue]).tick()
    assert ticks >= 1
    await queue.remove_schedule("tick")
    async with asyncio.timeout(20):
        await Worker(queue, handler, lock_duration=1.0).run(burst=True)
    for job in (plain, later, flaky, *bulk):
        assert await queue.get_state(job.id) is JobState.COMPLETED
    assert tries[flaky.id] == 2
    counts = await queue.counts()
    assert counts[JobState.COMPLETED] == len(bulk) + 3 + 2 + ticks  # and the flow's two
    assert counts[JobState.FAILED] == counts[JobState.WAITING] == 0

    bus = EventBus(client, f"sec-{uuid.uuid4().hex[:8]}")
    seen: list[Event[Any]] = []

    @bus.on("*")
    async def handle(event: Event[Any]) -> None:
        seen.append(event)

    await bus.publish("user.created", {"n": 1})
    async with asyncio.timeout(10):
        await bus.consumer("g", block=0.1).run(burst=True)
    assert [e.data for e in seen] == [{"n": 1}]

    app = create_app(client, token="t")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        listed = await api.get("/api/queues", headers={"Authorization": "Bearer t"})
        assert listed.status_code == 200
        assert queue.name in {q["name"] for q in listed.json()}
        paused = await api.post(f"/api/queues/{queue.name}/pause", headers={"Authorization": "Bearer t"})
        assert paused.status_code == 204 and await queue.is_paused()


async def test_rediss_with_the_ca_runs_the_engine(tls_server: tuple[RedisServer, int, Path]) -> None:
    _, port, ca = tls_server
    async with connect(f"rediss://localhost:{port}/0?ssl_ca_certs={ca}") as client:
        await ping(client)
        assert getattr(client, "channel", None) is None  # TLS goes through redis-py
        await workload(client)
        # a durable add goes out with its WAIT in one pipeline; no replica here
        lonely = Queue(f"sec-{uuid.uuid4().hex[:8]}", client, durable=Durable(replicas=1, timeout=0.05))
        with pytest.raises(NotReplicated) as caught:
            await lonely.add("j", 1)
        assert caught.value.acked == 0
        assert await lonely.get_state(caught.value.jobs[0].id) is JobState.WAITING


async def test_rediss_refuses_a_certificate_it_cannot_verify(
    tls_server: tuple[RedisServer, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port, ca = tls_server
    # no CA: the self-signed chain is not trusted
    monkeypatch.delenv("REDIS_TLS_CA_FILE", raising=False)
    async with connect(f"rediss://localhost:{port}/0") as client:
        with pytest.raises(ConnectionFailed, match="certificate verify failed"):
            await ping(client)
    # the CA, but an address the certificate does not name
    async with connect(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}") as client:
        with pytest.raises(ConnectionFailed):
            await ping(client)
    # the CA from the environment
    monkeypatch.setenv("REDIS_TLS_CA_FILE", str(ca))
    async with connect(f"rediss://localhost:{port}/0") as client:
        await ping(client)


async def test_an_acl_user_limited_to_the_prefix_runs_the_engine(
    redis: aredis.Redis, redis_server: RedisServer
) -> None:
    user = f"app-{uuid.uuid4().hex[:6]}"
    await redis.execute_command("ACL", "SETUSER", user, *ACL_RULES)
    try:
        async with connect(f"redis://{user}:app-secret@127.0.0.1:{redis_server.port}/0") as client:
            await workload(client)
            # outside the prefix, and admin commands, are refused
            with pytest.raises(NoPermissionError):
                await client.set("elsewhere", 1)
            with pytest.raises(NoPermissionError):
                await client.flushall()
            with pytest.raises(NoPermissionError):
                await client.config_get("maxmemory")
        # a wrong password is reported at once: one connection, no retries
        before = await connections_made(redis)
        async with connect(f"redis://{user}:wrong@127.0.0.1:{redis_server.port}/0") as client:
            with pytest.raises(ConnectionFailed, match="refused the credentials"):
                await ping(client)
        assert await connections_made(redis) - before == 1
    finally:
        await redis.execute_command("ACL", "DELUSER", user)


async def test_an_acl_user_without_client_unblock_still_wakes_for_a_due_job(
    redis: aredis.Redis, redis_server: RedisServer
) -> None:
    # The least-privilege user may not send CLIENT UNBLOCK (an admin
    # command): a timer sets the queue's marker instead, as an add does
    user = f"app-{uuid.uuid4().hex[:6]}"
    await redis.execute_command("ACL", "SETUSER", user, *ACL_RULES)
    ran = asyncio.Event()

    async def handler(job: JobContext) -> None:
        ran.set()

    try:
        async with connect(f"redis://{user}:app-secret@127.0.0.1:{redis_server.port}/0") as client:
            queue = Queue(f"acl-{uuid.uuid4().hex[:8]}", client)
            # the block alone would last a minute
            worker = Worker(queue, handler, concurrency=1, block_timeout=60)
            running = asyncio.create_task(worker.run())

            async def riding() -> bool:
                run = worker._run
                return run is not None and run.riding > 0

            await wait_until(riding)
            assert worker._run is not None
            marker = worker._run.marker
            blocked_on = marker._conn_id
            await queue.add("j", None, delay=0.2)
            await asyncio.wait_for(ran.wait(), 10)
            # the marker's connection was not closed to end the block
            assert marker._conn_id == blocked_on is not None
            assert not marker._may_unblock
            await asyncio.wait_for(worker.close(), 10)
            await running
    finally:
        await redis.execute_command("ACL", "DELUSER", user)


async def test_an_acl_user_without_object_still_claims_large_batches(
    redis: aredis.Redis, redis_server: RedisServer
) -> None:
    # A claim asks OBJECT ENCODING before widening the active set; a user
    # refused OBJECT keeps the compact encoding and loses nothing
    user = f"app-{uuid.uuid4().hex[:6]}"
    await redis.execute_command("ACL", "SETUSER", user, *ACL_RULES, "-object")
    seen: list[int] = []

    async def handler(job: JobContext) -> None:
        seen.append(job.data)

    try:
        async with connect(f"redis://{user}:app-secret@127.0.0.1:{redis_server.port}/0") as client:
            with pytest.raises(NoPermissionError):
                await client.object("encoding", "conveyor:x")
            queue = Queue(f"acl-{uuid.uuid4().hex[:8]}", client)
            await queue.add_bulk([("j", i) for i in range(200)])
            async with asyncio.timeout(20):
                await Worker(queue, handler, concurrency=64).run(burst=True)
            assert sorted(seen) == list(range(200))
            assert (await queue.counts())[JobState.COMPLETED] == 200
    finally:
        await redis.execute_command("ACL", "DELUSER", user)
