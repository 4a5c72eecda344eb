"""The engine on a Redis Cluster of three primaries started by the test:
queues spread over the nodes, every key of a queue in one slot, flows
across nodes, and a queue whose slot moves to another primary while it is
in use. (The whole engine suite also runs on a cluster with
``pytest --redis-cluster``.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from conveyor import (
    ConnectionFailed,
    FlowJob,
    FlowProducer,
    JobContext,
    JobState,
    Queue,
    RateLimit,
    Worker,
    connect,
)
from conveyor.engine.client.cluster import ClusterClient
from conveyor.engine.client.connection import parse_cluster_url, sync_twin
from conveyor.testing import RedisClusterNodes
from polling import wait_until


async def until(condition: Callable[[], bool], within: float) -> None:
    async def check() -> bool:
        return condition()

    await wait_until(check, within)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes() as nodes:
        yield nodes


@pytest.fixture
async def client(cluster: RedisClusterNodes) -> AsyncIterator[ClusterClient]:
    async with connect(cluster.url) as c:
        assert isinstance(c, ClusterClient)
        yield c


def node_ports(cluster: RedisClusterNodes) -> list[int]:
    return [server.port for server in cluster.servers]


def keys_by_node(cluster: RedisClusterNodes) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for port in node_ports(cluster):
        with redis.Redis(port=port) as node:
            found[port] = [k.decode() for k in node.scan_iter(count=1000)]
    return found


def slot_of(port: int, key: str) -> int:
    with redis.Redis(port=port) as node:
        return int(node.execute_command("CLUSTER", "KEYSLOT", key))


def tag(key: str) -> str | None:
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else None


def names_on_other_nodes(client: ClusterClient, count: int) -> list[str]:
    """``count`` queue names whose slots are served by different primaries."""
    chosen: dict[str, str] = {}
    while len(chosen) < count:
        name = f"q-{uuid.uuid4().hex[:10]}"
        chosen.setdefault(client.node_for(f"conveyor:{{{name}}}:wait").name, name)
    return list(chosen.values())


async def test_the_url_names_nodes_and_bad_ones_are_refused() -> None:
    address = parse_cluster_url("redis+cluster://app:s%3Acret@10.0.0.1:7000,10.0.0.2:7001")
    assert address.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (address.username, address.password, address.tls) == ("app", "s:cret", False)
    assert parse_cluster_url("rediss+cluster://h:7000").tls
    for bad in (
        "redis+cluster://h",
        "redis+cluster://h:7000/3",
        "redis://h:7000",
        "redis+cluster://h:7000?x=1",
    ):
        with pytest.raises(ValueError):
            parse_cluster_url(bad)


async def test_every_key_of_a_queue_stays_in_one_slot(
    cluster: RedisClusterNodes, client: ClusterClient
) -> None:
    names = names_on_other_nodes(client, 3)
    queues = [Queue(name, client) for name in names]
    main = queues[0]
    await main.set_rate_limit(RateLimit(1000, per=1.0))
    await main.set_concurrency(50)
    await main.upsert_schedule("tick", "tick", every=60)
    await main.add("plain", 1)
    await main.add("later", 2, delay=3600)
    await main.add("urgent", 3, priority=1, job_id="order-1")
    await main.add("tenant", 4, group="acme")
    await main.add("doomed", "fail", attempts=1)
    await FlowProducer(client).add(
        FlowJob("parent", names[0], children=[FlowJob("child", names[1]), FlowJob("child", names[2])])
    )

    async def handler(job: JobContext) -> Any:
        await job.log(f"running {job.name}")
        await job.update_progress(50)
        if job.data == "fail":
            raise ValueError("broke")
        return {"done": job.id}

    await asyncio.gather(*(Worker(q, handler, flow_sweep_interval=0.05).run(burst=True) for q in queues))
    await Worker(main, handler).run(burst=True)  # the parent, released by its children

    counts = await main.counts()
    assert counts[JobState.COMPLETED] == 4 and counts[JobState.FAILED] == 1
    assert counts[JobState.DELAYED] == 1
    placed: dict[str, set[tuple[int, int]]] = {}
    for port, keys in keys_by_node(cluster).items():
        for key in keys:
            if (t := tag(key)) in names:
                placed.setdefault(t, set()).add((port, slot_of(port, key)))
            else:
                # only the list of queue names lives outside the queues' slots
                assert t is not None or key == "conveyor:queues", key
    assert set(placed) == set(names)
    for name, where in placed.items():
        assert len(where) == 1, f"keys of {name} are spread over {where}"
    assert len({port for where in placed.values() for port, _ in where}) == 3


async def test_workers_of_queues_on_every_node_finish_every_job(client: ClusterClient) -> None:
    queues = [Queue(name, client) for name in names_on_other_nodes(client, 3)]
    for queue in queues:
        await queue.add_bulk([("j", i) for i in range(200)])
    seen: list[tuple[str, int]] = []

    def handler_of(queue: Queue) -> Callable[[JobContext], Any]:
        async def handler(job: JobContext) -> None:
            seen.append((queue.name, job.data))

        return handler

    workers = [Worker(q, handler_of(q), concurrency=8) for q in queues]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await until(lambda: len(seen) >= 600, within=30)
    finally:
        await asyncio.gather(*(w.close() for w in workers))
        await asyncio.gather(*tasks)
    assert sorted(seen) == sorted((q.name, i) for q in queues for i in range(200))
    for queue in queues:
        assert (await queue.counts())[JobState.COMPLETED] == 200


def begin_migration(cluster: RedisClusterNodes, key: str, to_port: int) -> Callable[[], None]:
    """Migrates the keys of ``key``'s slot to the primary on ``to_port``,
    leaving the slot MIGRATING on its owner and IMPORTING on the target
    (as ``redis-cli --cluster reshard`` does before its last step); returns
    the last step, which hands the slot over."""
    ports = node_ports(cluster)
    slot = slot_of(ports[0], key)
    ids = {}
    for port in ports:
        with redis.Redis(port=port) as node:
            ids[port] = node.execute_command("CLUSTER", "MYID").decode()
    with redis.Redis(port=ports[0]) as node:
        owner = next(
            int(rng[2][1]) for rng in node.execute_command("CLUSTER", "SLOTS") if rng[0] <= slot <= rng[1]
        )
    assert owner != to_port
    with redis.Redis(port=to_port) as target, redis.Redis(port=owner) as source:
        target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to_port])
        while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            source.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)

    def finish() -> None:
        for port in (to_port, owner, *ports):
            with redis.Redis(port=port) as node:
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])

    return finish


def move_slot(cluster: RedisClusterNodes, key: str, to_port: int) -> None:
    """Migrates ``key``'s slot, keys and all, to the primary on ``to_port``."""
    begin_migration(cluster, key, to_port)()


async def test_a_queue_whose_slot_moves_follows_it_without_losing_a_job(
    cluster: RedisClusterNodes, client: ClusterClient
) -> None:
    queue = Queue(names_on_other_nodes(client, 1)[0], client)
    before = client.node_for(queue.keys.wait)
    done: list[int] = []

    async def handler(job: JobContext) -> None:
        done.append(job.data)
        await asyncio.sleep(0.005)

    await queue.add_bulk([("j", i) for i in range(100)])
    worker = Worker(queue, handler, concurrency=4)
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: len(done) >= 20, within=10)
        target = next(p for p in node_ports(cluster) if p != int(before.port))
        await asyncio.to_thread(move_slot, cluster, queue.keys.wait, target)
        for i in range(100, 200):
            await queue.add("j", i)  # the first of these is answered MOVED, then sent on
        await until(lambda: len(set(done)) >= 200, within=30)
    finally:
        await worker.close()
        await task
    assert int(client.node_for(queue.keys.wait).port) == target
    assert sorted(set(done)) == list(range(200))
    counts = await queue.counts()
    assert counts[JobState.COMPLETED] == 200 and counts[JobState.ACTIVE] == 0


async def test_a_script_answered_moved_is_sent_to_the_slots_new_primary(
    cluster: RedisClusterNodes, client: ClusterClient
) -> None:
    queue = Queue(names_on_other_nodes(client, 1)[0], client)
    await queue.add("j", 0)  # the channel to the slot's primary is open
    before = int(client.node_for(queue.keys.wait).port)
    target = next(p for p in node_ports(cluster) if p != before)
    await asyncio.to_thread(move_slot, cluster, queue.keys.wait, target)

    job = await queue.add("j", 1)

    assert client.moves == 1
    assert int(client.node_for(queue.keys.wait).port) == target
    with redis.Redis(port=target) as node:
        assert node.llen(queue.keys.line) == 2
        assert node.hget(queue.keys.job(job.id), "st") == b"waiting"

    async def handler(job: JobContext) -> None:
        pass

    await Worker(queue, handler).run(burst=True)
    assert (await queue.counts())[JobState.COMPLETED] == 2


async def test_the_lease_threads_client_is_a_cluster_client_too(client: ClusterClient) -> None:
    twin = sync_twin(client)
    try:
        assert isinstance(twin, redis.cluster.RedisCluster)
        twin.set("conveyor-test:{x}:k", "v")
        assert await client.get("conveyor-test:{x}:k") == b"v"
    finally:
        twin.close()


async def test_a_plain_client_of_one_node_is_told_to_use_a_cluster_url(
    cluster: RedisClusterNodes, client: ClusterClient
) -> None:
    for port in node_ports(cluster):
        # a queue served by another node, through a client of this node only
        name = next(
            n
            for n in (f"q-{uuid.uuid4().hex[:10]}" for _ in range(1000))
            if int(client.node_for(Queue(n, client).keys.wait).port) != port
        )
        async with connect(f"redis://127.0.0.1:{port}") as plain:
            queue = Queue(name, plain)
            with pytest.raises(ConnectionFailed, match=r"node of a Redis Cluster.*redis\+cluster://"):
                await queue.add("j", 1)
            # on the registry's node the add gets as far as the script, on
            # the others it stops at the registry; either way nothing is added
            assert await client.zcard(queue.keys.wait) == 0 and await client.llen(queue.keys.line) == 0


async def test_a_queue_midway_through_a_slot_migration_waits_for_it(
    cluster: RedisClusterNodes, client: ClusterClient
) -> None:
    # Given a queue whose keys have moved to another primary while its
    # slot is still its old owner's (MIGRATING there, IMPORTING on the target)
    queue = Queue(names_on_other_nodes(client, 1)[0], client)
    await queue.add_bulk([("j", i) for i in range(50)])
    source = int(client.node_for(queue.keys.wait).port)
    target = next(p for p in node_ports(cluster) if p != source)
    finish = await asyncio.to_thread(begin_migration, cluster, queue.keys.wait, target)
    done: list[int] = []

    async def handler(job: JobContext) -> None:
        done.append(job.data)

    async def add_more() -> None:
        for i in range(50, 100):
            await queue.add("j", i)

    # When jobs are added and a worker runs during the migration
    adding = asyncio.create_task(add_more())
    worker = Worker(queue, handler, concurrency=4)
    working = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)
        # a script whose keys are split between the two primaries is
        # answered TRYAGAIN: it waits for the slot instead of failing
        assert not adding.done()
        await asyncio.to_thread(finish)
        await asyncio.wait_for(adding, 10)
        await until(lambda: len(done) >= 100, within=15)
    finally:
        adding.cancel()
        await worker.close()
        await working
    # Then every job ran once, on the slot's new primary
    assert sorted(done) == list(range(100))
    assert int(client.node_for(queue.keys.wait).port) == target
    counts = await queue.counts()
    assert counts[JobState.COMPLETED] == 100 and counts[JobState.ACTIVE] == 0
    with redis.Redis(port=source) as node:
        assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", client.keyslot(queue.keys.wait)) == 0
