"""A worked example: typed tasks, a schedule, a FastAPI endpoint that
enqueues and one that waits, progress streamed to the browser over
Server-Sent Events. Run it with:

    conveyor worker reports:app --scheduler      # the workers (and the nightly schedule)
    uvicorn reports:web                          # the API: POST /reports, GET /reports/{id}
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from conveyor import Conveyor, JobFailed, TaskContext, WaitTimeout
from conveyor.server import create_app

app = Conveyor()  # REDIS_URL, REDIS_HOST...; no I/O until used
reports = app.queue("reports", concurrency=4)


class Report(BaseModel):
    customer: str
    since: date
    orders: int
    revenue_cents: int


@reports.task(attempts=3, timeout=60)
async def build_report(ctx: TaskContext, customer: str, days: int = 30) -> Report:
    """Reads a customer's orders in three stages, reporting each."""
    since = date(2026, 12, 1) - timedelta(days=days)
    orders = 0
    for percent, stage in ((10, "orders"), (60, "refunds"), (90, "totals")):
        await ctx.progress(stage, percent, f"{customer}: {stage}")
        await asyncio.sleep(0.05)  # the database, in a real app
        orders += len(customer)
    return Report(customer=customer, since=since, orders=orders, revenue_cents=orders * 1250)


app.schedule("0 3 * * *", build_report, key="nightly-all", kwargs={"customer": "all", "days": 1})


class ReportRequest(BaseModel):
    customer: str = Field(min_length=1, max_length=100)
    days: int = Field(30, ge=1, le=365)


web = FastAPI(title="Reports")
# Conveyor's API and dashboard: the job's progress streams from
# /conveyor/api/progress/job:reports:{id}/stream
web.mount("/conveyor", create_app(tasks=app))


@web.post("/reports", status_code=202)
async def request_report(body: ReportRequest) -> dict[str, str]:
    job = await build_report.enqueue(body.customer, days=body.days)
    return {"id": job.id, "progress": f"/conveyor/api/progress/job:reports:{job.id}/stream"}


@web.get("/reports/{job_id}")
async def get_report(job_id: str, wait: float = 0) -> Report:
    job = await build_report.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no report {job_id}")
    try:
        return await job.wait_until_finished(timeout=max(wait, 0.001))
    except WaitTimeout:
        raise HTTPException(409, "not ready yet") from None
    except JobFailed as exc:
        raise HTTPException(500, exc.error) from None
