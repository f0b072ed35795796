"""Every language the readers can get: complete catalogs, and no string that escapes them.

A catalog is complete when every message of the template (``messages.pot``) has a
translation that is neither empty nor fuzzy, with the same named placeholders and the
same markup; the template itself must hold every message the code and the templates
use (extracted here in memory, as ``make messages`` does).  Then every email and page
is rendered in each language through a gettext that records what it is asked for and
brackets what it answers: a message missing from the catalog, or any visible text
that did not come through gettext (a string someone forgot to wrap), fails.
"""

from __future__ import annotations

import dataclasses
import gettext
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from publisher import i18n, urls
from publisher.config import DeliverySettings, Settings, SiteSettings
from publisher.content.language import direction
from publisher.mail.render import Personal, digest_name, render_digest, render_notice
from publisher.store.digests import PastDigest
from publisher.template_check import NOTICE_SAMPLES, sample_article
from publisher.templating import make_environment
from publisher.web.public import PAGE_SIZE, Page
from publisher.web.zones import REGIONS, canonical_zones, zone_choices
from subscribers.model import WEEKDAYS, Cadence, Preferences, Source, Status, Subscriber

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("en", "de", "fr", "es", "ar")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
TAG = re.compile(r"</?\w+[^>]*>")
OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧ around every translated text in a render


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=locale)


def _key(message: Message) -> tuple[str | None, str]:
    """A message as gettext looks it up: its context and its (singular) id."""
    return message.context, message.id[0] if isinstance(message.id, tuple) else message.id


@pytest.fixture(scope="module")
def template() -> Catalog:
    return _read(i18n.LOCALE_DIR / "messages.pot")


def test_the_shipped_languages_are_the_five_promised() -> None:
    assert i18n.shipped_languages() == sorted(SHIPPED)


def test_the_template_holds_every_message_the_code_and_templates_use(template: Catalog) -> None:
    """Extracted now as ``make messages`` does: a new or changed string fails until the catalogs have it."""
    with (REPO / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    keywords = DEFAULT_KEYWORDS | {"N_": None}
    found = {
        (context, msgid[0] if isinstance(msgid, tuple) else msgid)
        for _file, _line, msgid, _comments, context in extract_from_dir(
            REPO, method_map, options_map, keywords=keywords
        )
    }
    assert found, "nothing extracted: is babel.cfg's mapping right?"
    stored = {_key(message) for message in template if message.id}
    assert sorted(found - stored, key=str) == [], "new messages: run `make messages` and translate them"
    assert sorted(stored - found, key=str) == [], "messages no longer used: run `make messages`"


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


@pytest.mark.parametrize("language", SHIPPED)
def test_every_message_is_translated_with_its_placeholders_and_markup(template: Catalog, language: str) -> None:
    catalog = _read(i18n.catalog_path(language), language)
    assert catalog.locale is not None and str(catalog.locale) == language
    problems = []
    for wanted in template:
        if not wanted.id:
            continue
        message = catalog.get(wanted.id, context=wanted.context)
        where = f"{language}: {_key(wanted)}"
        if message is None or message.fuzzy:
            problems.append(f"{where}: {'missing' if message is None else 'fuzzy'}")
            continue
        ids = list(wanted.id) if wanted.pluralizable else [wanted.id]
        forms = list(message.string) if message.pluralizable else [message.string]
        if message.pluralizable and len(forms) != catalog.num_plurals:
            problems.append(f"{where}: {len(forms)} plural forms, the language has {catalog.num_plurals}")
        named = set().union(*map(_placeholders, ids))
        markup = sorted(TAG.findall(ids[0]))
        for form in forms:
            if not form.strip():
                problems.append(f"{where}: empty")
            # A plural form may say its number in words ("one", "two"), so %(num)s alone may go.
            elif not (named - {"num"}) <= _placeholders(form) <= named:
                problems.append(f"{where}: placeholders {sorted(_placeholders(form))}, not {sorted(named)}")
            elif sorted(TAG.findall(form)) != markup:
                problems.append(f"{where}: markup {sorted(TAG.findall(form))}, not {markup}")
    assert problems == []
    # Babel wrote the plural rule of the language (CLDR's): Arabic has six forms, French and Spanish
    # a third for millions ("un million d'articles").
    assert catalog.num_plurals == {"ar": 6, "fr": 3, "es": 3}.get(language, 2)


def test_a_regional_tag_reads_its_base_language_and_an_unknown_one_english() -> None:
    assert i18n.catalog_language("de-AT") == "de" and i18n.catalog_language("pt-BR") == "en"
    assert i18n.language_warning("de-AT") is None and i18n.language_warning("en-GB") is None
    warning = i18n.language_warning("pt-BR")
    assert warning is not None and "'pt-BR'" in warning and "English" in warning
    assert "no known language" in (i18n.language_warning("qq") or "")
    assert i18n.Translator("de-AT").gettext("Subscribe") == "Abonnieren"
    assert i18n.Translator("pt-BR").gettext("Subscribe") == "Subscribe"


def test_every_region_of_the_time_zone_list_is_in_the_catalogs() -> None:
    assert {region for region, _zones in canonical_zones()} <= set(REGIONS)
    assert i18n.Translator("de").gettext("Europe") == "Europa"


def test_an_overridden_template_may_use_the_catalog_and_write_its_own_words(tmp_path: Path) -> None:
    """What the README promises an operator's template: {% trans %} and _() find the catalog's
    messages, and words that are not in it show as written."""
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "custom.html").write_text(
        "{% trans name=who %}Hi {{ name }},{% endtrans %} {{ _('Unsubscribe') }} {{ _('Nur hier') }}"
        " {{ ngettext('Please check the highlighted field.', 'Please check the highlighted fields.', 2) }}"
    )
    env = make_environment(tmp_path, language="de")
    assert env.get_template("web/custom.html").render(who="<Ann>") == (
        "Hallo &lt;Ann&gt;, Abbestellen Nur hier Bitte prüfen Sie die markierten Felder."
    )


def test_dates_hours_weekdays_and_numbers_are_the_languages() -> None:
    env = make_environment(language="de-AT")
    when = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)
    rendered = env.from_string("{{ when | date }}|{{ 8 | time }}|{{ 'mon' | weekday }}|{{ 1234 | number }}").render(when=when)
    assert rendered == "5. Jänner 2026|08:00|Montag|1.234"
    assert make_environment(language="en").from_string("{{ when | date }}|{{ 8 | time }}").render(when=when) == (
        "January 5, 2026|8:00\u202fAM"
    )


# --- every email and page, rendered in each language -----------------------------------------


class _Bracketing(gettext.NullTranslations):
    """The language's catalog, recording each message asked for and bracketing each answer,
    so the render shows which text came through gettext and which did not."""

    def __init__(self, language: str, known: set[tuple[str | None, str]]) -> None:
        super().__init__()
        self.real = i18n.translations(language)
        self.known = known
        self.missing: set[tuple[str | None, str]] = set()

    def _seen(self, context: str | None, message: str, answer: str) -> str:
        if (context, message) not in self.known:
            self.missing.add((context, message))
        return f"{OPEN}{answer}{CLOSE}"

    def gettext(self, message: str) -> str:
        return self._seen(None, message, self.real.gettext(message))

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._seen(None, singular, self.real.ngettext(singular, plural, n))

    def pgettext(self, context: str, message: str) -> str:
        return self._seen(context, message, self.real.pgettext(context, message))


class _VisibleText(HTMLParser):
    """The text a reader sees or hears: text nodes and the attributes read aloud, not the head's."""

    SPOKEN = ("alt", "title", "aria-label", "placeholder")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._hidden += 1
        self.parts.extend(value or "" for name, value in attrs if name in self.SPOKEN)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _untranslated(text: str, data: list[str]) -> list[str]:
    """The words left once gettext's bracketed answers and the sample's own data are taken out."""
    text = re.sub(f"https?://[^\\s{OPEN}{CLOSE}]+", " ", text)  # links are addresses, not words
    innermost = re.compile(f"{OPEN}[^{OPEN}{CLOSE}]*{CLOSE}")  # a translation may hold another ("your %(digest)s")
    while (shorter := innermost.sub(" ", text)) != text:
        text = shorter
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return re.findall(r"[^\W\d_]{2,}", text)


def _visible(markup: str) -> str:
    parser = _VisibleText()
    parser.feed(markup)
    return " ".join(parser.parts)


SITE = "https://news.example.org/"
READER = "ann@example.org"


def _settings(language: str) -> Settings:
    return Settings(
        site=SiteSettings(title="Dispatch", url=SITE, language=language, postal_address="1 Quay\n9999 Port",
                          description="Quiet news"),
        delivery=DeliverySettings(from_address="news@news.example.org", from_name="Dispatch"),
    )


def _renders(language: str) -> Iterator[tuple[str, str, bool]]:
    """``(what, output, is_html)`` for every kind of email and page, in ``language``."""
    settings = _settings(language)
    env = make_environment(language=language)
    article = sample_article(SITE)
    for cadence in Cadence:
        for resend in (False, True):
            digest = render_digest([article, article], settings, env, "d1", cadence, resend=resend)
            html, text = digest.personalize(Personal("", READER, SITE + "u", SITE + "p"))
            yield f"digest {cadence} resend={resend}", html, True
            yield f"digest text {cadence} resend={resend}", text, False
            yield f"subject {cadence} resend={resend}", digest.subject, False
    single = render_digest([article], settings, env, "d2", "daily")
    yield "subject of one", single.subject, False
    # More than two articles: a table of contents.  Too long for an email: the last articles as
    # headlines, or, tighter still, only counted.  And a table cut to its first rows.
    many = [dataclasses.replace(article, id=f"a{n}", slug=f"a{n}") for n in range(3)]
    whole = render_digest(many, settings, env, "d3", "daily")

    def within(size: int) -> Settings:
        return settings.model_copy(update={"digest": settings.digest.model_copy(update={"max_message_bytes": size})})

    cut = dataclasses.replace(article, fact_tables=(dataclasses.replace(article.fact_tables[0], more_rows=3),))
    for name, shown in (("with contents", whole),
                        ("headlines", render_digest(many, within(whole.html_bytes - 1), env, "d3", "daily")),
                        ("counted", render_digest(many, within(1000), env, "d3", "daily")),
                        ("rows cut", render_digest([cut], settings, env, "d4", "daily"))):
        html, text = shown.personalize(Personal("Ann", READER, SITE + "u", SITE + "p"))
        yield f"digest {name}", html, True
        yield f"digest text {name}", text, False
    yield "feed content", env.get_template("feed/content.html").render(article=article), True
    for notice, extra in NOTICE_SAMPLES.items():
        html, text = render_notice(env, notice, {"site": settings.site, "subject": "S", "email": READER, **extra})
        yield f"notice {notice}", html, True
        yield f"notice text {notice}", text, False
    joined = datetime(2026, 1, 1, tzinfo=UTC)
    subscriber = Subscriber(1, READER, "Ann", Status.ACTIVE, Preferences(), Source.API, joined, joined, Source.API, None)
    left = dataclasses.replace(subscriber, status=Status.UNSUBSCRIBED, unsubscribed_at=joined)
    t = i18n.Translator(language)  # as the pages' handlers translate a form's errors
    errors = {"email": t.gettext("Enter your email address."), "name": t.gettext("Your name must be a single line of text.")}
    shared = {
        "site": settings.site, "base": "/", "feeds": (("application/rss+xml", "RSS", "/feed.rss"),),
        "csrf_token": lambda: "t", "extra_feeds": (), "tag_feeds": (), "social": (), "linked_data": None,
    }
    listing = {"heading": "Sample", "articles": [article], "page": Page.of("/archive", 2, 3 * PAGE_SIZE),
               "canonical_url": SITE + "archive?page=2", "listing_feeds": (("application/atom+xml", "Atom", "/t.atom"),)}
    past = PastDigest("d1", "daily", joined, [article])
    form = {"values": {"email": "", "name": "", "cadence": "daily", "topics": [], "timezone": "UTC", "send_hour": "",
                       "send_weekday": ""},
            "topics": [("sample", "Sample")], "cadences": list(Cadence), "limits": {"email": 254, "name": 100}}
    preferences = form | {
        "subscriber": subscriber, "timezones": ZONES, "default_hour": 8,
        "weekdays": WEEKDAYS, "default_weekday": "mon", "unsubscribe_path": "/u", "saved": False, "confirmed": False,
    }
    pages = {
        "index": {"articles": [article], "more": True}, "index, empty": {"articles": [], "more": False},
        "article": {"article": article, "tag_pages": (("sample", "sample"),)},
        "listing": listing, "listing, one page": listing | {"page": Page.of("/archive", 1, 1)},
        "digests": {"digests": [past], "page": Page.of("/digests/", 1, 1), "canonical_url": SITE + "digests/",
                    "names": {"daily": digest_name("daily", language)}},
        "digests, none": {"digests": [], "page": Page.of("/digests/", 1, 0), "canonical_url": SITE + "digests/",
                          "names": {}},
        "check_inbox": {}, "confirm": {"subscriber": subscriber},
        "error": {"status": 404, "reason": t.gettext("Page not found"), "message": t.gettext("There is nothing at this address.")},
        "link_problem": {"expired": False}, "link_problem, expired": {"expired": True, "resend_token": "t"},
        "preferences": preferences | {"errors": {}},
        "preferences, errors": preferences | {"errors": {"name": errors["name"]}},
        "preferences, confirmed": preferences | {"errors": {}, "confirmed": True},
        "preferences, saved": preferences | {"errors": {}, "saved": True},
        "preferences, left": preferences | {"errors": {}, "subscriber": left},
        "preferences_request": {"values": {"email": ""}, "errors": {"email": errors["email"]}},
        "subscribe": form | {"errors": {}}, "subscribe, errors": form | {"errors": errors},
        "unsubscribe": {"subscriber": subscriber, "preferences_path": "/p"},
        "unsubscribed": {"subscriber": subscriber, "resubscribe_path": "/r"},
        "unsubscribed, unknown": {"subscriber": None, "resubscribe_path": ""},
    }
    for page, context in pages.items():
        name = page.split(",")[0]
        yield f"page {page}", env.get_template(f"web/{name}.html").render(shared | context), True


# Every zone, each labelled with its IANA name: the regions are translated, the names are data.
ZONES = zone_choices("UTC", datetime(2026, 1, 5, tzinfo=UTC))

# What the sample itself says (article, site, reader): the data, not the interface.
_SAMPLE = sample_article(SITE)
DATA = [
    _SAMPLE.title, _SAMPLE.subtitle, _SAMPLE.author, _SAMPLE.summary, *_SAMPLE.takeaways, _SAMPLE.quotes[0].text,
    _SAMPLE.quotes[0].cite, _SAMPLE.images[0].alt, _SAMPLE.images[0].caption, "The body.", "Figures", "Year",
    "Value", "A source", "sample", "Sample", "Dispatch", "Quiet news", "1 Quay", "9999 Port", READER, SITE,
    "Ann", "RSS", "UTC", "JSON Feed", "Atom",
    *(label for _region, zones in ZONES.regions for _zone, label in zones),
]


@pytest.mark.parametrize("language", SHIPPED)
def test_every_email_and_page_speaks_the_language_with_nothing_left_out(
    language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = {_key(message) for message in _read(i18n.catalog_path(language), language) if message.id}
    recorder = _Bracketing(language, known)
    monkeypatch.setattr(i18n, "translations", lambda tag: recorder)
    # Dates, hours and weekdays come from Babel's data for the language, not from the catalog.
    data = [
        *DATA, i18n.format_date(_SAMPLE.published, language), *(i18n.format_time(hour, language) for hour in range(24)),
        *(i18n.weekday_name(day, language) for day in WEEKDAYS),
    ]
    untranslated = {}
    count = 0
    for what, output, is_html in _renders(language):
        count += 1
        left = _untranslated(_visible(output) if is_html else output, data)
        if left:
            untranslated[what] = left
        if is_html and output.lstrip().startswith("<!DOCTYPE"):
            assert f'<html lang="{language}" dir="{direction(language)}">' in output, what
    assert count > 40
    assert recorder.missing == set()
    assert untranslated == {}


def test_every_page_and_email_template_is_among_those_rendered() -> None:
    """A new page or notice fails here until the language test renders it (with a context of its own)."""
    names = make_environment().list_templates(filter_func=lambda name: name.endswith((".html", ".txt")))
    pages = {name[4:-5] for name in names if name.startswith("web/") and not name.startswith("web/_")} - {"base"}
    notices = {name[6:].rsplit(".", 1)[0] for name in names if name.startswith("email/") and "/_" not in name}
    rendered = {what.split(",")[0].split()[-1] for what, _output, _html in _renders("en")}
    assert pages - rendered == set()
    assert notices - rendered - {"digest", "notice", "subject"} == set()  # the digest's and the notices' own


def test_arabic_reads_right_to_left_and_german_is_german() -> None:
    env = make_environment(language="ar")
    article = sample_article(SITE)
    html, text = render_digest([article], _settings("ar"), env, "d", "weekly").personalize(
        Personal("", READER, SITE + "u", SITE + "p")
    )
    assert '<html lang="ar" dir="rtl">' in html and "النشرة الأسبوعية" in html and "مرحبًا بك،" in text
    # The layout mirrored, inlined as the email's other styles are: the quote's rule on its right.
    assert re.search(r'<blockquote class="quote" style="[^"]*border-right: 4px solid', html)
    german = render_digest([article, article], _settings("de"), make_environment(language="de"), "d", "daily")
    assert german.subject == "A sample article und 1 weiterer Artikel"
    html, text = german.personalize(Personal("", READER, SITE + "u", SITE + "p"))
    assert "Hier ist Ihr Tages-Newsletter: 2 neue Artikel." in html and "Hallo zusammen," in text
    assert "Von A. Writer · 5. Januar 2026" in text  # the article's date, as German writes it
    page = make_environment(language="de").get_template("web/index.html").render(
        site=_settings("de").site, base="/", feeds=(), articles=[article], extra_feeds=(), social=(), linked_data=None,
        more=False,
    )
    assert "5. Januar 2026" in page and "Neueste Artikel" in page and urls.SUBSCRIBE.under("/") in page
