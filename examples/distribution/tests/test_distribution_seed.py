"""What the design names, served by those names: the admin dispatch route,
the ``BULLMQ_*`` settings, every job state change logged with its account
and network, a token refresh added through the dashboard's API with the
task's defaults, and Redis checked against the production notes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from distribution_env import Env
from typer.testing import CliRunner

from conveyor import Conveyor, JobState, connect
from conveyor.server.describe import readable_options
from conveyor.testing import RedisServer
from distribution.api import create_api
from distribution.cli import cli
from distribution.config import Settings
from distribution.journal import Journal
from distribution.redis_policy import findings, server_args
from distribution.service import DISPATCH, QUEUE_NAMES, TOKEN_REFRESH, Distribution

AUTH = {"authorization": "Bearer s3cret"}


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(env.service, token=env.settings.api_token))
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as http:
        yield http


async def test_the_admin_dispatch_route_publishes_a_post(env: Env, client: httpx.AsyncClient) -> None:
    ada = await env.connect("mastodon", "@ada")
    bob = await env.connect("bluesky", "@bob")
    post = await env.store.add_post("From the admin route")
    response = await client.post(
        "/api/admin/distribution/dispatch", json={"postId": post.id, "connectionIds": [ada.id, bob.id]}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert len(body["jobs"]) == 2
    assert await env.work_until_settled(body["scheduleId"]) == "published"
    assert sorted(p["account"] for p in env.networks.posts) == ["@ada", "@bob"]


@pytest.mark.parametrize(
    ("body", "status"),
    [({"connectionIds": [1]}, 422), ({"postId": 99, "connectionIds": [1]}, 404), ({"postId": 1}, 422)],
)
async def test_the_admin_dispatch_route_refuses_bad_bodies_and_writes_nothing(
    env: Env, client: httpx.AsyncClient, body: dict[str, object], status: int
) -> None:
    await env.connect()
    response = await client.post("/api/admin/distribution/dispatch", json=body)
    assert response.status_code == status
    assert await env.store.schedule(1) is None
    assert await env.app.queues[DISPATCH].queue.counts() == dict.fromkeys(JobState, 0)
    refused = await client.post("/api/admin/distribution/dispatch", json=body, headers={"authorization": "x"})
    assert refused.status_code == 401


def test_the_designs_settings_are_read_beside_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULLMQ_CONCURRENCY", "7")
    monkeypatch.setenv("BULLMQ_MAX_RETRIES", "4")
    monkeypatch.setenv("BULLMQ_BACKOFF_DELAY", "2000")  # milliseconds, as the design has it
    settings = Settings()
    assert (settings.concurrency, settings.max_retries, settings.backoff_delay) == (7, 4, 2.0)
    monkeypatch.setenv("DISTRIBUTION_CONCURRENCY", "9")
    monkeypatch.setenv("DISTRIBUTION_BACKOFF_DELAY", "1.5")
    settings = Settings()
    assert (settings.concurrency, settings.backoff_delay) == (9, 1.5)  # ours win
    monkeypatch.setenv("BULLMQ_CONCURRENCY", "0")
    monkeypatch.delenv("DISTRIBUTION_CONCURRENCY")
    with pytest.raises(ValueError, match=r"(?i)concurrency"):
        Settings()


async def test_the_designs_settings_reach_the_queues(
    env: Env, monkeypatch: pytest.MonkeyPatch, redis: object
) -> None:
    monkeypatch.setenv("BULLMQ_CONCURRENCY", "7")
    monkeypatch.setenv("BULLMQ_MAX_RETRIES", "2")
    monkeypatch.setenv("BULLMQ_BACKOFF_DELAY", "40")
    settings = Settings(network_url="http://fake")
    app = Conveyor(env.app.redis)
    distribution = Distribution(app, env.service.distribution.services, settings)
    assert app.queues[DISPATCH].worker_settings.concurrency == 7
    assert distribution.backoff.delay(1) == pytest.approx(0.04)
    schedule_id, (target,) = await env.publish()
    job = await app.queues[DISPATCH].queue.get_job(f"dispatch-{schedule_id}-{target}")
    assert job is not None
    added = await distribution.dispatch.with_options(job_id="again").enqueue(**job.data)
    stored = await app.queues[DISPATCH].queue.get_job(added.id)
    assert stored is not None and readable_options(stored.options)["attempts"] == 3


def test_the_redis_parts_are_read_as_the_design_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor import RedisSettings

    for name in ("REDIS_URL", "REDIS_TLS", "REDIS_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "REDIS_HOST": "cache",
        "REDIS_PORT": "6390",
        "REDIS_PASSWORD": "pw",
        "REDIS_DB": "2",
    }.items():
        monkeypatch.setenv(name, value)
    assert RedisSettings().resolved_url() == "redis://:pw@cache:6390/2"


class _Ends(logging.Handler):
    """Sets ``done`` once ``count`` journal lines told of a job's end."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count, self.done = count, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().split()[1] in ("completed", "dead-lettered"):
            self.count -= 1
            if self.count == 0:
                self.done.set()


async def test_every_state_change_is_logged_with_job_account_and_network(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="distribution.jobs")
    ends = _Ends(3)  # the sent dispatch and the refresh completed, the other dead-lettered
    logging.getLogger("distribution.jobs").addHandler(ends)
    journal = Journal(env.app, env.store, list(QUEUE_NAMES.values()))
    following = asyncio.create_task(journal.run())
    await journal.ready.wait()
    env.networks.fail["bluesky"] = [503] * 4
    schedule_id, (ada, bob) = await env.publish(connections=2)
    await env.service.distribution.token_refresh.enqueue(connection_id=ada)
    assert await env.work_until_settled(schedule_id) == "partial"

    try:
        async with asyncio.timeout(10):  # the journal reads the last events
            await ends.done.wait()
    finally:
        logging.getLogger("distribution.jobs").removeHandler(ends)
    journal.close()
    await following
    lines = [r.getMessage() for r in caplog.records if r.name == "distribution.jobs"]

    def states(job: str) -> list[str]:
        return [line.split()[1] for line in lines if f" job={job} " in line]

    sent, dead = f"dispatch-{schedule_id}-{ada}", f"dispatch-{schedule_id}-{bob}"
    assert states(sent) == ["queued", "active", "completed"]
    assert states(dead) == ["queued", "active"] + ["retrying", "active"] * 3 + ["failed", "dead-lettered"]
    assert all("account=@ada network=mastodon" in line for line in lines if f" job={sent} " in line)
    assert all("account=@ada network=bluesky" in line for line in lines if f" job={dead} " in line)
    assert any("attempt=4" in line and "HTTP 503" in line for line in lines if "dead-lettered" in line)
    refresh = [line for line in lines if line.startswith(TOKEN_REFRESH) and "name=token_refresh" in line]
    assert [line.split()[1] for line in refresh] == ["queued", "active", "completed"]
    assert "network=mastodon" in refresh[-1]


async def test_a_token_refresh_added_through_the_dashboards_api_gets_the_tasks_defaults(
    env: Env, client: httpx.AsyncClient
) -> None:
    connection = await env.connect()
    response = await client.post(
        f"/admin/queues/api/queues/{TOKEN_REFRESH}/jobs",
        json={"name": "token_refresh", "data": {"connection_id": connection.id}},
    )
    assert response.status_code == 201, response.text
    added = response.json()
    assert added["options"]["attempts"] == 5 and added["attempt"] == "0 of 5"
    job = await env.app.queues[TOKEN_REFRESH].queue.get_job(added["id"])
    assert job is not None
    env.networks.fail["mastodon"] = [503]  # one failure: retried, as the task's options say
    await env.app.run_worker(burst=True)
    await asyncio.sleep(0.05)
    await env.app.run_worker(burst=True)
    job = await env.app.queues[TOKEN_REFRESH].queue.get_job(job.id)
    assert job is not None and job.state is JobState.COMPLETED
    unknown = await client.post(f"/admin/queues/api/queues/{TOKEN_REFRESH}/jobs", json={"name": "nope"})
    assert unknown.status_code == 422


async def test_queue_depth_and_failures_are_served_as_metrics(env: Env, client: httpx.AsyncClient) -> None:
    env.networks.fail["mastodon"] = [422]
    schedule_id, _ = await env.publish()
    assert await env.work_until_settled(schedule_id) == "failed"
    await env.publish()
    metrics = await client.get("/admin/queues/metrics")
    assert metrics.status_code == 200
    lines = metrics.text.splitlines()
    assert f'conveyor_jobs{{queue="{DISPATCH}",state="failed"}} 1.0' in lines
    assert f'conveyor_jobs{{queue="{DISPATCH}",state="waiting"}} 1.0' in lines
    assert (await client.get("/admin/queues/metrics", headers={"authorization": "x"})).status_code == 401


async def test_a_redis_as_the_production_notes_ask_passes_the_check() -> None:
    with RedisServer(appendonly=True, password="pw", extra_args=server_args("64mb")) as server:
        async with connect(server.url) as redis:
            found = {f.rule: f for f in await findings(redis)}
    assert all(f.ok for f in found.values()), found
    assert set(found) >= {
        "AOF persistence on",
        "RDB snapshots on",
        "a password",
        "maxmemory-policy noeviction",
    }


async def test_a_default_redis_fails_the_check_on_each_rule() -> None:
    with RedisServer() as server:
        async with connect(server.url) as redis:
            failed = {f.rule for f in await findings(redis) if not f.ok}
    assert failed == {"AOF persistence on", "RDB snapshots on", "a memory limit", "a password"}


def test_distribution_check_exits_by_its_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.delenv("REDIS_HOST", raising=False)
    with (
        RedisServer(appendonly=True, password="pw", extra_args=server_args("64mb")) as good,
        RedisServer() as bad,
    ):
        ok = runner.invoke(cli, ["check"], env={"REDIS_URL": good.url})
        fails = runner.invoke(cli, ["check"], env={"REDIS_URL": bad.url})
        wrong = runner.invoke(cli, ["check"], env={"REDIS_URL": good.public_url})
    assert ok.exit_code == 0, ok.output
    assert "pw" not in ok.output and "fail" not in ok.output
    assert fails.exit_code == 1 and fails.output.count("fail") == 4
    assert wrong.exit_code == 1 and "cannot ask Redis" in wrong.output


async def test_closing_the_queue_service_stops_its_workers_after_their_jobs(env: Env) -> None:
    schedule_id, (target,) = await env.publish()
    env.networks.latency_ms = 200
    queue = env.app.queues[DISPATCH].queue
    worker = asyncio.create_task(env.app.run_worker())
    # until the handler runs (its first write marks the dispatch "sending"):
    # a job claimed but not yet started is rightly handed back by a close
    async with asyncio.timeout(10):
        while True:
            found = await env.store.schedule(schedule_id)
            if found is not None and found[1][0].status == "sending":
                break
            await asyncio.sleep(0.01)
    await env.service.close()  # waits for the running dispatch
    async with asyncio.timeout(10):
        await worker
    job = await queue.get_job(f"dispatch-{schedule_id}-{target}")
    assert job is not None and job.state is JobState.COMPLETED, (job.state, job.attempts_made, job.error)
