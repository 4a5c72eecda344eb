"""OpenTelemetry tracing for Conveyor's jobs (``pip install 'conveyor[otel]'``).

``OpenTelemetry()`` is a :class:`~conveyor.engine.middleware.Middleware`:
give it to ``Conveyor(middleware=[OpenTelemetry()])`` (or to a low-level
``Queue`` and ``Worker``), in the process that adds jobs and in the
workers'. Then:

- each job added gets a ``create <queue>`` span (kind PRODUCER) in the
  caller's trace, and the job carries its context in its headers
  (W3C ``traceparent``, through the configured propagator);
- each run of the job is a ``process <queue>`` span (kind CONSUMER) linked
  to that producer span: by default in a trace of its own (a job may run
  long after, and more than once), or with ``same_trace=True`` as a child
  of the producer span, so that one trace shows the request and its jobs;
- attributes follow OpenTelemetry's messaging conventions:
  ``messaging.system`` ("conveyor"), ``messaging.destination.name`` (the
  queue), ``messaging.operation.type`` and ``messaging.operation.name``
  ("create" or "process"), ``messaging.message.id`` (the job id), with
  ``conveyor.job.name`` and ``conveyor.job.attempt``;
- a run that raises records the exception, sets ``error.type`` and the
  span's status to ERROR; a timeout is a ``TimeoutError``.

Spans a handler starts are children of its run's span, in ``async def``
handlers and in plain ones on the worker's threads alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from conveyor.engine.middleware import Middleware
from conveyor.extras import OTEL

OTEL.require("conveyor.otel")

from opentelemetry import propagate, trace  # noqa: E402
from opentelemetry.trace import Link, SpanKind, Status, StatusCode  # noqa: E402

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator

    from conveyor.engine.job import JobContext

SYSTEM = "conveyor"


class OpenTelemetry(Middleware):
    """Traces jobs from their add to each of their runs.

    ``tracer_provider``: default, the global one; ``propagator``: how the
    context travels in the job's headers (default, the global one: W3C
    trace context and baggage); ``same_trace``: runs are children of the
    producer span instead of roots linked to it."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
        same_trace: bool = False,
    ) -> None:
        from conveyor import __version__

        self.tracer = trace.get_tracer("conveyor", __version__, tracer_provider=tracer_provider)
        self.propagator = propagator
        self.same_trace = same_trace

    def _textmap(self) -> TextMapPropagator:
        return self.propagator or propagate.get_global_textmap()

    def enqueue(self, queue: str, name: str, headers: dict[str, str]) -> None:
        attributes = _attributes(queue, "create")
        attributes["conveyor.job.name"] = name
        with self.tracer.start_as_current_span(
            f"create {queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            self._textmap().inject(headers)

    def around(self, job: JobContext) -> AbstractAsyncContextManager[None]:
        return self._run_span(job)

    @contextlib.asynccontextmanager
    async def _run_span(self, job: JobContext) -> AsyncIterator[None]:
        carried = self._textmap().extract(dict(job.headers))
        producer = trace.get_current_span(carried).get_span_context()
        links = [Link(producer)] if producer.is_valid else []
        attributes: dict[str, Any] = _attributes(job.queue, "process")
        attributes["messaging.message.id"] = job.id
        attributes["conveyor.job.name"] = job.name
        attributes["conveyor.job.attempt"] = job.attempt
        with self.tracer.start_as_current_span(
            f"process {job.queue}",
            context=carried if self.same_trace else None,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise


def _attributes(queue: str, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
