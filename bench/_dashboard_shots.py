"""The README's pictures of the dashboard, taken from the benchmark's seeded store.

``bench/dashboard.py --screenshots DIR`` fills a store with 90 days of sends (the same
data it times the pages on) and then photographs a few pages in Debian's Chromium, signed
in through the sign-in form as a person would, at a desktop and a phone width and in the
light and the dark scheme: pictures of a publication with a history, which the tests'
small fixtures can't give.  The pages run under their own Content-Security-Policy (the
live progress script included): what is pictured is what an operator sees.
"""

from __future__ import annotations

from pathlib import Path

from _dashboard_pages import OPERATOR_EMAIL, OPERATOR_PASSWORD
from publisher import urls

CHROMIUM = "/usr/bin/chromium"
# (file name, route, its path parameters' names, width, scheme): the README shows these.
SHOTS = (
    ("overview", urls.ADMIN, (), 1280, "light"),
    ("overview-phone-dark", urls.ADMIN, (), 390, "dark"),
    ("digest", urls.ADMIN_DIGEST, ("digest_id",), 1280, "light"),
    ("digests-dark", urls.ADMIN_DIGESTS, (), 1280, "dark"),
    ("subscriber-phone", urls.ADMIN_SUBSCRIBER, ("subscriber_id",), 390, "light"),
    ("subscribers", urls.ADMIN_SUBSCRIBERS, (), 1280, "light"),
)
HEIGHTS = {1280: 1000, 390: 844}  # the visible part photographed: what a screen shows first


async def take(base: str, values: dict[str, str], directory: Path) -> list[Path]:
    """Sign in at ``base`` and photograph :data:`SHOTS` into ``directory`` (PNG); the files written."""
    from playwright.async_api import async_playwright

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(base + urls.ADMIN_SIGN_IN.path)
            await page.fill("input[name=email]", OPERATOR_EMAIL)
            await page.fill("input[name=password]", OPERATOR_PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"**{urls.ADMIN.path}")
            for name, route, parameters, width, scheme in SHOTS:
                await page.set_viewport_size({"width": width, "height": HEIGHTS[width]})
                await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
                await page.goto(base + route.under("/", **{key: values[key] for key in parameters}))
                path = directory / f"{name}.png"
                await page.screenshot(path=str(path))
                written.append(path)
        finally:
            await browser.close()
    return written
