"""OpenTelemetry across processes: a job added under a request's span gets
a producer span whose context travels in the job; a worker process runs
it under a consumer span linked to that producer span, with the messaging
attributes, the handler's own spans as children, and a failure's status
and exception; with ``same_trace`` the run joins the producer's trace."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conveyor import Conveyor, TaskContext
from conveyor.otel import OpenTelemetry

TRACED_APP = """
import os

from conveyor import Conveyor, TaskContext
from conveyor.otel import OpenTelemetry


def build(provider, same_trace=False):
    tracer = provider.get_tracer("handler")
    middleware = [OpenTelemetry(tracer_provider=provider, same_trace=same_trace)]
    app = Conveyor(os.environ["REDIS_URL"], middleware=middleware)
    work = app.queue(os.environ["QUEUE"])

    @work.task
    async def greet(ctx: TaskContext, who: str) -> str:
        with tracer.start_as_current_span("inside"):
            if who == "nobody":
                raise LookupError("nobody to greet")
        return f"hello {who}"

    return app, greet
"""

WORKER = """
import asyncio
import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from traced_app import build

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
app, _ = build(provider)


async def main():
    await app.run_worker(burst=True)
    await app.aclose()


asyncio.run(main())
for span in exporter.get_finished_spans():
    print(json.dumps({
        "name": span.name,
        "kind": span.kind.name,
        "trace": span.context.trace_id,
        "id": span.context.span_id,
        "parent": span.parent.span_id if span.parent else None,
        "links": [[link.context.trace_id, link.context.span_id] for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [event.name for event in span.events],
    }))
"""


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def load_app(tmp_path: Path, provider: TracerProvider, **kw: Any) -> Any:
    """The app of TRACED_APP (QUEUE and REDIS_URL set), as the worker process imports it."""
    (tmp_path / "traced_app.py").write_text(TRACED_APP)
    namespace: dict[str, Any] = {}
    exec(TRACED_APP, namespace)
    return namespace["build"](provider, **kw)


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_a_run_in_a_worker_process_is_a_consumer_span_linked_to_its_producer_span(
    tmp_path: Path, redis_url: str, queue_name: str, monkeypatch: Any
) -> None:
    monkeypatch.setenv("QUEUE", queue_name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    provider, exporter = recording()
    app, greet = load_app(tmp_path, provider)
    tracer = provider.get_tracer("web")
    with tracer.start_as_current_span("POST /greetings") as request:
        ada = await greet.enqueue("ada")
        nobody = await greet.enqueue("nobody")
    await app.aclose()

    (tmp_path / "worker.py").write_text(WORKER)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == 0, err.decode()
    ran = [json.loads(line) for line in out.decode().splitlines()]

    creates = by_name(list(exporter.get_finished_spans()), f"create {queue_name}")
    assert len(creates) == 2
    for create in creates:
        assert create.kind is SpanKind.PRODUCER
        assert create.parent is not None and create.parent.span_id == request.get_span_context().span_id
        assert dict(create.attributes or {}) == {
            "messaging.system": "conveyor",
            "messaging.destination.name": queue_name,
            "messaging.operation.type": "create",
            "messaging.operation.name": "create",
            "conveyor.job.name": "greet",
        }
    runs = {r["attributes"]["messaging.message.id"]: r for r in ran if r["name"] == f"process {queue_name}"}
    assert set(runs) == {ada.id, nobody.id}
    for job, create in zip((ada, nobody), creates, strict=True):
        run = runs[job.id]
        assert run["kind"] == "CONSUMER"
        assert run["links"] == [[create.context.trace_id, create.context.span_id]]
        assert run["trace"] != create.context.trace_id and run["parent"] is None  # a trace of its own
        assert run["attributes"] == {
            "messaging.system": "conveyor",
            "messaging.destination.name": queue_name,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.message.id": job.id,
            "conveyor.job.name": "greet",
            "conveyor.job.attempt": 1,
        } | ({"error.type": "LookupError"} if job is nobody else {})
    assert runs[ada.id]["status"] == "UNSET" and runs[ada.id]["events"] == []
    assert runs[nobody.id]["status"] == "ERROR" and runs[nobody.id]["events"] == ["exception"]
    inside = {r["parent"] for r in ran if r["name"] == "inside"}
    assert inside == {runs[ada.id]["id"], runs[nobody.id]["id"]}  # the handler's spans are children


async def test_with_same_trace_a_run_is_a_child_of_its_producer_span(
    tmp_path: Path, redis: aredis.Redis, redis_url: str, queue_name: str, monkeypatch: Any
) -> None:
    monkeypatch.setenv("QUEUE", queue_name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    provider, exporter = recording()
    app, greet = load_app(tmp_path, provider, same_trace=True)
    job = await greet.enqueue("grace")  # no ambient span: the producer span starts the trace
    await app.run_worker(burst=True)
    assert await job.wait_until_finished(timeout=5) == "hello grace"
    await app.aclose()

    spans = list(exporter.get_finished_spans())
    (create,) = by_name(spans, f"create {queue_name}")
    (run,) = by_name(spans, f"process {queue_name}")
    assert create.parent is None
    assert run.context.trace_id == create.context.trace_id
    assert run.parent is not None and run.parent.span_id == create.context.span_id
    assert [link.context.span_id for link in run.links] == [create.context.span_id]
    assert run.status.status_code is StatusCode.UNSET


def test_the_middleware_is_a_plain_conveyor_middleware() -> None:
    # no SDK configured: the API's no-op tracer, and nothing breaks
    app = Conveyor(middleware=[OpenTelemetry()])
    work = app.queue("traced")

    @work.task
    async def noop(ctx: TaskContext) -> None:
        return None

    assert work.middleware and isinstance(work.middleware[0], OpenTelemetry)
