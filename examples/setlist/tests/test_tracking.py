"""Seed 002's tables, written by the running system: ``sync_jobs`` and
``sync_progress`` for each import and resync and each of its phases,
``system_health`` snapshots; read through the API."""

from __future__ import annotations

import httpx
from setlist_env import ADMIN, Env

from setlist.fake.server import FakeConfig, Fault


async def test_an_import_and_each_of_its_phases_are_recorded(env: Env, admin: httpx.AsyncClient) -> None:
    artist_id = await env.import_artist("midsize")
    ((job, phases),) = await env.pipeline.tracking.jobs(artist_id)
    assert (job.kind, job.status, job.error) == ("import", "completed", None)
    assert (
        job.started_at is not None
        and job.finished_at is not None
        and job.id.startswith(f"import-{artist_id}-")
    )
    assert {p.phase: p.status for p in phases} == {
        "identity": "completed",
        "shows": "completed",
        "catalog": "completed",
        "wrap-up": "completed",
    }
    assert all(p.duration_ms is not None and p.duration_ms >= 0 and p.attempts == 1 for p in phases)
    catalog = next(p for p in phases if p.phase == "catalog")
    assert catalog.detail is not None and catalog.detail["songs"] > 0
    (listed,) = (await admin.get(f"/api/artists/{artist_id}/syncs")).json()
    assert listed["status"] == "completed" and listed["phases"][0]["phase"] == "identity"
    assert len(listed["phases"]) == 4
    assert (await admin.get("/api/artists/nobody/syncs")).status_code == 404


async def test_a_failing_phase_is_recorded_with_its_retries_and_error(env: Env) -> None:
    down = Fault(service="spotify", route="/artists/{id}/albums", kind="server_error", times=1000)
    env.upstream.state.config = FakeConfig(faults=[down])
    artist_id = await env.import_artist("sparse")
    ((job, phases),) = await env.pipeline.tracking.jobs(artist_id)
    catalog = next(p for p in phases if p.phase == "catalog")
    assert job.status == "failed" and catalog.status == "failed"
    assert catalog.attempts == 5 and catalog.error and job.error == catalog.error
    assert "HTTP 5" in catalog.error


async def test_a_resync_is_a_sync_job_of_its_own(env: Env) -> None:
    artist_id = await env.import_artist("midsize")
    job = await env.pipeline.syncs.resync_shows.enqueue(artist_id)
    await env.app.run_worker(burst=True)
    jobs = await env.pipeline.tracking.jobs(artist_id)
    (resync, phases) = next((j, p) for j, p in jobs if j.kind == "resync")
    assert resync.id == job.id and resync.status == "completed"
    assert [(p.phase, p.status) for p in phases] == [("shows", "completed")]


async def test_system_health_is_snapshotted_and_listed(env: Env, admin: httpx.AsyncClient) -> None:
    job = await env.pipeline.upkeep.record_health.enqueue()
    await env.app.run_worker(burst=True)
    result = await env.app.queues[job.queue].queue.get_job(job.id)
    assert result is not None and result.result["status"] in ("healthy", "degraded")
    assert (await admin.get("/api/admin/system-health")).status_code == 401
    (snapshot,) = (await admin.get("/api/admin/system-health", headers=ADMIN)).json()
    assert snapshot["redisOk"] and snapshot["databaseOk"] and snapshot["redisUsedMemory"] > 0
    assert set(snapshot["queues"]) >= {"artist-import", "cleanup", "webhook"}
    schedules = {s.key for s in await env.app.queues[job.queue].queue.get_schedules()}
    assert "setlist-health" in schedules
