"""Templates checked before they are used: ``publisher check``, and a reload (SIGHUP).

A template that compiles but fails on real values (an undefined name, a missing
unsubscribe link) would otherwise fail a delivery or a page much later; so each is
rendered here with a sample article that has every field a template may show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import jinja2

from publisher import urls
from publisher.config import Settings
from publisher.content.model import Article, FactTable, Image, Quote
from publisher.delivery.service import SAMPLE_READER
from publisher.feeds.entries import CONTENT_TEMPLATE as FEED_CONTENT_TEMPLATE
from publisher.mail.render import HTML_TEMPLATE, render_digest, render_notice
from publisher.templating import template_error
from subscribers.model import Cadence

if TYPE_CHECKING:
    from publisher.mail.client_lint import Finding


def template_problems(settings: Settings, env: jinja2.Environment) -> list[str]:
    """Every template that can't be used, as ``file:line: Error: message`` (empty: all fine).

    Each email, feed and web template is compiled; the digest (HTML, text, subject;
    new and resent), the one-to-one notices and the feed content are also rendered
    with a sample article, so a template that compiles but fails on real values (an
    undefined name, a missing unsubscribe link) is caught before a delivery or a
    page needs it.  Web pages are only compiled: they render per request.
    """
    problems: dict[str, None] = {}  # ordered, and a template failing in two renders is named once

    def attempt(render: Callable[[], object]) -> None:
        try:
            render()
        except Exception as exc:  # noqa: BLE001 - whatever a template raises is the operator's to fix
            problems[template_error(exc)] = None

    for name in env.list_templates(filter_func=_is_template):
        attempt(partial(env.get_template, name))
    article = sample_article(settings.site.url)
    for cadence in Cadence:
        for resend in (False, True):
            attempt(partial(render_digest, [article], settings, env, "check", cadence, resend=resend))
    attempt(lambda: env.get_template(FEED_CONTENT_TEMPLATE).render(article=article))
    for notice, extra in NOTICE_SAMPLES.items():
        context = {"site": settings.site, "subject": "Sample subject", "email": SAMPLE_READER[1], **extra}
        attempt(partial(render_notice, env, notice, context))
    return list(problems)


def client_findings(settings: Settings, env: jinja2.Environment) -> list[Finding]:
    """What the emails, as sent, use that some of ``[email] clients`` lack (warnings, see
    :mod:`publisher.mail.client_lint`).

    The digest is rendered with three sample articles (so its table of contents shows),
    and each notice once; a template that fails to render is left to
    :func:`template_problems`, which names its error.
    """
    from publisher.mail.client_lint import lint  # lxml and tinycss2: `check` and `preview` only

    renders: list[tuple[str, str]] = []
    sample = sample_article(settings.site.url)
    articles = [dataclasses.replace(sample, id=f"{sample.id}-{n}", slug=f"{sample.slug}-{n}") for n in range(3)]
    try:
        renders.append((HTML_TEMPLATE, render_digest(articles, settings, env, "check", Cadence.DAILY).html))
    except Exception:  # noqa: BLE001 - template_problems reports it
        pass
    for notice, extra in NOTICE_SAMPLES.items():
        context = {"site": settings.site, "subject": "Sample subject", "email": SAMPLE_READER[1], **extra}
        try:
            renders.append((f"email/{notice}.html", render_notice(env, notice, context)[0]))
        except Exception:  # noqa: BLE001 - template_problems reports it
            pass
    return lint(renders, settings.email.client_ids)


def _is_template(name: str) -> bool:
    """The templates the service renders: emails, feed content, web and dashboard pages (not init's files or CSS)."""
    return name.startswith(("email/", "feed/", "web/", "admin/")) and name.endswith((".html", ".txt"))


def sample_article(site_url: str) -> Article:
    """An article with every field a template may show, for :func:`template_problems`."""
    when = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    return Article(
        id="sample-article", slug="sample-article", title="A sample article", published=when, updated=when,
        canonical_url=urls.article(site_url, "sample-article"), subtitle="Its subtitle", author="A. Writer",
        tags=("sample",), category="Analysis",
        images=(Image(urls.image(site_url, "sample.png"), "A sample picture", "Caption"),),
        summary="What it says, in a sentence.", takeaways=("One point", "Another point"),
        quotes=(Quote("A quotation.", "Someone"),), body_html="<p>The body.</p>",
        fact_tables=(FactTable("Figures", ("Year", "Value"), (("2025", "1"),), sources="A source"),),
    )


# The notices (publisher.delivery.notices) and the values each one's template gets besides site, subject and email.
_SAMPLE_SITE = "https://example.com/"
NOTICE_SAMPLES: dict[str, dict[str, object]] = {
    "confirm": {"confirm_url": urls.confirm(_SAMPLE_SITE, "token"), "valid_hours": "48"},
    "manage": {"preferences_url": urls.preferences(_SAMPLE_SITE, "token")},
    "preferences_link": {"preferences_url": urls.preferences(_SAMPLE_SITE, "token")},
    "welcome": {
        "preferences_url": urls.preferences(_SAMPLE_SITE, "token"), "unsubscribe_url": urls.unsubscribe(_SAMPLE_SITE, "token"),
        "name": SAMPLE_READER[0],
    },
}
