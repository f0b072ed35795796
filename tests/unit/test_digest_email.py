"""The digest email: rendered once, personalized by substitution, framed as MIME.

Every message is parsed back with the ``email`` package, and the HTML with lxml,
so the tests check what a mail client would see rather than template strings.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import jinja2
import lxml.html
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from publisher.config import DeliverySettings, DigestSettings, EmailSettings, Settings, SiteSettings
from publisher.content.markdown import parse_article
from publisher.content.model import Article, FactTable, Image
from publisher.mail import render
from publisher.mail.message import DigestMessages, build_message
from publisher.mail.render import Personal, RenderedDigest, render_digest, text_table
from publisher.mail.wire import WireMessage
from publisher.templating import make_environment
from tests.support.articles import FACT_CAPTION, FACT_ROWS, QUOTE, SOURCES, TAKEAWAYS, seed_like

WHEN = datetime(2024, 6, 20, 8, 0, tzinfo=UTC)
DIGEST_ID = "daily-20240620T080000-3fa2c1"
UNSUBSCRIBE = "https://news.example.org/unsubscribe/tok.en?a=1&b=2"
PREFERENCES = "https://news.example.org/preferences/tok.en"
# The teaser must never carry the body: a marker shows whether it leaked into the email.
SEED = seed_like(body_html="<p>THE-FULL-BODY-IS-FOR-THE-WEB</p>")
SHORT = Article(
    id="markets",
    slug="markets",
    title="Markets & <Rates>: a quiet week",
    published=WHEN,
    updated=WHEN,
    canonical_url="https://news.example.org/articles/markets",
    images=(Image("https://news.example.org/img/chart.png"),),
    summary="Nothing much happened, & that is news.",
)


def make_settings(url: str = "https://news.example.org/", title: str = "Nachrichten: Größe") -> Settings:
    return Settings(
        site=SiteSettings(title=title, url=url, postal_address="1 Example Street\n12345 Example City"),
        delivery=DeliverySettings(from_address="newsletter@news.example.org", from_name="Größe News"),
    )


@pytest.fixture(scope="module")
def site_settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="module")
def rendered(site_settings: Settings) -> RenderedDigest:
    return render_digest([SEED, SHORT], site_settings, make_environment(), DIGEST_ID, "daily")


def personal(name: str = "Zoë Ünïcode", email_address: str = "zoe@example.com") -> Personal:
    return Personal(name=name, email=email_address, unsubscribe_url=UNSUBSCRIBE, preferences_url=PREFERENCES)


def build(rendered: RenderedDigest, settings: Settings, who: Personal | None = None, **overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "settings": settings, "digest_id": DIGEST_ID, "subscriber_id": 42, "date": WHEN, **overrides,
    }
    return build_message(rendered, who or personal(), **arguments)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(raw: bytes) -> tuple[str, str]:
    """(text, html) bodies as a client decodes them, with \\n line endings."""
    message = parse(raw)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def style_of(element: lxml.html.HtmlElement) -> str:
    return element.get("style", "").replace(" ", "")


# --- MIME structure and headers -------------------------------------------------------


def test_message_is_multipart_alternative_with_text_first(rendered: RenderedDigest, site_settings: Settings) -> None:
    raw = build(rendered, site_settings)
    message = parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    subparts = list(message.iter_parts())
    assert [p.get_content_type() for p in subparts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in subparts)
    assert message["MIME-Version"] == "1.0"
    assert b"\n" not in raw.replace(b"\r\n", b""), "every line ends with CRLF (policy.SMTP)"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_headers(rendered: RenderedDigest, site_settings: Settings) -> None:
    message = parse(build(rendered, site_settings))
    assert message["Date"].datetime == WHEN
    assert message["Message-ID"] == f"<{DIGEST_ID}.42@news.example.org>"
    assert message["From"].addresses[0].display_name == "Größe News"
    assert message["From"].addresses[0].addr_spec == "newsletter@news.example.org"
    assert message["To"].addresses[0].display_name == "Zoë Ünïcode"
    assert message["To"].addresses[0].addr_spec == "zoe@example.com"
    assert message["Subject"] == f"Nachrichten: Größe: {SEED.title} and 1 more"
    assert message["List-Id"] == "Nachrichten: Größe <newsletter.news.example.org>"
    assert message["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE}>, <mailto:newsletter@news.example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_non_ascii_headers_are_rfc2047_encoded_on_the_wire(rendered: RenderedDigest, site_settings: Settings) -> None:
    head = build(rendered, site_settings).split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?utf-8?" in head


def test_long_unsubscribe_url_is_never_encoded(site_settings: Settings, rendered: RenderedDigest) -> None:
    """Receivers read List-Unsubscribe literally: encoded-words would break one-click."""
    url = "https://news.example.org/unsubscribe/" + "x" * 150
    who = Personal(name="Zoë", email="zoe@example.com", unsubscribe_url=url, preferences_url=PREFERENCES)
    raw = build(rendered, site_settings, who)
    assert f"List-Unsubscribe: <{url}>,\r\n <mailto:".encode() in raw
    assert parse(raw)["List-Unsubscribe"].startswith(f"<{url}>")


def test_message_id_is_deterministic(rendered: RenderedDigest, site_settings: Settings) -> None:
    first, second = parse(build(rendered, site_settings)), parse(build(rendered, site_settings))
    assert first["Message-ID"] == second["Message-ID"]
    assert parse(build(rendered, site_settings, subscriber_id=43))["Message-ID"] != first["Message-ID"]


def test_one_click_post_only_for_https(rendered: RenderedDigest) -> None:
    settings = make_settings(url="http://127.0.0.1:8080/")
    who = Personal("Zoë", "zoe@example.com", "http://127.0.0.1:8080/unsubscribe/t", "http://127.0.0.1:8080/p/t")
    message = parse(build(rendered, settings, who))
    assert message["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/unsubscribe/t>")
    assert message["List-Unsubscribe-Post"] is None
    assert message["List-Id"] == "Nachrichten: Größe <newsletter.localhost>"


def test_ascii_site_title_is_a_quoted_list_id_phrase(rendered: RenderedDigest) -> None:
    message = parse(build(rendered, make_settings(title='The "Daily", Brief')))
    assert message["List-Id"] == '"The \\"Daily\\", Brief" <newsletter.news.example.org>'


@pytest.mark.parametrize(
    "who",
    [
        personal(name="Mallory\r\nBcc: x@y"),
        personal(name="Mallory\nBcc: x@y"),
        personal(name="Mallory\x00"),
        personal(email_address="zoe@example.com\r\nBcc: x@y"),
        personal(email_address="not-an-address"),
        personal(email_address="two words@example.com"),
        personal(email_address="zoë@example.com"),  # would need SMTPUTF8
    ],
)
def test_unsafe_or_invalid_recipient_is_rejected(rendered: RenderedDigest, site_settings: Settings, who: Personal) -> None:
    with pytest.raises(ValueError):
        build(rendered, site_settings, who)


def test_unsafe_subject_and_sender_are_rejected(rendered: RenderedDigest, site_settings: Settings) -> None:
    forged = RenderedDigest(
        subject="Hi\r\nBcc: x@y", preheader="", html=rendered.html, text=rendered.text, nonce=rendered.nonce
    )
    with pytest.raises(ValueError):
        build(forged, site_settings)
    sender = site_settings.model_copy(
        update={"delivery": DeliverySettings(from_address="a@example.org", from_name="News\r\nBcc: x@y")}
    )
    with pytest.raises(ValueError):
        build(rendered, sender)


@pytest.mark.parametrize(
    ("overrides", "who"),
    [
        ({"date": datetime(2024, 6, 20, 8, 0)}, None),  # naive: the Date header would lie
        ({"digest_id": "a>b@evil"}, None),
        ({}, Personal("Zoë", "zoe@example.com", "javascript:alert(1)", PREFERENCES)),
        ({}, Personal("Zoë", "zoe@example.com", "https://x.example/a,b>", PREFERENCES)),
    ],
)
def test_bad_arguments_are_rejected(
    rendered: RenderedDigest, site_settings: Settings, overrides: dict[str, object], who: Personal | None
) -> None:
    with pytest.raises(ValueError):
        build(rendered, site_settings, who, **overrides)


def test_idn_domain_is_sent_as_punycode(rendered: RenderedDigest, site_settings: Settings) -> None:
    message = parse(build(rendered, site_settings, personal(email_address="zoe@bücher.de")))
    assert message["To"].addresses[0].addr_spec == "zoe@xn--bcher-kva.de"


# --- Subject and preheader --------------------------------------------------------------


def test_single_article_subject_is_its_title(site_settings: Settings) -> None:
    single = render_digest([SEED], site_settings, make_environment(), DIGEST_ID, "instant")
    assert single.subject == SEED.title


def three_articles() -> list[Article]:
    return [
        dataclasses.replace(SHORT, id=f"a{n}", slug=f"a{n}", title=title)
        for n, title in enumerate(["Rates and markets: a quiet week", "Grain & fuel", "Heat"])
    ]


def test_several_articles_read_as_the_lead_title_and_a_count(site_settings: Settings) -> None:
    """The site name leads only when the From name does not already say it."""
    distinct = render_digest(three_articles(), site_settings, make_environment(), DIGEST_ID, "daily")
    assert distinct.subject == "Nachrichten: Größe: Rates and markets: a quiet week and 2 more"
    same = make_settings(title="Größe News")  # the From name of make_settings
    raw = build(render_digest(three_articles(), same, make_environment(), DIGEST_ID, "daily"), same)
    assert parse(raw)["Subject"] == "Rates and markets: a quiet week and 2 more"
    assert parse(raw)["From"].addresses[0].display_name == "Größe News"


def test_the_subject_is_an_overridable_template(site_settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "subject.txt").write_text(
        "{{ cadence|capitalize }}:\n{% for a in articles %}{{ a.title }}{{ ' | ' if not loop.last }}{% endfor %}\n",
        encoding="utf-8",
    )
    digest = render_digest(three_articles(), site_settings, make_environment(tmp_path), DIGEST_ID, "weekly")
    assert digest.subject == "Weekly: Rates and markets: a quiet week | Grain & fuel | Heat"
    (tmp_path / "email" / "subject.txt").write_text("{# nothing #}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="email/subject.txt"):
        render_digest(three_articles(), site_settings, make_environment(tmp_path), DIGEST_ID, "weekly")


def test_preheader_is_hidden_and_from_the_lead_article(rendered: RenderedDigest) -> None:
    assert rendered.preheader == SEED.summary
    html, _ = rendered.personalize(personal())
    (hidden,) = lxml.html.fromstring(html).find_class("preheader")
    assert hidden.text_content().startswith(SEED.summary)
    assert "display:none" in style_of(hidden)
    assert "mso-hide:all" in style_of(hidden)
    # Hidden from screen readers even where a client drops display:none (Gmail's mobile web).
    assert hidden.get("aria-hidden") == "true"


# Characters that print as nothing (or a blank) in a browser, but as junk or gaps elsewhere.
_INVISIBLE = "\u00a0\u00ad\u034f\u200b\u200c\u200d\u2007\u2060\ufeff"


@pytest.mark.skipif(shutil.which("w3m") is None and not os.environ.get("PUBLISHER_REQUIRE_TOOLS"),
                    reason="needs w3m (apt-get install w3m), what neomutt renders HTML with")
def test_preheader_filler_shows_as_nothing_in_a_text_client(rendered: RenderedDigest, site_settings: Settings) -> None:
    """neomutt shows the HTML part through w3m, which knows no CSS: the hidden preheader shows,
    so its filler must print as nothing, not as a line of blanks and zero-width characters."""
    _, html = parts(build(rendered, site_settings))
    dump = subprocess.run(
        ["w3m", "-dump", "-T", "text/html", "-O", "UTF-8", "-cols", "80"],
        input=html.encode(), capture_output=True, check=True,
    ).stdout.decode()
    assert not re.search(f"(?:[{_INVISIBLE}][ ]*){{3,}}", dump), "filler junk in the text rendering"
    assert " ".join(dump.split()).startswith(f"{rendered.preheader} {site_settings.site.title} View in browser")
    # Hidden, it still pads the inbox preview, so the body text after it stays out of the preview.
    (hidden,) = lxml.html.fromstring(html).find_class("preheader")
    filler = hidden.text_content().removeprefix(rendered.preheader)
    assert len(filler) >= 60 and not filler.strip(_INVISIBLE)


def test_preheader_falls_back_to_the_first_takeaway(site_settings: Settings) -> None:
    article = dataclasses.replace(SEED, summary="")
    assert render_digest([article], site_settings, make_environment(), DIGEST_ID, "daily").preheader == TAKEAWAYS[0]


# --- HTML part --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def html_doc(rendered: RenderedDigest, site_settings: Settings) -> lxml.html.HtmlElement:
    _, html = parts(build(rendered, site_settings))
    return lxml.html.fromstring(html)


def test_html_document_shell(html_doc: lxml.html.HtmlElement) -> None:
    assert html_doc.get("lang") == "en"
    assert html_doc.findtext(".//title") == f"Nachrichten: Größe: {SEED.title} and 1 more"
    assert html_doc.xpath("//meta[@charset='utf-8']")
    assert html_doc.xpath("//meta[@name='viewport']")
    layout = html_doc.xpath("//table[@role='presentation']")
    assert len(layout) >= 2


def test_css_is_inlined_and_only_media_queries_stay_in_style(html_doc: lxml.html.HtmlElement) -> None:
    (container,) = html_doc.find_class("container")
    assert container.tag == "table" and container.get("width") == "600"
    assert "max-width:600px" in style_of(container)
    (facts,) = html_doc.xpath("//table[caption]")
    assert "border-collapse:collapse" in style_of(facts)
    cells = facts.xpath(".//td")
    assert cells and all("border:1pxsolid" in style_of(td) for td in cells)
    assert all(style_of(th) for th in facts.xpath(".//th"))
    css = " ".join(s.text_content() for s in html_doc.xpath("//style"))
    assert "prefers-color-scheme: dark" in css and "max-width: 620px" in css
    without_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
    assert without_media.strip() == "", f"class rules left un-inlined: {without_media.strip()[:200]}"


def test_articles_link_to_canonical_urls_without_the_body(html_doc: lxml.html.HtmlElement) -> None:
    titles = html_doc.xpath("//h2/a")
    assert [(a.text_content(), a.get("href")) for a in titles] == [
        (SEED.title, SEED.canonical_url), (SHORT.title, SHORT.canonical_url),
    ]
    read_more = [a.get("href") for a in html_doc.xpath("//a") if "Read more" in a.text_content()]
    assert read_more == [SEED.canonical_url, SHORT.canonical_url]
    assert SEED.subtitle in html_doc.text_content()
    assert "THE-FULL-BODY-IS-FOR-THE-WEB" not in lxml.html.tostring(html_doc, encoding="unicode")


def test_lead_image_has_alt_width_and_fluid_style(html_doc: lxml.html.HtmlElement) -> None:
    images = html_doc.xpath("//img")
    assert [img.get("src") for img in images] == [SEED.images[0].src, SHORT.images[0].src]
    assert images[0].get("alt") == "Kim Jong Un arriving in Russia"
    assert images[1].get("alt") == SHORT.title, "an image without alt falls back to the article title"
    assert all(img.get("width") and "max-width:100%" in style_of(img) for img in images)


def test_takeaways_are_a_list(html_doc: lxml.html.HtmlElement) -> None:
    (takeaways,) = html_doc.xpath("//ul")
    assert [li.text_content() for li in takeaways.xpath("./li")] == list(TAKEAWAYS)


def test_pull_quote_is_a_blockquote_with_cite(html_doc: lxml.html.HtmlElement) -> None:
    (quote,) = html_doc.xpath("//blockquote")
    assert QUOTE in quote.text_content()
    assert quote.xpath(".//cite")[0].text_content() == "A regional analyst"


def test_fact_table_is_a_real_table(html_doc: lxml.html.HtmlElement) -> None:
    (facts,) = html_doc.xpath("//table[caption]")
    assert facts.findtext("caption") == FACT_CAPTION
    assert [th.text_content() for th in facts.xpath("./thead/tr/th")] == ["Indicator", "North Korea", "Russia"]
    rows = [tuple(cell.text_content() for cell in tr.xpath("./th|./td")) for tr in facts.xpath("./tbody/tr")]
    assert rows == list(FACT_ROWS)
    sources = facts.getnext()
    assert sources.text_content() == f"Data sources: {SOURCES}"


def test_article_text_is_escaped(html_doc: lxml.html.HtmlElement, rendered: RenderedDigest) -> None:
    assert "Markets &amp; &lt;Rates&gt;" in rendered.html
    assert html_doc.xpath("//h2/a")[1].text_content() == "Markets & <Rates>: a quiet week"


def test_footer(html_doc: lxml.html.HtmlElement) -> None:
    (footer,) = html_doc.find_class("footer")
    text = footer.text_content()
    assert "Nachrichten: Größe" in text
    assert "1 Example Street" in text and "12345 Example City" in text
    assert "because zoe@example.com subscribed" in text
    links = {a.text_content(): a.get("href") for a in footer.xpath(".//a")}
    assert links == {
        "Unsubscribe": UNSUBSCRIBE,
        "Manage preferences": PREFERENCES,
        "View in browser": f"https://news.example.org/digests/{DIGEST_ID}",
    }


def test_read_more_names_its_article_in_the_links_own_text(rendered: RenderedDigest) -> None:
    """A screen reader's list of links reads each link alone: "Read more" must say what it opens,
    in visible text (mail clients drop aria-label and visually hidden CSS unevenly)."""
    html_doc = lxml.html.fromstring(rendered.html)
    names = [" ".join(a.text_content().split()) for a in html_doc.find_class("button")]
    assert names == [f"Read more: {SEED.title} →", f"Read more: {SHORT.title} →"]


ARABIC = dataclasses.replace(SEED, id="ashjar", slug="ashjar", title="المدينة تزرع أربعة آلاف شجرة", lang="ar")


def _blocks(html: str) -> dict[str, lxml.html.HtmlElement]:
    """Each article's block (its table cell) by the article's title."""
    cells = [cell for cell in lxml.html.fromstring(html).find_class("article") if cell.tag == "td"]
    return {cell.find_class("title-link")[0].text_content(): cell for cell in cells}


def test_an_article_in_another_language_reads_from_its_own_side(site_settings: Settings) -> None:
    """An Arabic article in an English digest: its block is lang="ar" dir="rtl", and what sits
    on the start side (the quote's rule, table text, list indent) moves to the right, inlined,
    since mail clients know no logical properties.  The template's own words keep English."""
    html = render_digest([ARABIC, SEED], site_settings, make_environment(), DIGEST_ID, "daily").html
    document = lxml.html.fromstring(html)
    assert (document.get("lang"), document.get("dir")) == ("en", "ltr")
    blocks = _blocks(html)
    arabic, english = blocks[ARABIC.title], blocks[SEED.title]
    assert (arabic.get("lang"), arabic.get("dir")) == ("ar", "rtl")
    assert english.get("lang") is None and english.get("dir") is None
    quote = style_of(arabic.find_class("quote")[0])
    assert "border-right:4pxsolid" in quote and "border-left:0" in quote
    assert "border-left:4pxsolid" in style_of(english.find_class("quote")[0])
    assert "text-align:right" in style_of(arabic.find_class("facts-head")[0])
    assert "padding:022px00" in style_of(arabic.find_class("takeaways")[0])
    [read_more] = arabic.find_class("read-more")
    assert (read_more.get("lang"), read_more.get("dir")) == ("en", "ltr")
    assert read_more.xpath(".//span[@lang='ar'][@dir='rtl']")[0].text_content() == ARABIC.title


def test_a_right_to_left_site_mirrors_the_whole_email(site_settings: Settings) -> None:
    """[site] language = "ar": the email is dir="rtl" (on <html>, and on the wrapper for the
    clients that drop <html>); an English article in it gets its left side back."""
    settings = site_settings.model_copy(update={"site": site_settings.site.model_copy(update={"language": "ar"})})
    english = dataclasses.replace(SEED, lang="en")
    html = render_digest([ARABIC, english], settings, make_environment(), DIGEST_ID, "daily").html
    document = lxml.html.fromstring(html)
    assert (document.get("lang"), document.get("dir")) == ("ar", "rtl")
    [wrapper] = document.find_class("wrapper")
    assert (wrapper.get("lang"), wrapper.get("dir")) == ("ar", "rtl")
    assert "float:left" in style_of(document.find_class("masthead-view")[0])
    blocks = _blocks(html)
    assert blocks[ARABIC.title].get("dir") is None  # the email's own language already
    assert (blocks[SEED.title].get("lang"), blocks[SEED.title].get("dir")) == ("en", "ltr")
    quote = style_of(blocks[SEED.title].find_class("quote")[0])
    assert "border-left:4pxsolid" in quote and "border-right:0" in quote
    assert "border-right:4pxsolid" in style_of(blocks[ARABIC.title].find_class("quote")[0])


# --- Plain-text part --------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_part(rendered: RenderedDigest, site_settings: Settings) -> str:
    text, _ = parts(build(rendered, site_settings))
    return text


def test_text_titles_are_underlined(text_part: str) -> None:
    lines = text_part.splitlines()
    index = lines.index(SEED.title)
    assert lines[index + 1] == "=" * len(SEED.title)


def test_text_takeaways_quote_and_links(text_part: str) -> None:
    for takeaway in TAKEAWAYS:
        assert f"- {takeaway}" in text_part.splitlines()
    assert " ".join(text_part.split()).count(QUOTE) == 1
    assert "-- A regional analyst" in text_part
    assert f"Read more: {SEED.canonical_url}" in text_part.splitlines()
    assert f"Read more: {SHORT.canonical_url}" in text_part.splitlines()
    assert "Markets & <Rates>: a quiet week" in text_part, "no HTML escaping in text"
    assert "&amp;" not in text_part


def test_text_footer(text_part: str) -> None:
    lines = text_part.splitlines()
    assert f"Unsubscribe: {UNSUBSCRIBE}" in lines
    assert f"Manage preferences: {PREFERENCES}" in lines
    assert f"View in browser: https://news.example.org/digests/{DIGEST_ID}" in lines
    assert "1 Example Street" in lines


def test_text_lines_fit_78_columns(text_part: str) -> None:
    long_lines = [line for line in text_part.splitlines() if len(line) > 78 and "://" not in line]
    assert long_lines == []


def test_text_fact_table_columns_are_aligned(text_part: str) -> None:
    lines = text_part.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Indicator"))
    header, lines = lines[at], lines[at + 1:]
    starts = [header.index("North Korea"), header.index("Russia")]
    assert starts[0] > len("Indicator")
    for label, north_korea, russia in FACT_ROWS:
        first_word = label.split()[0]
        line = next(line for line in lines if line.startswith(first_word))
        assert line[starts[0]:].startswith(north_korea.split()[0]), line
        assert line[starts[1]:].startswith(russia.split()[0]), line
        assert line[: starts[0]].strip() and line[starts[0] - 2: starts[0]] == "  "
    assert f"Data sources: {SOURCES}" in " ".join(text_part.split())


ALIGNED = FactTable(
    caption="Output by co-op",
    header=("Co-op", "Members", "Status", "Note"),
    rows=(("Sunny Hill", "1,204", "open", "big"), ("Ridge", "87", "planned", "small")),
    align=("left", "right", "center", ""),
)


def test_table_alignment_reaches_the_email_html_and_text(site_settings: Settings) -> None:
    article = dataclasses.replace(SHORT, fact_tables=(ALIGNED,))
    digest = render_digest([article], site_settings, make_environment(), DIGEST_ID, "daily")
    text, html = parts(build(digest, site_settings))
    (table,) = lxml.html.fromstring(html).xpath("//table[caption]")
    for row in table.xpath(".//tr"):
        cells = row.xpath("./th|./td")
        assert [cell.get("align") for cell in cells] == ["left", "right", "center", None]
        assert [re.findall(r"text-align:(\w+)", style_of(cell)) for cell in cells][:3] == [
            ["left"], ["right"], ["center"]
        ]
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Co-op"))
    head, rule, first, second = lines[header:header + 4]
    members_end = head.index("Members") + len("Members")
    assert first[:members_end].endswith("1,204") and second[:members_end].endswith("   87")  # right-aligned
    status = rule.split("  ")[2]  # the dashes under the Status column
    start = rule.index(status, members_end)
    assert second[start:start + len(status)] == "planned"
    cell = first[start:start + len(status)]
    left, right = len(cell) - len(cell.lstrip()), len(cell) - len(cell.rstrip())
    assert cell.strip() == "open" and abs(left - right) <= 1  # centred


def test_text_table_wraps_cells_but_keeps_every_word() -> None:
    table = SEED.fact_tables[0]
    out = text_table(table, width=50)
    assert max(len(line) for line in out.splitlines()) <= 50
    for row in (table.header, *table.rows):
        for cell in row:
            for word in cell.split():
                assert word in out
    natural = text_table(FactTable("c", ("a", "b"), (("1", "2"),)))
    assert natural.splitlines() == ["a  b", "-  -", "1  2"]


# --- Personalization --------------------------------------------------------------------


def test_personal_values_are_escaped_in_html_and_raw_in_text(rendered: RenderedDigest) -> None:
    html, text = rendered.personalize(personal(name='<script>alert("x")</script>'))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'Hi <script>alert("x")</script>,' in text
    assert f'href="{UNSUBSCRIBE.replace("&", "&amp;")}"' in html
    assert UNSUBSCRIBE in text
    doc = lxml.html.fromstring(html)
    assert not doc.xpath("//script")
    assert doc.find_class("greeting")[0].text_content() == 'Hi <script>alert("x")</script>,'


def test_placeholders_never_leak(rendered: RenderedDigest) -> None:
    assert rendered.nonce in rendered.html and rendered.nonce in rendered.text
    for output in rendered.personalize(personal()):
        assert rendered.nonce not in output
        assert "__publisher_" not in output


def test_empty_name_gets_a_friendly_greeting(rendered: RenderedDigest) -> None:
    html, text = rendered.personalize(personal(name=""))
    assert "Hi there," in text.splitlines()
    assert "Hi there," in html


def test_a_sentinel_in_a_personal_value_is_not_expanded(rendered: RenderedDigest) -> None:
    forged = f"__publisher_unsubscribe_url_{rendered.nonce}__"
    html, text = rendered.personalize(personal(name=forged))
    assert f"Hi {forged}," in text.splitlines()
    assert text.count(UNSUBSCRIBE) == 1, "the URL only where the template put it"
    assert html.count(UNSUBSCRIBE.replace("&", "&amp;")) == 1


def test_article_text_cannot_forge_a_sentinel(site_settings: Settings) -> None:
    """Sentinels carry a random nonce per render, so article text can't predict them."""
    first = render_digest([SHORT], site_settings, make_environment(), DIGEST_ID, "daily")
    second = render_digest([SHORT], site_settings, make_environment(), DIGEST_ID, "daily")
    assert first.nonce != second.nonce


def test_personalize_and_build_never_render_again(
    rendered: RenderedDigest, site_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered per subscriber")

    class NoInliner:
        inline = staticmethod(forbidden)

    monkeypatch.setattr(render, "_INLINER", NoInliner())
    monkeypatch.setattr(jinja2.Environment, "get_template", forbidden)
    monkeypatch.setattr(jinja2.Template, "render", forbidden)
    text, html = parts(build(rendered, site_settings, personal(name="Ada")))
    assert "Hi Ada," in text and "Hi Ada," in html


# --- Rendering guards -------------------------------------------------------------------


def test_empty_digest_is_an_error(site_settings: Settings) -> None:
    with pytest.raises(ValueError, match="at least one article"):
        render_digest([], site_settings, make_environment(), DIGEST_ID, "daily")


def test_template_without_unsubscribe_link_is_refused(site_settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.txt").write_text("Hi {{ personal.name }}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unsubscribe"):
        render_digest([SHORT], site_settings, make_environment(tmp_path), DIGEST_ID, "daily")


# --- The fast framer: what it sends must decode to exactly what was personalized --------

_names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60).filter(
    lambda n: not re.search(r"[\x00-\x1f\x7f\x85]", n)
)
_paths = st.text(st.sampled_from("abcXYZ019-._~=&?%/"), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_names, path=_paths)
@example(name=".Zoë", path=".")  # a value starts a line after a soft break: a leading dot is stuffed
def test_framed_parts_decode_to_the_personalized_text(rendered: RenderedDigest, name: str, path: str) -> None:
    """Constant stretches are encoded (and dot-stuffed) once and joined with soft breaks: no
    value may get lost, doubled or mangled at a join, whatever its characters or length, no
    line is too long, and the wire form is exactly the message stuffed, with its size."""
    who = Personal(name=name.strip(), email="zoe@example.com",
                   unsubscribe_url=f"https://news.example.org/u/{path}", preferences_url=f"https://x.example/{path}")
    messages = DigestMessages(rendered, settings=make_settings(), digest_id=DIGEST_ID, date=WHEN)
    raw = messages.build(who, 42)
    assert messages.wire(who, 42) == WireMessage.of(raw)
    message = parse(raw)
    html_part, text_part = rendered.personalize(who)
    decoded = [message.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("plain", "html")]  # type: ignore[union-attr]
    assert decoded == [text_part, html_part]
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert body.isascii()


# --- bounded size -------------------------------------------------------------------------


def _figures_article(rows: int, tables: int = 1) -> Article:
    """An article as the Markdown source makes it (default limits), with ``tables`` tables of ``rows`` rows."""
    table = "| Year | Output | Share |\n|---|---|---|\n" + "".join(f"| {1000 + r} | {r} MW | {r % 100}% |\n"
                                                               for r in range(rows))
    text = ("---\ntitle: Output in figures\ndate: 2024-06-19\ntags: [energy]\n---\nEvery year since 1000.\n\n"
            "## Output by year\n\n" + "\n".join([table] * tables))
    return parse_article(text.encode(), "content/figures.md", "https://news.example.org/")


def test_a_capped_table_says_how_many_rows_the_article_has_besides(site_settings: Settings) -> None:
    article = _figures_article(rows=500)  # 3 columns: 300 cells hold the header and 99 rows
    rendered = render_digest([article], site_settings, make_environment(), DIGEST_ID, "daily")
    text, html = parts(build(rendered, site_settings))
    doc = lxml.html.document_fromstring(html)
    (facts,) = doc.xpath("//table[caption]")
    assert len(facts.xpath("./tbody/tr")) == 99
    (more,) = doc.xpath("//a[contains(., 'more rows')]")
    assert (more.text_content(), more.get("href")) == ("401 more rows: see the article", article.canonical_url)
    assert "401 more rows: see the article." in text


def _html_part_as_sent(raw: bytes) -> bytes:
    """The HTML part's body as the wire carries it (quoted-printable), without the MIME frame."""
    html_head = raw.index(b"Content-Type: text/html")
    body = raw[raw.index(b"\r\n\r\n", html_head) + 4:]
    return body[:body.index(b"\r\n--=_")]


def _figures_articles(count: int, rows: int, tables: int = 1) -> list[Article]:
    return [dataclasses.replace(_figures_article(rows, tables), id=f"figures-{n}", slug=f"figures-{n}",
                                title=f"Output in figures, part {n}",
                                canonical_url=f"https://news.example.org/articles/figures-{n}")
            for n in range(count)]


def test_a_digest_too_big_for_gmail_shows_its_first_articles_in_full_and_the_rest_as_headlines(
    site_settings: Settings,
) -> None:
    """Gmail clips past ~102 KB and hides the rest, unsubscribe link included: measured as sent
    (quoted-printable), the HTML stays within [digest] max_message_bytes, the first articles whole,
    the others as title and link, the footer intact, and the text part the same way."""
    articles = _figures_articles(8, rows=60)  # ~25 KB each as sent: 8 of them are twice too many
    rendered = render_digest(articles, site_settings, make_environment(), DIGEST_ID, "daily")
    raw = build(rendered, site_settings)
    assert len(_html_part_as_sent(raw)) <= site_settings.digest.max_message_bytes
    text, html = parts(raw)
    doc = lxml.html.document_fromstring(html)
    (footer,) = doc.find_class("footer")
    assert {a.text_content(): a.get("href") for a in footer.xpath(".//a")}["Unsubscribe"] == UNSUBSCRIBE
    full = len(articles) - rendered.headlines
    assert 1 <= full < len(articles)
    in_full = [h2.text_content() for h2 in doc.xpath("//td[@class='article']//h2[@class='title']")]
    assert in_full == [article.title for article in articles[:full]]
    assert len(doc.xpath("//table[caption]")) == full  # one table each, for the whole ones only
    (more,) = doc.xpath("//h2[. = 'More in this digest']/following-sibling::ul")
    assert [(a.text_content(), a.get("href")) for a in more.xpath(".//a")] == [
        (article.title, article.canonical_url) for article in articles[full:]
    ]
    assert text.count("Output by year") == full
    assert all(f"- {article.title}\n  {article.canonical_url}" in text for article in articles[full:])
    # The fewest headlines: one article more in full would not have fitted.
    roomier = site_settings.model_copy(update={"digest": DigestSettings(max_message_bytes=10**7)})
    whole = render_digest(articles[:full + 1], roomier, make_environment(), DIGEST_ID, "daily")
    assert whole.headlines == 0 and whole.html_bytes > site_settings.digest.max_message_bytes


def test_a_lead_article_too_big_alone_leaves_every_article_a_headline(site_settings: Settings) -> None:
    """A 2 MB table made a 138 MB email once; capped tables still make ~180 KB: headlines carry
    no table, so even that digest fits, with its footer."""
    huge = _figures_article(rows=1_000, tables=4)  # each capped to 300 cells, together still ~180 KB
    rendered = render_digest([huge, SEED], site_settings, make_environment(), DIGEST_ID, "daily")
    raw = build(rendered, site_settings)
    assert rendered.headlines == 2
    assert len(_html_part_as_sent(raw)) <= site_settings.digest.max_message_bytes
    doc = lxml.html.document_fromstring(parts(raw)[1])
    assert not doc.xpath("//table[caption]")
    (listed,) = doc.xpath("//h2[. = 'In this digest']/following-sibling::ul")
    assert [a.get("href") for a in listed.xpath(".//a")] == [huge.canonical_url, SEED.canonical_url]
    (footer,) = doc.find_class("footer")
    assert {a.text_content(): a.get("href") for a in footer.xpath(".//a")}["Unsubscribe"] == UNSUBSCRIBE


# --- table of contents, Outlook frame --------------------------------------------------


def _several(count: int) -> list[Article]:
    return [dataclasses.replace(SHORT, id=f"a{n}", slug=f"a{n}", title=f"Story {n} & <more>",
                                canonical_url=f"https://news.example.org/articles/a{n}") for n in range(count)]


@pytest.mark.parametrize("count", [1, 2])
def test_two_articles_or_fewer_have_no_table_of_contents(site_settings: Settings, count: int) -> None:
    rendered = render_digest(_several(count), site_settings, make_environment(), DIGEST_ID, "daily")
    assert not lxml.html.document_fromstring(rendered.html).find_class("toc")
    assert "In this digest" not in rendered.text


def test_the_table_of_contents_links_to_the_articles_on_the_web_where_a_listed_client_ignores_anchors(
    site_settings: Settings,
) -> None:
    """Gmail for iOS, Outlook's apps, Yahoo and Samsung Email do nothing on an in-email link
    (caniemail html-anchor-links): with them listed (the default), each entry opens the article."""
    articles = _several(3)
    rendered = render_digest(articles, site_settings, make_environment(), DIGEST_ID, "daily")
    (toc,) = lxml.html.document_fromstring(rendered.html).find_class("toc")
    assert [(a.text_content(), a.get("href")) for a in toc.xpath(".//a")] == [
        (a.title, a.canonical_url) for a in articles
    ]
    assert "In this digest:\n 1. Story 0 & <more>\n 2. Story 1 & <more>\n 3. Story 2 & <more>\n" in rendered.text


def test_the_table_of_contents_links_within_the_email_when_every_listed_client_follows_anchors() -> None:
    settings = make_settings().model_copy(update={"email": EmailSettings(clients=["apple-mail", "thunderbird.macos"])})
    articles = _several(4)
    rendered = render_digest(articles, settings, make_environment(), DIGEST_ID, "daily")
    doc = lxml.html.document_fromstring(rendered.html)
    (toc,) = doc.find_class("toc")
    targets = [a.get("href") for a in toc.xpath(".//a")]
    assert all(target.startswith("#") for target in targets)
    # Each target is an anchor (id and name) opening the article's cell, in the TOC's order.
    anchors = [doc.get_element_by_id(target[1:]) for target in targets]
    assert all(anchor.get("name") == anchor.get("id") for anchor in anchors)
    assert [anchor.getparent().xpath("string(.//h2)") for anchor in anchors] == [a.title for a in articles]


def test_outlook_for_windows_gets_a_fixed_width_frame(site_settings: Settings) -> None:
    """Word's engine ignores max-width: a 600-pixel table in MSO conditional comments holds the layout."""
    notice_context = {"site": site_settings.site, "subject": "s", "email": "a@example.com",
                      "confirm_url": "https://news.example.org/c", "valid_hours": "48"}
    for html in (render_digest(_several(1), site_settings, make_environment(), DIGEST_ID, "daily").html,
                 render.render_notice(make_environment(), "confirm", notice_context)[0]):
        opening = re.search(r"<!--\[if mso\]>(<table[^>]*>)<tr><td[^>]*><!\[endif\]-->", html)
        assert opening is not None and 'width="600"' in opening[1]
        closing = html.index("<!--[if mso]></td></tr></table><![endif]-->")
        assert opening.start() < html.index('class="container"') < closing < html.index("</body>")


def test_even_hundreds_of_long_titles_fit_the_rest_counted_with_a_link_to_the_site(site_settings: Settings) -> None:
    """[digest] max_articles allows 200 and a title 300 characters: as headlines (and non-ASCII,
    which quoted-printable triples) they alone make ~400 KB. The last ones are then only counted."""
    title = ("Größe " * 60)[:300]
    articles = [dataclasses.replace(SHORT, id=f"t{n}", slug=f"t{n}", title=f"{n} {title}",
                                    canonical_url=f"https://news.example.org/articles/{'x' * 100}{n}")
                for n in range(200)]
    rendered = render_digest(articles, site_settings, make_environment(), DIGEST_ID, "daily")
    raw = build(rendered, site_settings)
    assert len(_html_part_as_sent(raw)) <= site_settings.digest.max_message_bytes
    assert rendered.headlines == 200
    text, html = parts(raw)
    doc = lxml.html.document_fromstring(html)
    assert not doc.find_class("toc")  # the headline list is the contents: not twice
    (listed,) = doc.xpath("//h2[. = 'In this digest']/following-sibling::ul")
    links = [a.get("href") for a in listed.xpath(".//a")]
    assert 0 < len(links) < 200 and links == [a.canonical_url for a in articles[:len(links)]]
    (more,) = doc.xpath("//p[starts-with(normalize-space(.), 'And ')]")
    assert more.text_content() == f"And {200 - len(links)} more articles at {site_settings.site.title}."
    assert more.xpath(".//a")[0].get("href") == site_settings.site.url
    assert f"And {200 - len(links)} more articles at {site_settings.site.url}" in text
    (footer,) = doc.find_class("footer")
    assert {a.text_content(): a.get("href") for a in footer.xpath(".//a")}["Unsubscribe"] == UNSUBSCRIBE
