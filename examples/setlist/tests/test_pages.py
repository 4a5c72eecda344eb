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

from conveyor.testing import serving
from setlist.api import create_api

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
