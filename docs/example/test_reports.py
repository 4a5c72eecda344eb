import asyncio
import json

import httpx
from reports import Report, build_report, web

from conveyor import Conveyor, JobState, TaskContext
from conveyor.testing import run_until_idle, serving


async def test_a_report_requested_over_http_is_built_and_fetched(jobs: Conveyor) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://test") as client:
        asked = await client.post("/reports", json={"customer": "acme", "days": 7})
        assert asked.status_code == 202
        job_id = asked.json()["id"]
        assert (await client.get(f"/reports/{job_id}")).status_code == 409  # not built yet
        await run_until_idle(jobs)
        done = await client.get(f"/reports/{job_id}")
        assert done.status_code == 200
        assert Report.model_validate(done.json()) == Report(
            customer="acme", since="2026-11-24", orders=12, revenue_cents=15000
        )
        refused = await client.post("/reports", json={"customer": "", "days": 7})
        assert refused.status_code == 422


async def test_progress_streams_over_server_sent_events(jobs: Conveyor) -> None:
    job = await build_report.enqueue("globex")
    async with serving(web) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        stages: list[str] = []
        path = f"/conveyor/api/progress/job:reports:{job.id}/stream"
        async with client.stream("GET", path) as stream:
            worker = asyncio.create_task(run_until_idle(jobs))
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    update = json.loads(line.removeprefix("data:"))
                    stages.append(update.get("stage"))
                    if update["finished"]:  # completed (or failed for good): the stream ends here
                        break
            await worker
    assert [s for s in stages if s != "completed"] == ["orders", "refunds", "totals"]
    assert stages[-1] == "completed"
    assert (await job.wait_until_finished()).customer == "globex"


async def test_the_nightly_schedule_is_written_when_workers_start(jobs: Conveyor) -> None:
    await jobs.setup(["reports"])
    (schedule,) = await jobs.queues["reports"].queue.get_schedules()
    assert (schedule.key, schedule.name, schedule.cron) == ("nightly-all", "build_report", "0 3 * * *")
    assert schedule.data == {"customer": "all", "days": 1}


async def test_the_task_alone_reports_its_stages() -> None:
    ctx = TaskContext.for_testing(queue="reports")
    report = await build_report(ctx, "initech", days=1)
    assert report.orders == 21
    assert [p["stage"] for p in ctx.recorded.progress] == ["orders", "refunds", "totals"]


async def test_eager_mode_builds_the_report_inline() -> None:
    build_report.queue.app.eager = True
    try:
        job = await build_report.enqueue("umbrella", days=2)
        assert job.state is JobState.COMPLETED
        assert (await job.wait_until_finished()).revenue_cents == 8 * 3 * 1250
    finally:
        build_report.queue.app.eager = False
