"""A site in another language over HTTP: its pages, its form errors, its error pages and its emails.

The templates' strings are checked in every language by tests/unit/test_i18n.py; these go
through the real application for what the handlers and the notices write in Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import html5lib
import pytest
from aiohttp.test_utils import TestClient

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.digest.plan import PlanOptions, plan
from publisher.store.ingest import ingest
from subscribers.model import Cadence
from tests.support.articles import seed_like
from tests.support.people import add_subscriber
from tests.support.outbox import link_in, outbox_messages
from tests.support.web_client import Visitor, web_client

GENEROUS = '[subscribers]\nsignup_rate_per_client = "1000/hour"\nsignup_rate_per_address = "1000/hour"\n'


@pytest.fixture
async def arabic(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Publisher, TestClient]]:
    settings = make_settings(GENEROUS)
    publisher = Publisher(settings.model_copy(update={"site": settings.site.model_copy(update={"language": "ar"})}))
    await publisher.start()
    await publisher.intake.scan()
    async with web_client(publisher) as client:
        yield publisher, client
    await publisher.close()


def _text(markup: str, xpath: str) -> str:
    found = html5lib.parse(markup, namespaceHTMLElements=False).find(xpath)
    assert found is not None, xpath
    return "".join(found.itertext()).strip()


async def test_an_arabic_site_answers_in_arabic_right_to_left(arabic: tuple[Publisher, TestClient]) -> None:
    publisher, client = arabic
    visitor = Visitor(client)
    page = await visitor.get("/subscribe")
    body = await page.text()
    assert '<html lang="ar" dir="rtl">' in body
    assert _text(body, ".//h1") == "اشترك في Test Brief"

    refused = await visitor.post("/subscribe", {"email": "not an address", "cadence": "hourly"})
    assert refused.status == 422
    body = await refused.text()
    assert _text(body, ".//*[@id='email-error']") == (
        "هذا ليس عنوان بريد إلكتروني صالحًا. يُرجى التحقق منه: يكون على شكل name@example.com."
    )
    assert _text(body, ".//*[@id='cadence-error']") == "يُرجى اختيار أحد الخيارات المعروضة."
    assert _text(body, ".//*[@role='alert']") == "يُرجى مراجعة الحقلين المميّزين."  # two fields: the dual

    missing = await client.get("/no-such-page")
    assert missing.status == 404
    body = await missing.text()
    assert _text(body, ".//h1") == "الصفحة غير موجودة" and "لا شيء على هذا العنوان." in body

    assert (await visitor.post("/subscribe", {"email": "ann@example.org", "cadence": "daily"})).status == 200
    await publisher.tasks.settle(10)
    (confirmation,) = outbox_messages(publisher.settings)
    assert confirmation["Subject"] == "أكّد اشتراكك في Test Brief"
    html = confirmation.get_body(("html",)).get_content()
    text = confirmation.get_body(("plain",)).get_content()
    assert '<html lang="ar" dir="rtl">' in html and "تأكيد اشتراكي" in html
    assert "يعمل هذا الرابط مدة" in text and link_in(confirmation, "/confirm/")


async def test_a_reload_changes_the_language(arabic: tuple[Publisher, TestClient]) -> None:
    publisher, client = arabic
    settings = publisher.settings
    assert publisher.reconfigure(settings.model_copy(update={"site": settings.site.model_copy(update={"language": "de"})})) == []
    body = await (await client.get("/subscribe")).text()
    assert '<html lang="de" dir="ltr">' in body and _text(body, ".//h1") == "Test Brief abonnieren"


async def test_the_web_copy_of_a_digest_names_its_reader_in_the_language(arabic: tuple[Publisher, TestClient]) -> None:
    """The copy has nobody's address: "because %(email)s subscribed" gets the language's word for the reader."""
    publisher, client = arabic
    settings = publisher.settings
    publisher.reconfigure(settings.model_copy(update={"site": settings.site.model_copy(update={"language": "de"})}))
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    await ingest(publisher.engine, [seed_like(id="fresh", slug="fresh", title="A fresh article")], clock.now())
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
    body = await (await client.get(f"/digests/{digest.id}")).text()
    assert "Sie erhalten diesen Sofort-Newsletter, weil Ihre Adresse Test Brief abonniert hat." in body
    assert "Hallo zusammen," in body and "ann@example.org" not in body
