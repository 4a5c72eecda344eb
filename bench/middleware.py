"""What hooks around jobs cost: drain rate of no-op jobs (one worker,
concurrency 100) and one-by-one enqueue rate, with no middleware, with a
middleware that overrides nothing, with the worker's Prometheus metrics,
and with OpenTelemetry (an SDK tracer provider whose finished spans go to
an exporter that drops them: the SDK's cost without the network). Runs
are interleaved and repeated; the median is reported with every run.

    python bench/middleware.py [--jobs 40000] [--adds 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from conveyor import Middleware
from conveyor.otel import OpenTelemetry
from conveyor.prometheus import WorkerMetrics
from conveyor.testing import RedisServer
from run import bench_drain, bench_enqueue_single

try:
    import uvloop

    run = uvloop.run
except ImportError:  # pragma: no cover
    run = asyncio.run  # type: ignore[assignment]


class Dropped(SpanExporter):
    """Takes every finished span and keeps none: the SDK's whole cost, no network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def traced() -> list[Middleware]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropped()))
    return [OpenTelemetry(tracer_provider=provider)]


CASES: dict[str, Callable[[], Sequence[Middleware]]] = {
    "none": list,
    "a middleware overriding nothing": lambda: [Middleware()],
    "WorkerMetrics": lambda: [WorkerMetrics()],
    "OpenTelemetry (SDK, spans dropped at export)": traced,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--adds", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    drains: dict[str, list[float]] = {name: [] for name in CASES}
    adds: dict[str, list[float]] = {name: [] for name in CASES}
    with RedisServer() as server:
        for _ in range(args.repeats):
            for name, make in CASES.items():  # interleaved: drift hits every case alike
                drains[name].append(run(bench_drain(server.url, args.jobs, middleware=make())))
                adds[name].append(run(bench_enqueue_single(server.url, args.adds, make())))
    print(f"| middleware | drain, jobs/s ({args.jobs:,} no-op jobs) | one-by-one adds/s ({args.adds:,}) |")
    print("|---|---|---|")
    for name in CASES:
        d, a = drains[name], adds[name]
        print(
            f"| {name} | {statistics.median(d):,.0f} ({', '.join(f'{x:,.0f}' for x in d)}) "
            f"| {statistics.median(a):,.0f} ({', '.join(f'{x:,.0f}' for x in a)}) |"
        )


if __name__ == "__main__":
    main()
