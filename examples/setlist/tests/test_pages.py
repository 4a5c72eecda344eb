"""The pages in headless Chromium: an import started from the trending
page's search lands on the artist page, whose progress bar fills over SSE
and which then lists the shows and songs."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright, expect
from setlist_env import Env
from sqlalchemy import select

from conveyor.testing import serving
from setlist.api import create_api
from setlist.models import Show

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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_import_from_the_search_fills_the_artist_page_live(env: Env, browser: Browser) -> None:
    fake = env.upstream.artist("midsize")
    errors: list[str] = []
    async with serving(create_api(env.pipeline)) as site:
        page = await browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(site)
        await expect(page.locator("#trending li")).to_have_text(
            "No artist imported yet: search for one above."
        )
        await page.fill("input[name=q]", "velvet")
        await page.click("#search button")
        await page.click("#results button")
        await page.wait_for_url(f"**/artists/tm-{fake.attraction_id.lower()}")
        await expect(page.locator("#stage")).to_have_text("initializing")
        worker = asyncio.create_task(env.app.run_worker())
        try:
            await expect(page.locator("#stage")).to_have_text("completed", timeout=30_000)
        finally:
            await env.app.close()
            await worker
        await expect(page.locator("#progress")).to_have_attribute("aria-valuenow", "100")
        await expect(page.locator("#name")).to_have_text(fake.name)
        await expect(page.locator("#shows li")).to_have_count(100)
        await expect(page.locator("#songs li")).to_have_count(len(fake.studio_songs))
        await expect(page.locator("#show-count")).to_have_text(f"({len(fake.shows)})")
    assert errors == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_vote_on_one_page_shows_on_the_other_at_once(env: Env, browser: Browser) -> None:
    await env.import_artist("midsize")
    async with env.services.store.sessions() as session:
        show_id = await session.scalar(select(Show.id).order_by(Show.local_date).limit(1))
    errors: list[str] = []
    async with serving(create_api(env.pipeline)) as site:
        # two visitors: a browser context each, so each has its own voter cookie
        pages = []
        for _ in range(2):
            context = await browser.new_context()
            page = await context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{site}/shows/{show_id}")
            await expect(page.locator("#live")).to_have_text("live")
            pages.append(page)
        ada, bob = pages
        first = ada.locator("#songs li").first
        await expect(first.locator(".up")).to_have_text("0")
        await first.get_by_title("vote up").click()
        await expect(first.locator(".up")).to_have_text("1")
        await expect(first.get_by_title("vote up")).to_have_attribute("aria-pressed", "true")
        theirs = bob.locator("#songs li").first
        await expect(theirs.locator(".up")).to_have_text("1", timeout=2_000)  # live, no reload
        await expect(theirs.get_by_title("vote up")).to_have_attribute(
            "aria-pressed", "false"
        )  # not bob's vote
        await theirs.get_by_title("vote down").click()
        await expect(first.locator(".down")).to_have_text("1", timeout=2_000)
        await expect(first.locator(".score")).to_have_text("0")
        await first.get_by_title("vote up").click()  # pressed again: taken back
        await expect(theirs.locator(".up")).to_have_text("0", timeout=2_000)
    assert errors == []
