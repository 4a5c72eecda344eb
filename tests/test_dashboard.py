"""The dashboard in headless Chromium (Debian's, driven by Playwright):
sign-in, no console errors, live counts, a failed job's traceback, and a
retry from the page. ``CONVEYOR_SCREENSHOT=path`` saves a screenshot."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from playwright.async_api import Browser, Page, async_playwright, expect

from conveyor import Discard, JobContext, JobState, Queue, Worker
from conveyor.server import create_app
from webserver import serving

TOKEN = "dashboard-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (bash scripts/setup.sh installs it)", allow_module_level=True)


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
        assert await _eventually_state(queue, job.id, JobState.FAILED)
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


async def _eventually_state(queue: Queue, job_id: str, state: JobState) -> Any:
    for _ in range(200):
        if await queue.get_state(job_id) is state:
            return True
        await asyncio.sleep(0.02)
    return False
