"""A worker's settings are one checked value (WorkerOptions): a Worker and
an app's queue take the same settings and refuse the same bad ones, with
the same error, before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import Conveyor, InvalidArgument, InvalidJobOptions, JobContext, Queue, Worker
from conveyor.engine.worker_options import WorkerOptions

BAD: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"concurrency": 0}, InvalidArgument),
    ({"concurrency": True}, InvalidArgument),
    ({"concurrency": 2.5}, InvalidArgument),
    ({"processes": 0}, InvalidArgument),
    ({"max_stalled_count": -1}, InvalidArgument),
    ({"executor": "fork"}, InvalidArgument),
    ({"lock_duration": 0}, InvalidJobOptions),
    ({"lock_duration": float("nan")}, InvalidJobOptions),
    ({"stalled_interval": -1}, InvalidJobOptions),
    ({"shutdown_grace": -1}, InvalidJobOptions),
    ({"shutdown_grace": float("inf")}, InvalidJobOptions),
    ({"retryable": True}, InvalidArgument),
    ({"on_dead_letter": "alert"}, InvalidArgument),
]
#: Settings only a Worker takes (an app's queue leaves them at their defaults).
BAD_FOR_WORKERS: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"renew_interval": 0}, InvalidJobOptions),
    ({"block_timeout": -1}, InvalidJobOptions),
    ({"flow_sweep_interval": 0}, InvalidJobOptions),
    ({"thread_grace": -1}, InvalidJobOptions),
    ({"max_result_size": -1}, InvalidArgument),
    ({"max_log_line": 1.5}, InvalidArgument),
]


async def _handler(job: JobContext) -> None:
    pass


@pytest.mark.parametrize(("bad", "error"), BAD + BAD_FOR_WORKERS)
def test_a_worker_refuses_a_bad_setting(queue: Queue, bad: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(bad))):
        Worker(queue, _handler, **bad)
    with pytest.raises(error, match=next(iter(bad))):
        WorkerOptions(**bad)


@pytest.mark.parametrize(("bad", "error"), BAD)
def test_an_apps_queue_refuses_the_same_settings_with_the_same_error(
    bad: dict[str, Any], error: type[Exception]
) -> None:
    app = Conveyor("redis://127.0.0.1:1/0")
    with pytest.raises(error, match=next(iter(bad))):
        app.queue("q", **bad)
    assert app.queues == {}


def test_the_workers_an_apps_queue_starts_carry_its_settings() -> None:
    app = Conveyor("redis://127.0.0.1:1/0")
    hooks: list[Any] = []

    async def alert(letter: Any) -> None:
        hooks.append(letter)

    declared = app.queue(
        "q",
        concurrency=3,
        lock_duration=4.0,
        stalled_interval=0.5,
        max_stalled_count=2,
        shutdown_grace=7.0,
        on_dead_letter=alert,
        retryable=lambda exc: False,
    )
    worker = declared.worker()
    assert worker.options == declared.worker_settings
    assert (worker.concurrency, worker.lock_ms, worker.stalled_interval) == (3, 4000, 0.5)
    assert (worker.max_stalled_count, worker.shutdown_grace, worker.on_dead_letter) == (2, 7.0, alert)
    assert declared.worker(concurrency=8).concurrency == 8
