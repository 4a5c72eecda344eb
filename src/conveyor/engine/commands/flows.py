"""Flows: adding a node (in a pipeline with the rest of its flow) and
telling a parent that a child finished."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.command import Command
from conveyor.engine.client.scripts import loading
from conveyor.engine.keys import QueueKeys


class NewNode(NamedTuple):
    """One job of a flow as add_flow_node takes it."""

    id: str
    name: str
    data: bytes
    opts: str  # the options' wire form
    priority: int
    lifo: int  # 0/1
    delay: int  # as in NewJob
    parent_job_key: str  # '' none
    flags: str  # 'f' fail the parent on failure, 'i' ignore on failure


class NodeAdded(NamedTuple):
    now: int
    created: int  # 1, or 0 when a job of that id exists


ADD_FLOW_NODE = Command(
    "add_flow_node",
    keys=("wait", "delayed", "marker", "seq_counter", "waiting_children"),
    argv=("job_key_prefix", "now", *NewNode._fields, "child_keys"),
    more_argv=True,
    reply=NodeAdded,
)
CHILD_DONE = Command(
    "child_done",
    keys=("wait", "marker", "seq_counter", "waiting_children", "failed"),
    argv=(
        "job_key_prefix",
        "logs_prefix",
        "now",
        "parent_id",
        "child_key",
        "kind",
        "value",
        "flags",
        "failed_keep_count",
        "failed_keep_age_ms",
    ),
)


def queue_flow_node(pipe: Any, k: QueueKeys, now: Arg, node: NewNode, child_keys: Sequence[str]) -> None:
    """Queues adding ``node`` to ``pipe`` (a transaction holding the rest
    of its run, sent by :func:`run_flow`); its reply is a :class:`NodeAdded`."""
    ADD_FLOW_NODE.queue_in(
        pipe,
        [k.wait, k.delayed, k.marker, k.seq, k.waiting_children],
        [k.job_prefix, now, *node, *child_keys],
    )


async def run_flow(client: RedisClient, pipe: Any, queue_run: Callable[[Any], None]) -> list[Any]:
    """Sends the transaction ``queue_run`` queues on ``pipe`` (add_flow_node
    calls); while Redis answers NOSCRIPT (EXEC ran nothing: the script was
    not loaded yet, or its cache was flushed, even between a load and the
    EXEC), loads the script and sends the transaction again (see
    :func:`~conveyor.engine.client.scripts.loading`). Returns the replies."""

    async def execute() -> list[Any]:
        return list(await pipe.execute())

    async def load() -> None:
        await client.script_load(ADD_FLOW_NODE.source)
        await pipe.reset()
        queue_run(pipe)

    queue_run(pipe)
    return await loading(execute, load)


async def child_done(
    client: RedisClient,
    parent: QueueKeys,
    parent_id: str,
    *,
    now: Arg,
    child_key: str,
    kind: str,
    value: str,
    flags: str,
    keep_failed: Sequence[int],
) -> int:
    """Records a child's outcome (``kind`` 'c' completed with result JSON
    ``value``, 'f' failed with error text) on its parent: 1 the parent is
    released, 2 it failed, 3 recorded (others pending), 0 nothing to do."""
    return int(
        await CHILD_DONE.run(
            client,
            [parent.wait, parent.marker, parent.seq, parent.waiting_children, parent.failed],
            [
                parent.job_prefix,
                parent.logs_prefix,
                now,
                parent_id,
                child_key,
                kind,
                value,
                flags,
                *keep_failed,
            ],
        )
    )
