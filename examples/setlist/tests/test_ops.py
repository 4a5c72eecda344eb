"""The seeds' operations routes: health, queue statistics, the imports
under way, queue management behind the admin token, workers init, and the
cron routes behind CRON_SECRET doing their schedule's work; and the seed's
answers of the import and status routes; the seeds' variable names."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from setlist_env import ADMIN, CRON, Env

from conveyor import JobState, ManualClock, Queue, Scheduler
from conveyor.testing import serving
from setlist.api import create_api
from setlist.config import Settings
from setlist.queues import QUEUES, QueueName
from setlist.services import TRENDING_CACHE_KEY


async def test_health_and_queue_statistics(env: Env, admin: httpx.AsyncClient) -> None:
    health = await admin.get("/api/health")
    assert health.status_code == 200
    assert health.json()["checks"] == {"redis": "ok", "database": "ok"}
    await env.pipeline.start(env.upstream.artist("midsize").attraction_id)
    stats = (await admin.get("/api/queues/stats")).json()["queues"]
    assert (
        set(stats) == set(QUEUES)
        and stats[QueueName.ARTIST_IMPORT]["waiting"] == 1
        and stats[QueueName.ARTIST_IMPORT]["paused"] == 0
    )


async def test_the_imports_under_way_are_listed(env: Env, admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/api/import/active")).json() == {"imports": [], "count": 0}
    artist_id, _, _ = await env.pipeline.start(env.upstream.artist("midsize").attraction_id)
    (running,) = (await admin.get("/api/import/active")).json()["imports"]
    assert running["artistId"] == artist_id and running["stage"] == "initializing"
    await env.work_until_finished(artist_id)
    assert (await admin.get("/api/import/active")).json()["count"] == 0


async def test_queue_management_takes_the_admin_token(env: Env, admin: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/admin/queues"),
        ("POST", "/api/admin/queues"),
        ("POST", "/api/workers/init"),
    ]:
        assert (await admin.request(method, path, json={})).status_code == 401, path
        wrong = await admin.request(method, path, json={}, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
    overview = (await admin.get("/api/admin/queues", headers=ADMIN)).json()
    assert overview["success"] is True and set(overview["stats"]) == set(QUEUES)

    async def act(action: str, **extra: object) -> httpx.Response:
        body = {"action": action, "queueName": QueueName.ARTIST_IMPORT, **extra}
        return await admin.post("/api/admin/queues", json=body, headers=ADMIN)

    queue = env.app.queues[QueueName.ARTIST_IMPORT].queue
    assert (await act("pause")).json()["success"] and await queue.is_paused()
    assert (await act("resume")).status_code == 200 and not await queue.is_paused()
    failed = await queue.add("bootstrap", {"artist_id": "nobody"})
    await queue.add("bootstrap", {"artist_id": "nobody-2"})
    cleaned = await act("clean", options={"state": "waiting"})
    assert cleaned.json()["cleaned"] == 2
    assert (await act("retry-failed")).json()["retried"] == 0
    assert (await act("explode")).status_code == 422
    unknown = await admin.post("/api/admin/queues", json={"action": "pause", "queueName": "x"}, headers=ADMIN)
    assert unknown.status_code == 404
    assert (await act("clean", options={"state": "active"})).status_code == 422
    assert await queue.get_job(failed.id) is None
    init = (await admin.post("/api/workers/init", headers=ADMIN)).json()
    assert init["success"] and init["queues"] == list(QUEUES)


async def test_the_cron_routes_do_their_schedules_work_and_await_it(
    env: Env, admin: httpx.AsyncClient
) -> None:
    for path in ("calculate-trending", "cleanup-imports", "run-artist-resync"):
        assert (await admin.post(f"/api/cron/{path}")).status_code == 401
    await env.import_artist("midsize")
    await env.services.redis.delete(TRENDING_CACHE_KEY)
    trending = await admin.get("/api/cron/calculate-trending", headers=CRON)
    assert trending.status_code == 200 and trending.json()["success"] is True
    resync = await admin.post("/api/cron/run-artist-resync", headers=CRON)
    assert resync.json()["result"] == {"resynced": 0}  # the import synced its shows a moment ago
    cleanup = await admin.post("/api/cron/cleanup-imports", headers=CRON)
    assert set(cleanup.json()["result"]) == {"statuses", "jobs"}
    for name in (QueueName.TRENDING_CALC, QueueName.SCHEDULED_SYNC, QueueName.CLEANUP):
        assert (await env.app.queues[name].queue.counts())[JobState.WAITING] == 0  # done in the request
    unset = create_api(env.pipeline)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=unset), base_url="http://setlist") as http:
        assert (await http.post("/api/cron/cleanup-imports", headers=CRON)).status_code == 403


@pytest.mark.parametrize("body", [None, {}, {"tmAttractionId": ""}, {"tmAttractionId": None}])
async def test_an_import_without_an_id_is_400_as_the_seed_answers(
    admin: httpx.AsyncClient, body: object
) -> None:
    response = await admin.post("/api/artists/import", json=body)
    assert response.status_code == 400 and response.json() == {"error": "tmAttractionId required"}


async def test_the_status_of_an_unknown_artist_is_the_seeds_no_status(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/api/artists/nobody/status")
    assert response.status_code == 200
    assert response.json() == {"stage": "unknown", "progress": 0, "message": "No status"}


async def test_every_imports_progress_streams_from_one_route(env: Env) -> None:
    fake = env.upstream.artist("midsize")
    async with (
        serving(create_api(env.pipeline)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        seen: list[dict[str, object]] = []

        async def read() -> None:
            async with http.stream("GET", "/api/import/progress") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        seen.append(json.loads(line[len("data: ") :]))
                        if seen[-1]["stage"] in ("completed", "failed"):
                            return

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.3)  # the stream is open
        started = (await http.post("/api/artists/import", json={"tmAttractionId": fake.attraction_id})).json()
        await env.work_until_finished(started["artistId"])
        async with asyncio.timeout(10):
            await reader
    assert {e["artistId"] for e in seen} == {started["artistId"]}
    assert seen[-1]["stage"] == "completed" and seen[-1]["progress"] == 100
    assert len(seen) > 3  # the phases in between, as they came


def test_the_seeds_variable_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {
        "TICKETMASTER_API_KEY": "tm-key",
        "SPOTIFY_CLIENT_ID": "sp-id",
        "SPOTIFY_CLIENT_SECRET": "sp-secret",
        "SETLISTFM_API_KEY": "sf-key",
        "ADMIN_TOKEN": "adm",
        "CRON_SECRET": "crn",
    }
    for name, value in names.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    secrets = (s.ticketmaster_key, s.spotify_client_secret, s.setlistfm_key, s.admin_token, s.cron_secret)
    assert [x.get_secret_value() for x in secrets if x is not None] == [
        "tm-key",
        "sp-secret",
        "sf-key",
        "adm",
        "crn",
    ]
    assert s.spotify_client_id == "sp-id"
    monkeypatch.setenv("SETLIST_TICKETMASTER_KEY", "ours")
    assert Settings().ticketmaster_key.get_secret_value() == "ours"  # ours win
    example = (Path(__file__).parents[1] / ".env.example").read_text()
    assert all(f"{name}=" in example for name in names)


async def test_finished_jobs_and_cron_runs_land_in_the_seeds_tables(
    env: Env, admin: httpx.AsyncClient
) -> None:
    """Seed 002's queue_jobs, cron_logs and cron_metrics, written by Conveyor's
    archive from the queues' events and by the cron routes."""
    for path in ("/api/admin/cron", "/api/admin/jobs/history"):
        assert (await admin.get(path)).status_code == 401
    artist_id = await env.import_artist("midsize")
    await env.app.setup()  # the schedules, as a worker writes them
    maintenance = env.app.queues[QueueName.CLEANUP].queue
    health = await maintenance.get_schedule("setlist-health")
    assert health is not None and health.next_run is not None
    due = ManualClock(int(health.next_run.timestamp() * 1000))  # the health check's next tick is due
    clocked = Queue(maintenance.name, maintenance.redis, prefix=env.app.prefix, clock=due)
    assert await Scheduler([clocked]).tick() >= 1
    await env.app.run_worker(burst=True)
    assert (await admin.get("/api/cron/calculate-trending", headers=CRON)).status_code == 200
    await env.pipeline.archive.run(burst=True)

    history = (
        await admin.get("/api/admin/jobs/history", headers=ADMIN, params={"queue": QueueName.ARTIST_IMPORT})
    ).json()
    imported = [j for j in history["jobs"] if artist_id in j["job_id"]]
    assert {j["name"] for j in imported} >= {"bootstrap", "wrap_up"}
    assert {j["status"] for j in imported} == {"completed"}
    assert all(j["finished_at"] and j["duration_ms"] is not None for j in imported)
    everything = (await admin.get("/api/admin/jobs/history", headers=ADMIN, params={"limit": 1000})).json()
    names = {j["name"] for j in everything["jobs"]}
    assert {"sync_shows", "sync_catalog", "record_health"} <= names

    cron = (await admin.get("/api/admin/cron", headers=ADMIN)).json()
    metrics = {m["job_name"]: m for m in cron["metrics"]}
    assert metrics["setlist-health"]["successful_runs"] == 1
    assert metrics["calculate-trending"]["total_runs"] == 1
    assert metrics["calculate-trending"]["last_status"] == "completed"
    assert {"setlist-health", "calculate-trending"} <= {r["job_name"] for r in cron["recent"]}
