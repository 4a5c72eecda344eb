"""Flows: a parent job that runs once its children (on any queues, nested
to any depth) have finished, and reads their results.

Adding a flow writes every node with one script per node inside one
MULTI/EXEC, so on a single Redis (or Sentinel) a flow appears whole or not
at all; every node has an id and adding it again changes nothing, so a flow
whose add failed midway can simply be added again. A Redis Cluster runs a
MULTI in one slot only: there the nodes are written a run of one queue's
nodes at a time, each run whole, every parent before its children (so a
child never finishes before its parent exists). An add that fails midway
says which nodes were written.

A child that finishes for good leaves an outbox entry in its own queue; a
worker of that queue relays it to the parent's queue (``child_done.lua``)
and deletes it. Relaying is idempotent and retried by every worker's sweep,
so a crash between the two steps loses nothing, and no script ever touches
two queues' keys (each queue is one Redis Cluster slot).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from redis.asyncio.cluster import RedisCluster

from conveyor.engine.children import job_ref
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.errors import call, redis_errors
from conveyor.engine.clock import Clock, RedisClock, clock_arg, current_ms
from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD, dumps_payload, loads, text
from conveyor.engine.commands.flows import NewNode, child_done, queue_flow_node, run_flow
from conveyor.engine.job import Job
from conveyor.engine.keys import DEFAULT_PREFIX, QueueKeys, registry_key
from conveyor.engine.middleware import Middleware, check_middleware, stamp_headers
from conveyor.engine.options import DEFAULT_KEEP_FAILED, JobOptions, JobOptionsDict
from conveyor.errors import ConnectionFailed, InvalidJobOptions, RedisOutOfMemory

log = logging.getLogger("conveyor.flows")


@dataclass
class FlowJob:
    """One node of a flow: a job, and the children it waits for.

    ``fail_parent_on_failure``: this job failing for good fails its parent
    at once. ``ignore_dependency_on_failure``: its failure counts as
    finished (the parent sees the error). Neither: the parent waits until
    this job is retried and completes.
    """

    name: str
    queue: str
    data: Any = None
    children: list[FlowJob] = field(default_factory=list)
    options: JobOptionsDict = field(default_factory=lambda: JobOptionsDict())
    fail_parent_on_failure: bool = False
    ignore_dependency_on_failure: bool = False


@dataclass
class FlowNode:
    """What :meth:`FlowProducer.add` wrote: each node's job and children."""

    job: Job
    children: list[FlowNode]


class FlowProducer:
    """Adds flows. Cheap to create; does no I/O until used."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        clock: Clock | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        #: Run for each node added (may set its headers).
        self.middleware = check_middleware(middleware)
        self.max_payload = max_payload
        self.clock: Clock = clock or RedisClock()

    async def add(self, flow: FlowJob) -> FlowNode:
        """Adds ``flow`` (a parent and its children, recursively) and
        returns its nodes. Everything is validated first; InvalidJobOptions
        or a PayloadError means nothing was written."""
        plans: list[_Plan] = []
        root = self._plan(flow, None, "", plans)
        await call(self.redis, self.redis.sadd(registry_key(self.prefix), *{p.keys.queue for p in plans}))
        replies: list[Any] = []
        for run in _runs(plans) if isinstance(self.redis, RedisCluster) else [plans]:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    with redis_errors(self.redis):
                        replies += await run_flow(self.redis, pipe, partial(self._queue_run, run))
                except (ConnectionFailed, RedisOutOfMemory) as exc:
                    if not replies:
                        raise
                    raise _written_in_part(exc, plans[: len(replies)]) from exc
        now = int(replies[0][0]) if replies else 0
        for plan, reply in zip(plans, replies, strict=True):
            plan.created = int(reply[1]) == 1
        return self._nodes(root, now)

    # -- planning -------------------------------------------------------------

    def _plan(self, node: FlowJob, parent_key: str | None, flags: str, plans: list[_Plan]) -> _Plan:
        if not isinstance(node, FlowJob):
            raise InvalidJobOptions(f"a flow is made of FlowJob nodes, not {node!r}")
        if not isinstance(node.name, str) or not node.name:
            raise InvalidJobOptions("every job of a flow needs a non-empty name")
        keys = QueueKeys(node.queue, self.prefix)
        options: dict[str, Any] = dict(node.options)
        if node.children and ("delay" in options or "run_at" in options):
            raise InvalidJobOptions("a parent runs when its children finish: it takes no delay or run_at")
        if any(o in options for o in ("dedup_key", "dedup_ttl", "debounce")):
            raise InvalidJobOptions("jobs of a flow are not deduplicated: give them job ids instead")
        if "group" in options:
            raise InvalidJobOptions("jobs of a flow do not take a group")
        options.setdefault("job_id", f"{node.name}-{uuid.uuid4().hex[:16]}")
        opts = JobOptions.build(stamp_headers(self.middleware, node.queue, node.name, options))
        assert opts.job_id is not None
        plan = _Plan(node, keys, opts, dumps_payload(node.data, self.max_payload), parent_key, flags)
        plans.append(plan)
        for child in node.children:
            child_flags = ("f" if child.fail_parent_on_failure else "") + (
                "i" if child.ignore_dependency_on_failure else ""
            )
            if child_flags == "fi":
                raise InvalidJobOptions("choose fail_parent_on_failure or ignore_dependency_on_failure")
            plan.children.append(self._plan(child, keys.job(opts.job_id), child_flags, plans))
        return plan

    def _queue_call(self, pipe: Any, plan: _Plan) -> None:
        k, opts = plan.keys, plan.opts
        assert opts.job_id is not None
        delay = -opts.run_at_ms if opts.run_at_ms is not None else opts.delay_ms
        node = NewNode(
            opts.job_id,
            plan.node.name,
            plan.payload,
            opts.wire,
            opts.priority,
            1 if opts.lifo else 0,
            delay,
            plan.parent_key or "",
            plan.flags,
        )
        children = [c.keys.job(c.opts.job_id or "") for c in plan.children]
        queue_flow_node(pipe, k, clock_arg(self.clock), node, children)

    def _queue_run(self, run: list[_Plan], pipe: Any) -> None:
        for plan in run:
            self._queue_call(pipe, plan)

    def _nodes(self, plan: _Plan, now: int) -> FlowNode:
        from datetime import UTC, datetime

        from conveyor.engine.states import JobState

        state = JobState.WAITING_CHILDREN if plan.children else JobState.WAITING
        if not plan.children and (plan.opts.delay_ms or plan.opts.run_at_ms):
            state = JobState.DELAYED
        job = Job(
            plan.opts.job_id or "",
            plan.keys.queue,
            plan.node.name,
            plan.node.data,
            state,
            {},
            plan.opts.priority,
            created_at=datetime.fromtimestamp(now / 1000, tz=UTC),
        )
        return FlowNode(job, [self._nodes(c, now) for c in plan.children])


@dataclass
class _Plan:
    node: FlowJob
    keys: QueueKeys
    opts: JobOptions
    payload: bytes
    parent_key: str | None
    flags: str
    children: list[_Plan] = field(default_factory=list)
    created: bool = False


def _runs(plans: list[_Plan]) -> list[list[_Plan]]:
    """``plans`` (parents before their children) cut where the queue
    changes: on a cluster each run is one slot's, written in one MULTI, and
    every parent is written before its children."""
    runs: list[list[_Plan]] = []
    for plan in plans:
        if runs and runs[-1][-1].keys.queue == plan.keys.queue:
            runs[-1].append(plan)
        else:
            runs.append([plan])
    return runs


# -- the worker's side: relaying finished children to their parents ---------


async def relay(redis: RedisClient, keys: QueueKeys, ids: Sequence[str] | None, clock: Clock) -> int:
    """Relays outbox entries of queue ``keys`` to their parents: the given
    child ids, or (None) every entry older than two seconds (the sweep).
    Returns how many entries were relayed and deleted."""
    entries: list[tuple[str, Any]]
    if ids is None:
        entries = await _stale_entries(redis, keys, clock)
    else:
        raws = await redis.hmget(keys.outbox, list(ids)) if ids else []
        entries = [(i, raw) for i, raw in zip(ids, raws, strict=True) if raw is not None]
    done = 0
    for child_id, raw in entries:
        try:
            entry = loads(raw)
            prefix, parent_queue, parent_id = job_ref(str(entry["parent"]))
            parent = QueueKeys(parent_queue, prefix or keys.prefix)
            value = entry.get("value", "")
            outcome = await child_done(
                redis,
                parent,
                parent_id,
                now=clock_arg(clock),
                child_key=str(entry["child"]),
                kind=str(entry.get("kind", "c")),
                value=value if isinstance(value, str) else text(value),
                flags=str(entry.get("flags", "")),
                keep_failed=DEFAULT_KEEP_FAILED.to_wire(),
            )
            if outcome == 2:  # the parent failed in turn: tell its own parent now
                await relay(redis, parent, [parent_id], clock)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("dropping an unreadable flow outbox entry for job %s: %s", child_id, exc)
        await redis.hdel(keys.outbox, child_id)
        done += 1
    return done


async def _stale_entries(redis: RedisClient, keys: QueueKeys, clock: Clock) -> list[tuple[str, Any]]:
    now = await current_ms(clock, redis)
    out = []
    async for child_id, raw in redis.hscan_iter(keys.outbox, count=200):
        try:
            at = int(loads(raw).get("at", 0))
        except (ValueError, TypeError, AttributeError):
            at = 0
        if now - at >= 2000:
            out.append((text(child_id), raw))
        if len(out) >= 1000:
            break
    return out


def _written_in_part(error: ConnectionFailed | RedisOutOfMemory, written: list[_Plan]) -> Exception:
    """``error``, saying which nodes a flow added run by run (on a cluster)
    had written before it."""
    ids = ", ".join(f"{p.keys.queue}/{p.opts.job_id}" for p in written)
    return type(error)(
        f"{error}; on this cluster the flow was written in part, parents first ({ids}): "
        "add it again with the same job ids to complete it"
    )


class FlowRelay:
    """A worker's relay of finished children to their flow parents: the
    children each finish call reports (:meth:`finished`, run beside the
    worker's loop), and a sweep every ``interval`` of entries a crashed
    worker left behind (:meth:`sweep`)."""

    def __init__(self, redis: RedisClient, keys: QueueKeys, clock: Clock, worker_id: str) -> None:
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.worker_id = worker_id
        #: Relays under way (a burst run waits for them).
        self.pending = 0

    async def finished(self, ids: list[Any], then: Callable[[], None]) -> None:
        """Relays one reply's finished children, then calls ``then`` (a
        parent this wakes may be waiting now)."""
        try:
            await self.relay(ids)
        finally:
            self.pending -= 1
            then()

    async def relay(self, ids: list[Any] | None) -> None:
        """Tells the parents of children that finished (None: the sweep)."""
        try:
            await relay(self.redis, self.keys, None if ids is None else [text(i) for i in ids], self.clock)
        except Exception as exc:  # the sweep tries again
            log.warning("worker %s: relaying to flow parents failed: %s", self.worker_id, exc)

    async def sweep(self, interval: float, stopping: Callable[[], bool]) -> None:
        while not stopping():
            await asyncio.sleep(interval)
            if not stopping():
                await self.relay(None)
