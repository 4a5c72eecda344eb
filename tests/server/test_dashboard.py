"""The dashboard in headless Chromium (Debian's, driven by Playwright):
sign-in, no console errors, live counts, a failed job's traceback, a retry
from the page, live progress bars, cancelling a running job, the
throughput chart, a job's attempts, errors, options and progress as they
happened, and the queue the page opens on. ``CONVEYOR_SCREENSHOT=path`` saves a screenshot."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aredis
from fastapi import FastAPI
from playwright.async_api import Browser, Page, async_playwright, expect

from conveyor import Discard, Exponential, JobContext, JobState, Queue, Worker
from conveyor.server import create_app
from conveyor.testing import serving
from polling import wait_until

TOKEN = "dashboard-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "Chromium is not installed (bash scripts/setup.sh --browser installs it)", allow_module_level=True
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None, "CI must install Chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def site(redis: aredis.Redis) -> AsyncIterator[str]:
    async with serving(create_app(redis, token=TOKEN)) as url:
        yield url


async def signed_in(browser: Browser, site: str, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{site}/dashboard")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("#live")).to_have_text("live")
    return page


async def test_sign_in_is_required_and_a_wrong_token_is_refused(browser: Browser, site: str) -> None:
    page = await browser.new_page()
    await page.goto(f"{site}/dashboard")
    assert page.url.endswith("/dashboard/login")
    await page.fill("#token", "not-it")
    await page.click("button[type=submit]")
    await expect(page.locator(".error")).to_have_text("Wrong token.")


async def test_the_dashboard_works_mounted_under_a_path(
    browser: Browser, redis: aredis.Redis, queue: Queue
) -> None:
    host = FastAPI()
    host.mount("/admin/queues", create_app(redis, token=TOKEN))
    await queue.add("first", 1)
    async with serving(host) as url:
        errors: list[str] = []
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(f"{url}/admin/queues/dashboard")
        assert page.url.endswith("/admin/queues/dashboard/login")
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await expect(page.locator("#live")).to_have_text("live")
        waiting = page.locator(f'[data-queue="{queue.name}"] [data-state="waiting"] b')
        await expect(waiting).to_have_text("1")
        await queue.add("second", 2)
        await expect(waiting).to_have_text("2")
        assert errors == []


async def test_counts_change_live_as_jobs_are_added(browser: Browser, site: str, queue: Queue) -> None:
    await queue.add("first", 1)
    errors: list[str] = []
    page = await signed_in(browser, site, errors)
    waiting = page.locator(f'[data-queue="{queue.name}"] [data-state="waiting"] b')
    await expect(waiting).to_have_text("1")
    await queue.add_bulk([("more", i) for i in range(3)])
    await expect(waiting).to_have_text("4")
    await page.click(f'[data-queue="{queue.name}"]')
    await expect(page.locator("tr.job")).to_have_count(4)
    assert errors == []


async def test_a_failed_job_shows_its_traceback_and_retries_from_the_page(
    browser: Browser, site: str, queue: Queue
) -> None:
    healed = asyncio.Event()

    async def handler(job: JobContext) -> str:
        if not healed.is_set():
            raise Discard("the upstream refused the artist id")
        return "imported"

    job = await queue.add("import-artist", {"artist": 42})
    worker = Worker(queue, handler)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(in_state(queue, job.id, JobState.FAILED), within=4)
        errors: list[str] = []
        page = await signed_in(browser, site, errors)
        await page.click(f'[data-queue="{queue.name}"]')
        await page.click('[data-view="failed"]')
        await page.click(f'tr.job[data-job="{job.id}"]')
        traceback = page.locator("pre.traceback")
        await expect(traceback).to_contain_text("Discard: the upstream refused the artist id")
        await expect(traceback).to_contain_text("Traceback (most recent call last)")
        healed.set()
        await page.click("text=Retry")
        await expect(page.locator("#job-state")).to_have_text("completed", timeout=10_000)
        if path := os.environ.get("CONVEYOR_SCREENSHOT"):
            await page.click('[data-view="completed"]')
            await page.screenshot(path=path)
        assert errors == []
    finally:
        await worker.close()
        await task
    assert await queue.get_state(job.id) is JobState.COMPLETED


async def test_progress_bars_move_live_and_a_running_job_can_be_cancelled(
    browser: Browser, site: str, queue: Queue
) -> None:
    step = asyncio.Event()
    stepped = asyncio.Event()

    async def handler(job: JobContext) -> str:
        for percent in (30, 70):
            await step.wait()
            step.clear()
            await job.update_progress({"stage": "shows", "percent": percent, "message": f"{percent}%"})
            stepped.set()
        await asyncio.Event().wait()  # runs until cancelled
        return "never"

    job = await queue.add("import-artist", {"artist": 7})
    worker = Worker(queue, handler, lock_duration=1.0)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(in_state(queue, job.id, JobState.ACTIVE), within=4)
        errors: list[str] = []
        page = await signed_in(browser, site, errors)
        await page.click(f'[data-queue="{queue.name}"]')
        await page.click('[data-view="active"]')
        bar = page.locator(f'tr.job[data-job="{job.id}"] [data-progress="{job.id}"]')
        await expect(bar).to_have_attribute("style", "width:0%")
        for percent in (30, 70):
            step.set()
            await stepped.wait()
            stepped.clear()
            await expect(bar).to_have_attribute("style", re.compile(rf"width: ?{percent}%"))

        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.click(f'tr.job[data-job="{job.id}"]')
        await page.click("#detail >> text=Cancel")
        await expect(page.locator("#job-state")).to_have_text("failed", timeout=10_000)
        await expect(page.locator("#detail pre.error")).to_contain_text("cancelled")
        assert errors == []
    finally:
        await worker.close()
        await task
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.state is JobState.FAILED and stored.progress["percent"] == 70


async def test_the_throughput_chart_shows_jobs_finished_per_second(
    browser: Browser, site: str, queue: Queue
) -> None:
    async def handler(job: JobContext) -> None:
        return None

    await queue.add("warm-up", 0)
    errors: list[str] = []
    page = await signed_in(browser, site, errors)
    await page.click(f'[data-queue="{queue.name}"]')
    chart = page.locator(f'.head canvas[data-chart="{queue.name}"]')
    await expect(chart).to_have_attribute("data-rate", "0.00")

    await queue.add_bulk([("quick", i) for i in range(300)])
    await Worker(queue, handler, concurrency=50).run(burst=True)

    await expect(chart).not_to_have_attribute("data-rate", "0.00", timeout=10_000)
    await expect(page.locator(f'nav [data-queue="{queue.name}"] canvas.chart')).to_have_count(1)
    assert errors == []


def in_state(queue: Queue, job_id: str, state: JobState) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await queue.get_state(job_id) is state

    return check


async def test_a_jobs_attempts_errors_options_and_progress_read_as_they_happened(
    browser: Browser, site: str, queue: Queue
) -> None:
    # Given a job that completed at its first attempt, one that completed at
    # its second, and one that failed for good at 40 %
    async def handler(job: JobContext) -> str:
        if job.data == "flaky" and job.attempt == 1:
            raise RuntimeError("upstream timed out")
        if job.data == "broken":
            await job.update_progress({"stage": "shows", "percent": 40})
            raise Discard("artist not found")
        return "ok"

    first = await queue.add("import", "fine", attempts=3)
    flaky = await queue.add("import", "flaky", attempts=3, backoff=Exponential(0.01, jitter=True))
    broken = await queue.add("import", "broken", attempts=2)
    worker = Worker(queue, handler)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(in_state(queue, flaky.id, JobState.COMPLETED), within=5)
        await wait_until(in_state(queue, broken.id, JobState.FAILED), within=5)
    finally:
        await worker.close()
        await task
    errors: list[str] = []
    page = await signed_in(browser, site, errors)
    await page.click(f'[data-queue="{queue.name}"]')
    await page.click('[data-view="completed"]')

    # Then the list says which attempt each ended at, and a completed job
    # shows no error, even one whose first attempt failed
    await expect(page.locator(f'[data-attempt="{first.id}"]')).to_have_text("1 of 3")
    await expect(page.locator(f'[data-attempt="{flaky.id}"]')).to_have_text("2 of 3")
    await expect(page.locator(f'[data-error="{flaky.id}"]')).to_have_text("")

    # and the completed job's details keep that error under its attempts
    await page.click(f'tr.job[data-job="{flaky.id}"]')
    await expect(page.locator("#job-attempt")).to_have_text("2 of 3 (1 failed)")
    await expect(page.locator("#detail table")).to_contain_text("upstream timed out")
    await expect(page.locator("#job-error")).to_have_count(0)
    options = page.locator("#job-options li")
    await expect(options.first).to_have_text("attempts 3")
    await expect(page.locator("#job-options")).to_contain_text(
        "backoff exponential 0.01 s \N{MULTIPLICATION SIGN} 2 with jitter"
    )
    await expect(page.locator("#job-options")).to_contain_text("keep 1,000 completed for 1 day")

    # and a failed job's progress shows where it failed, as failed
    await page.click('[data-view="failed"]')
    await expect(page.locator(f'[data-error="{broken.id}"]')).to_contain_text("artist not found")
    bar = page.locator(f'tr.job[data-job="{broken.id}"] .bar')
    await expect(bar).to_have_class("bar failed")
    await expect(bar).to_have_attribute("title", "failed at 40%")
    assert errors == []


async def test_the_page_opens_on_a_queue_with_live_workers(
    browser: Browser, redis: aredis.Redis, site: str, queue_name: str
) -> None:
    # Given a stale queue with a backlog left by an earlier run, and a
    # smaller one whose worker is alive (paused, so its jobs stay)
    stale = Queue(f"{queue_name}-stale", redis)
    live = Queue(f"{queue_name}-live", redis)
    await stale.add_bulk([("old", i) for i in range(5000)])
    await live.add_bulk([("new", i) for i in range(10)])
    await live.pause()

    async def handler(job: JobContext) -> None:
        return None

    worker = Worker(live, handler)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: _alive(live), within=5)
        errors: list[str] = []
        page = await signed_in(browser, site, errors)
        # Then the page opens on the queue whose worker is alive
        await expect(page.locator("#queue-head h2")).to_have_text(live.name)
        assert errors == []
    finally:
        await worker.close()
        await task
        await stale.obliterate(force=True)
        await live.obliterate(force=True)


async def _alive(queue: Queue) -> bool:
    return any(w.alive for w in await queue.workers())
