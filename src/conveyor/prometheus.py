"""Prometheus metrics of a worker process, counted as its jobs run
(``conveyor worker APP --metrics-port 9100``, or ``WorkerMetrics`` given
as middleware to an app or a Worker).

The API server's ``/metrics`` reads the queues in Redis (jobs per state,
for all workers together); these are what one worker process did:

- ``conveyor_worker_jobs_started_total{queue, task}``: runs started;
- ``conveyor_worker_jobs_completed_total{queue, task}``;
- ``conveyor_worker_jobs_retried_total{queue, task}``: failed attempts
  with another attempt to come;
- ``conveyor_worker_jobs_failed_total{queue, task}``: jobs failed for good;
- ``conveyor_worker_job_duration_seconds{queue, task}``: a histogram of
  each run's time in its handler, whatever its outcome;
- ``conveyor_worker_jobs_in_flight{queue}``: runs in progress now.

``task`` is the job's name: keep names few (a name per kind of job, not
per job), as every name is a series of its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from conveyor.engine.middleware import Middleware

if TYPE_CHECKING:
    from conveyor.engine.job import JobContext

#: Run times from a millisecond to ten minutes.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class WorkerMetrics(Middleware):
    """Counts the runs of the jobs it wraps into ``registry`` (default: a
    registry of its own; :meth:`serve` exposes it over HTTP)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ("queue", "task")

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"conveyor_worker_jobs_{name}", doc, labels, registry=self.registry)

        self.started = counter("started", "Runs started by this worker process.")
        self.completed = counter("completed", "Jobs completed by this worker process.")
        self.retried = counter("retried", "Failed attempts with another attempt to come.")
        self.failed_for_good = counter("failed", "Jobs that failed for good in this worker process.")
        self.duration = Histogram(
            "conveyor_worker_job_duration_seconds",
            "Each run's time in its handler, whatever its outcome.",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "conveyor_worker_jobs_in_flight", "Runs in progress now.", ("queue",), registry=self.registry
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serves ``/metrics`` on ``port`` from a thread of this process."""
        start_http_server(port, addr=addr, registry=self.registry)

    async def before(self, job: JobContext) -> None:
        self.started.labels(job.queue, job.name).inc()

    def around(self, job: JobContext) -> AbstractAsyncContextManager[None]:
        return self._timed(job)

    @contextlib.asynccontextmanager
    async def _timed(self, job: JobContext) -> AsyncIterator[None]:
        gauge = self.in_flight.labels(job.queue)
        gauge.inc()
        began = time.perf_counter()
        try:
            yield
        finally:
            self.duration.labels(job.queue, job.name).observe(time.perf_counter() - began)
            gauge.dec()

    async def after(self, job: JobContext, result: Any) -> None:
        self.completed.labels(job.queue, job.name).inc()

    async def failed(self, job: JobContext, error: BaseException, retrying: bool) -> None:
        (self.retried if retrying else self.failed_for_good).labels(job.queue, job.name).inc()
