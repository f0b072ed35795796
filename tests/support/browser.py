"""What the browser tests share: Debian's Chromium, a live site on a real port, axe-core.

The browser is the system's (``/usr/bin/chromium``, never ``playwright install``); axe-core
comes from npm, pinned with its integrity hash in ``tests/browser/package-lock.json`` and
installed by CI's ``npm ci --prefix tests/browser``.  Locally a machine without either skips
the tests that need it; CI sets PUBLISHER_REQUIRE_BROWSER so that a missing install step
fails instead of hiding behind a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.sites import REPO
from tests.support.smtp_server import HOST, SmtpServer

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

    from publisher.app import Publisher
    from publisher.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("PUBLISHER_TEST_ARTIFACTS", REPO / "test-artifacts"))
# The dashboard's browser tests: each writes to a folder of its own below this one, and wipes only that.
ADMIN_ARTIFACTS = ARTIFACTS / "admin"
AXE_JS = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"

# The rule sets the issue asks for: WCAG 2.0 and 2.1, levels A and AA.
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
# What fails a test; "moderate" and "minor" are reported but tolerated.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def required() -> bool:
    """Whether a missing browser (or axe-core) fails a test instead of skipping it."""
    return bool(os.environ.get("PUBLISHER_REQUIRE_BROWSER"))


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not required(),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)
needs_axe = pytest.mark.skipif(
    not AXE_JS.exists() and not required(),
    reason="axe-core is not installed (npm ci --prefix tests/browser)",
)


def axe_test_marks(same_on_both: str, timeout: int) -> list[pytest.MarkDecorator]:
    """The marks of a test that runs axe-core in Chromium: skipped without either (failing in CI),
    slow, on the browser worker, on SQLite only (``same_on_both`` says why), within ``timeout`` s."""
    return [needs_chromium, needs_axe, pytest.mark.slow, pytest.mark.xdist_group("browser"),
            pytest.mark.sqlite_only(same_on_both), pytest.mark.timeout(timeout)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serve_site(
    make_settings: Callable[..., Settings], language: str = "en"
) -> AsyncIterator[tuple[Publisher, SmtpServer, str]]:
    """The daemon's web application on a free port, mail over SMTP to an in-process aiosmtpd
    server, the sample articles stored, readers' language ``language``: ``(publisher, smtp
    server, site url)``."""
    from aiohttp import web

    from publisher.app import Publisher
    from publisher.web.server import create_app

    port = free_port()
    with SmtpServer() as smtp:
        settings = make_settings(
            f'[smtp]\nhost = "{HOST}"\nport = {smtp.port}\n'
            '[subscribers]\nsignup_rate_per_client = "100/hour"\n'
        )
        settings.site.url = f"http://{HOST}:{port}/"
        settings.delivery.transport = "smtp"
        settings.site.language = language
        publisher = Publisher(settings)
        await publisher.start()
        await publisher.intake.scan()
        runner = web.AppRunner(create_app(publisher))
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        try:
            yield publisher, smtp, settings.site.url
        finally:
            await runner.cleanup()
            await publisher.close()


@dataclass(frozen=True)
class Violation:
    """One axe-core rule broken by one or more elements of a page."""

    rule: str
    impact: str
    targets: tuple[str, ...]
    summary: str

    def describe(self) -> str:
        shown = ", ".join(self.targets[:5]) + (f" and {len(self.targets) - 5} more" if len(self.targets) > 5 else "")
        return f"{self.rule} ({self.impact}, {len(self.targets)} elements: {shown}): {self.summary}"


async def axe_violations(page: Page, rules: tuple[str, ...] = ()) -> list[Violation]:
    """axe-core's WCAG 2.1 A/AA violations on ``page`` as it is now (injected on first use),
    or with ``rules`` those rules' alone (e.g. best practices outside WCAG's tags, such as
    "heading-order").

    The page needs JavaScript on, and a context with ``bypass_csp=True`` where the page's
    Content-Security-Policy forbids scripts (the public pages' does).
    """
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE_JS))
    run_only = {"type": "rule", "values": list(rules)} if rules else {"type": "tag", "values": list(AXE_TAGS)}
    found: list[dict[str, Any]] = await page.evaluate(
        """async (runOnly) => {
            const result = await axe.run(document, {runOnly});
            return result.violations.map((v) => ({
                rule: v.id, impact: v.impact || 'unknown',
                targets: v.nodes.map((n) => n.target.join(' ')),
                summary: v.nodes[0] ? v.nodes[0].failureSummary.replace(/\\s+/g, ' ') : v.help,
            }));
        }""",
        run_only,
    )
    return [Violation(v["rule"], v["impact"], tuple(v["targets"]), v["summary"]) for v in found]


def fresh_artifacts(directory: Path) -> None:
    """Start a browser test's artifacts anew in ``directory``; axe-core must be there to run."""
    assert AXE_JS.exists(), "axe-core is not installed: npm ci --prefix tests/browser"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


async def check_layouts(page: Page, name: str, problems: list[str], directory: Path | None,
                        widths: tuple[int, ...] = (1280, 390), schemes: tuple[str, ...] = ("light", "dark")) -> None:
    """``page`` at each of ``widths`` in each of ``schemes``: no sideways scroll, no serious or
    critical axe violation (each added to ``problems``), a full-page screenshot
    ``<directory>/<name>-<width>-<scheme>.png`` (none without a directory); left at the first
    width, light."""
    for width in widths:
        await page.set_viewport_size({"width": width, "height": 900})
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            problems.append(f"{name} {width}px: the page is {scroll_width}px wide")
        for scheme in schemes:
            await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
            for violation in await axe_violations(page):
                if violation.impact in BLOCKING_IMPACTS:
                    problems.append(f"{name} {width}px {scheme}: {violation.describe()}")
            if directory is not None:
                path = directory / f"{name}-{width}-{scheme}.png"
                await page.screenshot(path=str(path), full_page=True)
                assert path.stat().st_size > 1000
    await page.emulate_media(color_scheme="light")
    await page.set_viewport_size({"width": widths[0], "height": 900})


@asynccontextmanager
async def chromium_page(width: int, height: int = 900) -> AsyncIterator[tuple[Browser, Page]]:
    """Debian's Chromium and a page of ``width`` for axe: the pages forbid scripts
    (Content-Security-Policy), so the page's context bypasses it (axe is the test's,
    not the page's); ``browser`` opens other contexts (with the policies enforced)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = await browser.new_context(bypass_csp=True, viewport={"width": width, "height": height})
            yield browser, await context.new_page()
        finally:
            await browser.close()
