"""Debian's chromium driven by Playwright, shared by the browser tests of every service."""

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
# A phone as the people outside the office hold it: 390 × 844 CSS pixels, touch, mobile viewport rules.
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
                         "device_scale_factor": 2}


@asynccontextmanager
async def browser_page(base_url: str, *, phone: bool = False) -> AsyncIterator[object]:
    """A fresh page on `base_url` (on a phone's screen with `phone`); skips visibly without chromium, fails instead
    when REQUIRE_BROWSER=1."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but Debian's chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium absent: apt-get install chromium (REQUIRE_BROWSER=1 makes this a failure)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(base_url=base_url, locale="fr-FR", **(PHONE if phone else {}))
        yield await context.new_page()
        await browser.close()
