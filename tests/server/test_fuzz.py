"""The HTTP API fuzzed from its own OpenAPI document (schemathesis): for
every operation, generated requests (valid and invalid bodies, paths and
queries) must never answer 5xx, must answer as the document says, and a
request the API rejects (4xx) must change nothing in Redis (checked with
a digest of the whole dataset before and after).

The app runs under uvicorn on a thread of its own, against a Redis of its
own holding a few queues, jobs, schedules and dead letters to act on."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conveyor import Queue, connect
from conveyor.server import create_app
from conveyor.testing import RedisServer, free_port

pytestmark = pytest.mark.single_node("checks the whole dataset with DEBUG DIGEST on the one server")

TOKEN = "fuzz-token"
QUEUES = ("mail", "resize")
#: Operations that stream (Server-Sent Events) never end by themselves.
STREAMING = r"(/events$|/live/|/stream$)"

app = create_app(connect("redis://127.0.0.1:1/0"), token=TOKEN)
schema = schemathesis.openapi.from_dict(app.openapi()).exclude(path_regex=STREAMING)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_redis() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--enable-debug-command", "yes"]) as server:
        asyncio.run(_seed(server.url))
        yield server


async def _seed(url: str) -> None:
    async with connect(url) as client:
        for name in QUEUES:
            queue = Queue(name, client)
            await queue.add_bulk([("j", {"n": i}) for i in range(5)])
            await queue.add("later", {}, delay=3600)
            await queue.upsert_schedule("tick", "t", every=60)


@pytest.fixture(scope="module")
def api_url(fuzzed_redis: RedisServer) -> Iterator[str]:
    port = free_port()
    client = connect(fuzzed_redis.url)
    app = create_app(client, token=TOKEN, max_body=64 * 1024)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", lifespan="off", loop="asyncio"
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await client.aclose()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def digest(fuzzed_redis: RedisServer) -> Iterator[Any]:
    with redis.Redis(port=fuzzed_redis.port) as client:
        yield lambda: client.execute_command("DEBUG", "DIGEST")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_any_request_without_a_server_error(case: Any, api_url: str, digest: Any) -> None:
    before = digest()
    response = case.call(base_url=api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    case.validate_response(response, checks=CHECKS)
    if 400 <= response.status_code < 500:
        assert digest() == before, f"{case.method} {case.formatted_path} answered {response.status_code}"


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_without_the_token_nothing_is_answered_or_changed(case: Any, api_url: str, digest: Any) -> None:
    before = digest()
    response = case.call(base_url=api_url, headers={"Authorization": ""}, timeout=10)
    request = response.request
    said = f"{request.method} {request.url} answered {response.status_code}: {response.text[:200]}"
    if case.path == "/health":
        assert response.status_code < 500, said
    else:  # any method, any body: refused before anything looks at it
        assert response.status_code == 401, said
    assert digest() == before
