"""Feeds: content, order, ids, per-tag feeds, determinism, files, and W3C-validator rules."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import html
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import feedparser
import lxml.html
import pytest
from lxml import etree

from publisher import urls
from publisher.config import SiteSettings
from publisher.content.markdown import parse_article
from publisher.content.model import Article, FactTable, Image, Quote
from publisher.feeds.build import (
    EMPTY_FEED_DATE,
    FORMATS,
    FeedDocument,
    build_feeds,
)
from publisher.feeds.entries import entry_id
from publisher.feeds.files import write_feeds
from publisher.templating import make_environment
from tests.support.articles import BODY_HTML, FACT_ROWS, SOURCES, SUBTITLE, TAKEAWAYS, seed_like
from tests.support.feed_validity import (
    CONTENT_ENCODED,
    DC_CREATOR,
    atom_problems,
    feed_problems,
    html_problems,
    json_feed_problems,
    rss_problems,
)

SITE_URL = "https://news.example.org/"
SITE_PATHS = {"feed.rss", "feed.atom", "feed.json"}
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
TAG_SLUGS = {"north-korea", "russia", "geopolitics", "economy", "south-korea"}


@pytest.fixture
def site() -> SiteSettings:
    return SiteSettings(
        title="World Desk", url=SITE_URL, description="Analysis of world affairs", author="The Desk"
    )


@pytest.fixture
def env():
    return make_environment()


@pytest.fixture
def seed() -> Article:
    """The seed-like article, dated across time zones, with relative links in its body."""
    return seed_like(
        slug="kim-jong-un-russia-visit",
        published=datetime(2023, 9, 13, 8, 0, tzinfo=UTC),
        updated=datetime(2023, 9, 14, 9, 30, tzinfo=timezone(timedelta(hours=2))),
        canonical_url="https://news.example.org/2023/kim-jong-un-russia-visit/",
        body_html=(
            BODY_HTML + '<p>See <a href="/2023/earlier-analysis/">our earlier analysis</a> and '
            '<img src="../media/map.png" alt="Map">.</p>\n'
        ),
    )


@pytest.fixture
def grain() -> Article:
    """Its id is its canonical URL; its table exists only as data (an API-style source)."""
    return Article(
        id="https://news.example.org/2023/grain-deal/",
        slug="grain-deal",
        title="Grain corridor talks stall",
        published=datetime(2023, 9, 15, 12, 0, tzinfo=UTC),
        updated=datetime(2023, 9, 15, 13, 0, tzinfo=UTC),
        canonical_url="https://news.example.org/2023/grain-deal/",
        author="Omar Reporter",
        tags=("Russia", "Economy"),
        summary="Talks on the Black Sea grain corridor stalled <again> & prices rose.",
        body_html="<p>Negotiators left without a deal.</p>",
        fact_tables=(
            FactTable(
                caption="Wheat exports",
                header=("Year", "Tonnes"),
                rows=(("2021", "33 million"), ("2022", "45 million")),
                sources="FAO",
            ),
        ),
    )


@pytest.fixture
def seoul() -> Article:
    return Article(
        id="tag:news.example.org,2023:seoul-reaction",
        slug="seoul-reaction",
        title="Seoul weighs its response",
        published=datetime(2023, 9, 16, 7, 0, tzinfo=UTC),
        updated=datetime(2023, 9, 16, 7, 5, tzinfo=UTC),
        canonical_url="https://news.example.org/2023/seoul-reaction/",
        tags=("South Korea",),
        body_html="<p>South Korea is reviewing its options.</p>",
    )


@pytest.fixture
def articles(seed: Article, grain: Article, seoul: Article) -> list[Article]:
    return [seed, grain, seoul]


@pytest.fixture
def docs(articles, site, env) -> dict[str, FeedDocument]:
    return build_feeds(articles, site, 20, env)


def _parsed(doc: FeedDocument) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(doc.body)
    assert not parsed.bozo, (doc.path, parsed.get("bozo_exception"))
    return parsed


def _contents(docs: dict[str, FeedDocument], article: Article, site: SiteSettings) -> dict[str, str]:
    """The full content of ``article`` in the site's RSS, Atom and JSON feeds."""
    wanted = entry_id(article, site.url)
    rss = next(e for e in _parsed(docs["feed.rss"]).entries if e.id == wanted)
    atom = next(e for e in _parsed(docs["feed.atom"]).entries if e.id == wanted)
    item = next(i for i in json.loads(docs["feed.json"].body)["items"] if i["id"] == wanted)
    return {"rss": rss.content[0].value, "atom": atom.content[0].value, "json": item["content_html"]}


def _paths(slugs: set[str]) -> set[str]:
    return SITE_PATHS | {f"tags/{slug}/{name}" for slug in slugs for name in SITE_PATHS}


# --- what is built ---------------------------------------------------------------------------


def test_builds_site_and_per_tag_triples_with_their_media_types(docs):
    assert set(docs) == _paths(TAG_SLUGS)
    for path, doc in docs.items():
        assert doc.path == path
        assert doc.content_type == CONTENT_TYPES[path.rsplit(".", 1)[1]]


def test_every_xml_feed_parses_without_bozo_and_json_parses(docs):
    for path, doc in docs.items():
        if path.endswith(".json"):
            json.loads(doc.body)
        else:
            assert _parsed(doc).entries


def test_entries_are_newest_first(docs, articles, site):
    newest_first = [entry_id(a, site.url) for a in sorted(articles, key=lambda a: a.published, reverse=True)]
    assert [e.id for e in _parsed(docs["feed.rss"]).entries] == newest_first
    assert [e.id for e in _parsed(docs["feed.atom"]).entries] == newest_first
    assert [i["id"] for i in json.loads(docs["feed.json"].body)["items"]] == newest_first


def test_same_published_time_orders_by_id_whatever_the_input_order(site, env, seoul):
    twins = [dataclasses.replace(seoul, id=f"twin-{n}", slug=f"twin-{n}") for n in "ba"]
    forward = build_feeds(twins, site, 20, env)
    backward = build_feeds(twins[::-1], site, 20, env)
    ids = [e.id for e in _parsed(forward["feed.rss"]).entries]
    assert ids == [entry_id(twins[1], site.url), entry_id(twins[0], site.url)]
    assert forward["feed.rss"].body == backward["feed.rss"].body


def test_max_entries_keeps_the_newest_in_every_feed(articles, site, env, seoul, grain, seed):
    docs = build_feeds(articles, site, 2, env)
    expected = [entry_id(a, site.url) for a in (seoul, grain)]
    assert [e.id for e in _parsed(docs["feed.rss"]).entries] == expected
    assert [e.id for e in _parsed(docs["feed.atom"]).entries] == expected
    assert [i["id"] for i in json.loads(docs["feed.json"].body)["items"]] == expected
    russia = [entry_id(a, site.url) for a in (grain, seed)]
    assert [e.id for e in _parsed(docs["tags/russia/feed.atom"]).entries] == russia
    one = build_feeds(articles, site, 1, env)
    assert all(len(_parsed(d).entries) == 1 for p, d in one.items() if not p.endswith(".json"))


def test_tag_feeds_hold_only_their_tags_articles(docs, site, seed, grain, seoul):
    expected = {
        "north-korea": ("North Korea", [seed]),
        "russia": ("Russia", [grain, seed]),
        "geopolitics": ("Geopolitics", [seed]),
        "economy": ("Economy", [grain]),
        "south-korea": ("South Korea", [seoul]),
    }
    for slug, (tag, members) in expected.items():
        ids = [entry_id(a, site.url) for a in members]
        for fmt in ("rss", "atom"):
            parsed = _parsed(docs[f"tags/{slug}/feed.{fmt}"])
            assert parsed.feed.title == f"World Desk — {tag}"
            assert [e.id for e in parsed.entries] == ids
        feed = json.loads(docs[f"tags/{slug}/feed.json"].body)
        assert feed["title"] == f"World Desk — {tag}"
        assert [i["id"] for i in feed["items"]] == ids


def test_tags_spelled_differently_share_one_feed(site, env, seed, seoul):
    shouting = dataclasses.replace(seoul, tags=("NORTH KOREA",))
    docs = build_feeds([seed, shouting], site, 20, env)
    assert {p for p in docs if p.startswith("tags/north")} == {f"tags/north-korea/{n}" for n in SITE_PATHS}
    assert len(_parsed(docs["tags/north-korea/feed.rss"]).entries) == 2


# --- content ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_full_content_has_image_subtitle_takeaways_and_the_fact_table(docs, seed, site, fmt):
    content = _contents(docs, seed, site)[fmt]
    tree = lxml.html.fragment_fromstring(content, create_parent="div")
    figure = tree.find("figure")
    assert figure.find("img").get("alt") == "Kim Jong Un arriving in Russia"
    assert figure.findtext("figcaption") == "Kim Jong Un arrives in Russia"
    assert SUBTITLE in tree.text_content()  # "&" shown once, not double-escaped
    assert [li.text for li in tree.xpath("//h2[text()='Key takeaways']/following-sibling::ul[1]/li")] == list(
        TAKEAWAYS
    )
    tables = tree.findall(".//table")
    assert len(tables) == 1  # the body's table, not repeated from the model
    rows = [tuple(td.text for td in tr.findall("td")) for tr in tables[0].findall("tbody/tr")]
    assert rows == list(FACT_ROWS)
    assert tables[0].getparent().tag == "div"  # a block sibling, not inside <p>
    assert f"Data Sources: {SOURCES}" in tree.text_content()


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_fact_tables_only_in_the_model_are_rendered_after_the_body(docs, grain, site, fmt):
    tree = lxml.html.fragment_fromstring(_contents(docs, grain, site)[fmt], create_parent="div")
    blocks = [child.tag for child in tree]
    assert blocks == ["p", "table", "p"]
    table = tree.find("table")
    assert table.findtext("caption") == "Wheat exports"
    assert [th.text for th in table.findall("thead/tr/th")] == ["Year", "Tonnes"]
    assert [[td.text for td in tr] for tr in table.findall("tbody/tr")] == [
        ["2021", "33 million"],
        ["2022", "45 million"],
    ]
    # Each row is named by its first cell, for screen readers.
    assert [(tr[0].tag, tr[0].get("scope")) for tr in table.findall("tbody/tr")] == [("th", "row")] * 2
    assert tree[2].text_content() == "Data sources: FAO"  # one wording (and one msgid) with the emails


def test_relative_links_in_content_become_absolute(docs, seed, site):
    tree = lxml.html.fragment_fromstring(_contents(docs, seed, site)["json"], create_parent="div")
    assert tree.xpath("//a/@href") == ["https://news.example.org/2023/earlier-analysis/"]
    assert "https://news.example.org/2023/media/map.png" in tree.xpath("//img/@src")


def test_summary_is_plain_text_in_every_format(docs, grain, site):
    wanted = entry_id(grain, site.url)
    text = "Talks on the Black Sea grain corridor stalled <again> & prices rose."
    for path in ("feed.rss", "feed.atom"):
        entry = next(e for e in _parsed(docs[path]).entries if e.id == wanted)
        assert html.unescape(entry.summary) == text  # declared HTML, so readers show "<again>"
    item = next(i for i in json.loads(docs["feed.json"].body)["items"] if i["id"] == wanted)
    assert item["summary"] == text
    rss = etree.fromstring(docs["feed.rss"].body)
    description = rss.xpath("//item[guid=$g]/description/text()", g=wanted)[0]
    assert description == "Talks on the Black Sea grain corridor stalled &lt;again&gt; &amp; prices rose."


def test_authors_categories_and_lead_image(docs, seed, seoul, site):
    rss = etree.fromstring(docs["feed.rss"].body)
    item = rss.xpath("//item[guid=$g]", g=entry_id(seed, site.url))[0]
    assert item.findtext(DC_CREATOR) == "Jane Analyst"
    assert item.find("author") is None  # RSS author must be an e-mail address; we only have a name
    assert [c.text for c in item.findall("category")] == [
        "North Korea",
        "Russia",
        "Geopolitics",
        "General News & Posts",
    ]
    assert dict(item.find("enclosure").attrib) == {
        "url": "https://news.example.org/media/kim-arrives.jpg",
        "length": "0",
        "type": "image/jpeg",
    }
    no_author = rss.xpath("//item[guid=$g]", g=entry_id(seoul, site.url))[0]
    assert no_author.find(DC_CREATOR) is None

    atom = _parsed(docs["feed.atom"])
    entry = next(e for e in atom.entries if e.id == entry_id(seed, site.url))
    assert entry.author == "Jane Analyst"
    assert [t.term for t in entry.tags] == ["North Korea", "Russia", "Geopolitics", "General News & Posts"]
    assert [(l.rel, l.href) for l in entry.links] == [
        ("alternate", seed.canonical_url),
        ("enclosure", "https://news.example.org/media/kim-arrives.jpg"),
    ]
    assert entry.enclosures[0].type == "image/jpeg"
    assert atom.feed.author == "The Desk"

    item = json.loads(docs["feed.json"].body)["items"][-1]
    assert item["authors"] == [{"name": "Jane Analyst"}]
    assert item["tags"] == ["North Korea", "Russia", "Geopolitics", "General News & Posts"]
    assert item["image"] == "https://news.example.org/media/kim-arrives.jpg"


def test_channel_metadata(docs, site, env, articles):
    rss = _parsed(docs["feed.rss"]).feed
    assert rss.link == SITE_URL  # feedgen would use the last link added: the self link
    assert rss.subtitle == "Analysis of world affairs"
    assert rss.language == "en"
    atom = _parsed(docs["tags/russia/feed.atom"]).feed
    assert atom.id == "https://news.example.org/tags/russia/feed.atom"
    assert {(l.rel, l.href) for l in atom.links} == {
        ("self", "https://news.example.org/tags/russia/feed.atom"),
        ("alternate", SITE_URL),
    }
    untitled = build_feeds(articles, site.model_copy(update={"description": "", "author": ""}), 20, env)
    assert _parsed(untitled["feed.rss"]).feed.subtitle == "World Desk"
    assert _parsed(untitled["feed.atom"]).feed.author == "World Desk"
    assert json.loads(untitled["feed.json"].body)["authors"] == [{"name": "World Desk"}]


def test_json_feed_has_the_required_and_promised_fields(docs, seed, site):
    feed = json.loads(docs["feed.json"].body)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "World Desk"
    assert feed["home_page_url"] == SITE_URL
    assert feed["feed_url"] == "https://news.example.org/feed.json"
    item = feed["items"][-1]
    assert item["id"] == entry_id(seed, site.url)
    assert item["url"] == seed.canonical_url
    assert item["title"] == seed.title
    assert item["summary"] == seed.summary
    assert item["date_published"] == "2023-09-13T08:00:00+00:00"
    assert item["date_modified"] == "2023-09-14T07:30:00+00:00"
    assert item["language"] == "en"
    assert all(isinstance(i["id"], str) and i["content_html"] for i in feed["items"])


def test_an_article_in_another_language_says_so_in_atom_and_json(site, env, seed, grain):
    """Atom entries take xml:lang and JSON Feed 1.1 items "language"; RSS 2.0 has a language for
    the channel only, so an item says its own in the publisher namespace alone."""
    arabic = dataclasses.replace(grain, lang="ar")
    docs = build_feeds([seed, arabic], site, 20, env)
    atom = etree.fromstring(docs["feed.atom"].body)
    xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
    languages = {
        entry.findtext("{http://www.w3.org/2005/Atom}title"): entry.get(xml_lang)
        for entry in atom.iter("{http://www.w3.org/2005/Atom}entry")
    }
    assert languages == {arabic.title: "ar", seed.title: None}
    assert {e.title: e.title_detail.language for e in _parsed(docs["feed.atom"]).entries}[arabic.title] == "ar"
    items = {item["title"]: item["language"] for item in json.loads(docs["feed.json"].body)["items"]}
    assert items == {arabic.title: "ar", seed.title: "en"}
    rss = etree.fromstring(docs["feed.rss"].body)
    assert [e.tag for e in rss.iter() if "lang" in e.tag or any("lang" in k for k in e.attrib)] == [
        "language", "{https://publisher.invalid/ns/1.0}lang"]
    assert atom_problems(docs["feed.atom"].body, SITE_URL + "feed.atom") == []


# --- ids and dates -----------------------------------------------------------------------------


def test_entry_ids(site, seed, grain, seoul):
    assert (
        entry_id(seed, site.url)
        == f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, SITE_URL + 'kim-russia-visit')}"
    )
    assert entry_id(grain, site.url) == grain.id
    assert entry_id(seoul, site.url) == seoul.id
    assert entry_id(dataclasses.replace(seed, id="kim:visit"), site.url).startswith("urn:uuid:")


def test_guid_is_a_permalink_only_when_it_is_the_canonical_url(docs, site, seed, grain, seoul):
    rss = etree.fromstring(docs["feed.rss"].body)
    permalink = {g.text: g.get("isPermaLink") for g in rss.iter("guid")}
    assert permalink == {
        entry_id(seoul, site.url): "false",
        grain.id: "true",
        entry_id(seed, site.url): "false",
    }


def test_ids_survive_an_edit_while_updated_moves(articles, site, env, seed):
    edited = dataclasses.replace(
        seed,
        title="Kim and Putin: the summit, revisited",
        slug="kim-putin-summit-revisited",
        body_html="<p>Rewritten.</p>",
        updated=datetime(2023, 9, 20, 10, 0, tzinfo=UTC),
    )
    before = build_feeds(articles, site, 20, env)
    after = build_feeds([edited if a is seed else a for a in articles], site, 20, env)
    wanted = entry_id(seed, site.url)
    for path in ("feed.rss", "feed.atom"):
        old, new = (next(e for e in _parsed(d[path]).entries if e.id == wanted) for d in (before, after))
        assert new.title != old.title
    old_atom, new_atom = (
        next(e for e in _parsed(d["feed.atom"]).entries if e.id == wanted) for d in (before, after)
    )
    assert (old_atom.updated, new_atom.updated) == ("2023-09-14T07:30:00+00:00", "2023-09-20T10:00:00+00:00")
    old_json, new_json = (
        next(i for i in json.loads(d["feed.json"].body)["items"] if i["id"] == wanted)
        for d in (before, after)
    )
    assert old_json["date_modified"] != new_json["date_modified"]
    assert after["feed.rss"].last_modified == datetime(2023, 9, 20, 10, 0, tzinfo=UTC)


def test_feed_dates_come_from_the_entries_not_the_clock(docs):
    newest = datetime(2023, 9, 16, 7, 5, tzinfo=UTC)
    assert docs["feed.rss"].last_modified == newest
    assert _parsed(docs["feed.rss"]).feed.updated == "Sat, 16 Sep 2023 07:05:00 +0000"
    assert _parsed(docs["feed.atom"]).feed.updated == "2023-09-16T07:05:00+00:00"
    assert docs["tags/north-korea/feed.atom"].last_modified == datetime(2023, 9, 14, 7, 30, tzinfo=UTC)
    assert all(d.last_modified.utcoffset() == timedelta(0) for d in docs.values())


def test_naive_dates_are_refused(site, env, seoul, caplog):
    docs = build_feeds([dataclasses.replace(seoul, updated=datetime(2023, 9, 16))], site, 20, env)
    assert _parsed(docs["feed.rss"]).entries == []
    assert seoul.id in caplog.text and "naive datetime" in caplog.text


def test_an_empty_site_still_has_valid_site_feeds(site, env):
    docs = build_feeds([], site, 20, env)
    assert set(docs) == SITE_PATHS
    assert all(d.last_modified == EMPTY_FEED_DATE for d in docs.values())
    assert rss_problems(docs["feed.rss"].body, SITE_URL + "feed.rss") == []
    assert atom_problems(docs["feed.atom"].body, SITE_URL + "feed.atom") == []
    assert json_feed_problems(docs["feed.json"].body, SITE_URL + "feed.json") == []
    assert json.loads(docs["feed.json"].body)["items"] == []


# --- bytes, ETags, gzip --------------------------------------------------------------------------


def test_same_content_gives_the_same_bytes_and_etags(articles, site, env, docs):
    again = build_feeds(list(reversed(articles)), site, 20, make_environment())
    assert again == docs
    assert b"feedgen" not in docs["feed.atom"].body  # its default generator names its version


def test_etag_is_the_quoted_sha256_of_the_body_and_follows_content(articles, site, env, docs, seed):
    for doc in docs.values():
        assert doc.etag == f'"{hashlib.sha256(doc.body).hexdigest()}"'
    edited = build_feeds(
        [dataclasses.replace(seed, title="New title") if a is seed else a for a in articles], site, 20, env
    )
    assert edited["feed.rss"].etag != docs["feed.rss"].etag
    assert edited["tags/russia/feed.json"].etag != docs["tags/russia/feed.json"].etag
    assert edited["tags/south-korea/feed.atom"].etag == docs["tags/south-korea/feed.atom"].etag


def test_gzipped_is_the_body_compressed_reproducibly(docs):
    for doc in docs.values():
        assert gzip.decompress(doc.gzipped) == doc.body
        assert doc.gzipped[4:8] == b"\0\0\0\0"  # mtime 0: no build time in the bytes


# --- files -----------------------------------------------------------------------------------------


def test_write_feeds_writes_bodies_and_gz_twins(docs, tmp_path):
    write_feeds(docs, tmp_path)
    for path, doc in docs.items():
        assert (tmp_path / path).read_bytes() == doc.body
        assert gzip.decompress((tmp_path / f"{path}.gz").read_bytes()) == doc.body
        assert (tmp_path / path).stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.rglob("*.tmp"))


def test_write_feeds_leaves_unchanged_files_alone(articles, site, env, docs, tmp_path, seed):
    write_feeds(docs, tmp_path)

    def identity(path: str) -> tuple[int, int]:
        stat = (tmp_path / path).stat()
        return stat.st_ino, stat.st_mtime_ns

    before = {p: identity(p) for p in docs}
    edited = build_feeds(
        [dataclasses.replace(seed, title="New title") if a is seed else a for a in articles], site, 20, env
    )
    write_feeds(edited, tmp_path)
    assert identity("tags/south-korea/feed.rss") == before["tags/south-korea/feed.rss"]
    assert identity("feed.rss") != before["feed.rss"]
    assert (tmp_path / "feed.rss").read_bytes() == edited["feed.rss"].body


def test_write_feeds_removes_feeds_of_vanished_tags_only(articles, site, env, docs, tmp_path, seoul):
    write_feeds(docs, tmp_path)
    (tmp_path / "tags/economy/index.html").write_text("a page someone else manages")
    (tmp_path / "tags/russia/notes.txt").write_text("keep")
    remaining = [a for a in articles if a is not seoul]
    without = build_feeds([dataclasses.replace(a, tags=("Russia",)) for a in remaining], site, 20, env)
    write_feeds(without, tmp_path)
    assert not (tmp_path / "tags/south-korea").exists()
    assert sorted(p.name for p in (tmp_path / "tags/economy").iterdir()) == ["index.html"]
    assert (tmp_path / "tags/russia/notes.txt").exists()
    assert (tmp_path / "tags/russia/feed.rss").read_bytes() == without["tags/russia/feed.rss"].body
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("feed.*")}
    assert written == set(without) | {f"{p}.gz" for p in without}


# --- W3C Feed Validation Service rules ---------------------------------------------------------------


def test_rss_and_atom_feeds_pass_the_validator_rules(docs):
    for path, doc in docs.items():
        assert feed_problems(path, doc.body, SITE_URL + path) == [], path


def test_rss_content_is_escaped_html_after_a_description(docs):
    rss = etree.fromstring(docs["feed.rss"].body)
    for item in rss.iter("item"):
        children = [c.tag for c in item]
        assert children.index("description") < children.index(CONTENT_ENCODED)
        assert "<table>" in item.findtext(CONTENT_ENCODED) or "<p>" in item.findtext(CONTENT_ENCODED)


def test_validator_rules_reject_what_the_service_rejects():
    """The rules must be able to fail: each known-bad input is reported with its message."""
    assert any("NotHtml" in p for p in html_problems("<p>Facts <table><tr><td>1</td></tr></table></p>", "c"))
    assert any("NotHtml" in p for p in html_problems("<p>AT&T</p>", "c"))
    assert any("SecurityRisk: <script>" in p for p in html_problems("<script>x()</script>", "c"))
    assert any(
        "SecurityRisk: <iframe>" in p for p in html_problems('<iframe src="https://x.org/"></iframe>', "c")
    )
    assert any("SecurityRiskAttr: onclick" in p for p in html_problems('<p onclick="x()">a</p>', "c"))
    assert any("DangerousStyleAttr" in p for p in html_problems('<p style="color:red">a</p>', "c"))
    assert any("ContainsRelRef" in p for p in html_problems('<a href="/x">a</a>', "c"))
    assert (
        html_problems('<p>a</p><table><tr><td>1</td></tr></table><a href="https://x.org/">b</a>', "c") == []
    )

    now = datetime(2024, 1, 1, tzinfo=UTC)
    bad_rss = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
<title>T</title><link>/home</link><description>D</description>
<atom:link href="https://elsewhere.example/feed" rel="self" type="application/rss+xml"/>
<lastBuildDate>2023-09-16T07:05:00Z</lastBuildDate>
<item><title>a</title><guid isPermaLink="true">tag:x.org,2023:a</guid><pubDate>Fri, 16 Sep 2023 07:05:00 +0000</pubDate></item>
<item><title>b</title><content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/">x</content:encoded>
<enclosure url="img.jpg" length="-5" type="image"/><pubDate>Sat, 16 Sep 2034 07:05:00 +0000</pubDate></item>
</channel></rss>"""
    problems = "\n".join(rss_problems(bad_rss, "https://news.example.org/feed.rss", now))
    for message in (
        "MissingElement language",
        "channel/link: InvalidFullLink",
        "SelfDoesntMatchLocation",
        "InvalidRFC2822Date",
        "InvalidPermalink",
        "IncorrectDOW",
        "MissingGuid",
        "NeedDescriptionBeforeContent",
        "InvalidIntegerAttribute",
        "InvalidMIMEAttribute",
        "ImplausibleDate",
    ):
        assert message in problems

    bad_atom = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:uuid:nope</id><title>T</title><updated>2023-09-16</updated>
<link href="https://news.example.org/feed.atom" rel="self" type="text/html"/>
<entry><id>https://x.org/a</id><title>a</title><updated>2023-09-16T07:05:00Z</updated>
<link href="https://x.org/a"/><link href="https://x.org/a.jpg"/></entry>
<entry><id>https://x.org/a</id><title>&lt;b&gt;bold&lt;/b&gt;</title><updated>2023-09-16T07:05:00Z</updated>
<content type="html">&lt;p&gt;&lt;table&gt;&lt;/table&gt;&lt;/p&gt;</content></entry>
</feed>"""
    problems = "\n".join(atom_problems(bad_atom, "https://news.example.org/feed.atom", now))
    for message in (
        "MissingDCLanguage",
        "InvalidUUID",
        "InvalidRFC3339Date",
        "SelfNotAtom",
        "DuplicateAtomLink",  # what feedgen's own enclosure() produces in Atom
        "DuplicateEntries",
        "DuplicateUpdated",
        "ContainsUndeclaredHTML",
        "NotHtml",
        "MissingElement author",
    ):
        assert message in problems

    bad_json = json.dumps({"version": "https://jsonfeed.org/version/1", "items": [{"id": 1}]}).encode()
    problems = "\n".join(json_feed_problems(bad_json, "https://news.example.org/feed.json"))
    for message in ("version", "title: required", "feed_url", "id: required", "content_html or content_text"):
        assert message in problems


def test_front_matter_image_and_quote_are_shown_once_and_body_ones_not_repeated(site, env, seoul):
    from_front_matter = dataclasses.replace(
        seoul,
        images=(Image(src="https://news.example.org/img/lead.jpg", alt="Lead"),),
        quotes=(Quote(text="Only in the front matter", cite="A. Speaker"),),
    )
    in_body = dataclasses.replace(
        from_front_matter,
        body_html=seoul.body_html
        + '<p><img src="https://news.example.org/img/lead.jpg" alt="Lead"></p>'
        + "<blockquote><p>Only in the front matter</p></blockquote>",
    )
    template = env.get_template("feed/content.html")
    shown = template.render(article=from_front_matter)
    assert shown.count("img/lead.jpg") == 1 and shown.count("Only in the front matter") == 1
    assert "A. Speaker" in shown
    repeated = template.render(article=in_body)
    assert repeated.count("img/lead.jpg") == 1 and repeated.count("Only in the front matter") == 1


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
@pytest.mark.parametrize(
    "quote", ['The grid is "ours" now', "It's cheaper to run", "Sun & wind", "It's \"ours\" & *cheaper*\n> to run"]
)
def test_a_pull_quote_from_the_body_is_shown_once_whatever_its_characters(site, env, fmt, quote):
    """The feed template must recognise the body's own quote even when escaping differs."""
    source = f"---\ntitle: Quoted\ndate: 2024-05-01T08:00:00Z\n---\n\nFirst.\n\n> {quote}\n> -- A member\n\nLast.\n"
    article = parse_article(source.encode(), "quoted.md", SITE_URL)
    assert article.pull_quote is not None
    content = _contents(build_feeds([article], site, 20, env), article, site)[fmt]
    shown = lxml.html.fragment_fromstring(content, create_parent="div")
    assert len(shown.findall(".//blockquote")) == 1
    assert " ".join(shown.text_content().split()).count(article.pull_quote.text) == 1


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_a_data_only_table_keeps_its_column_alignment(site, env, grain, fmt):
    aligned = dataclasses.replace(grain.fact_tables[0], align=("center", "right"))
    article = dataclasses.replace(grain, fact_tables=(aligned,))
    content = _contents(build_feeds([article], site, 20, env), article, site)[fmt]
    table = lxml.html.fragment_fromstring(content, create_parent="div").find(".//table")
    for row in table.iter("tr"):
        assert [cell.get("align") for cell in row] == ["center", "right"]


def test_a_lead_image_whose_url_has_an_ampersand_is_not_repeated_from_the_body(site, env):
    source = (
        "---\ntitle: Pictured\ndate: 2024-05-01T08:00:00Z\n---\n\n"
        "![A field of panels](https://cdn.example.org/panels.jpg?w=800&h=600)\n\nText.\n"
    )
    article = parse_article(source.encode(), "pictured.md", SITE_URL)
    assert article.lead_image is not None and "&" in article.lead_image.src
    for content in _contents(build_feeds([article], site, 20, env), article, site).values():
        shown = lxml.html.fragment_fromstring(content, create_parent="div")
        assert [img.get("src") for img in shown.iter("img")] == [article.lead_image.src]


def test_only_the_most_used_tags_get_feeds(seed, grain, seoul, site, env, caplog) -> None:
    """One item with 1,500 categories made 4,500 documents: past [feeds] max_tag_feeds, the
    tags with the most articles keep their feeds and a warning says how many have none."""
    tagged = [
        dataclasses.replace(seed, tags=("Common", "Rare A")),
        dataclasses.replace(grain, tags=("Common", "Middle")),
        dataclasses.replace(seoul, tags=("Common", "Middle", "Rare B")),
    ]
    with caplog.at_level("WARNING", logger="publisher.feeds.build"):
        docs = build_feeds(tagged, site, 20, env, max_tag_feeds=2)
    assert sorted(docs) == sorted(
        f"{prefix}feed.{fmt}" for prefix in ("", "tags/common/", "tags/middle/") for fmt in ("rss", "atom", "json")
    )
    assert len(_parsed(docs["tags/middle/feed.atom"]).entries) == 2
    assert "2 tags have no feed of their own ([feeds] max_tag_feeds = 2" in caplog.text
    assert "'Rare A', 'Rare B'" in caplog.text


def test_an_entry_too_long_for_a_feed_carries_its_summary_and_a_link(seed, grain, site, env) -> None:
    """A 2 MB table would be repeated in every feed the article is in, fetched again and again."""
    huge = dataclasses.replace(seed, body_html="<table>" + "<tr><td>1 MW</td></tr>" * 10_000 + "</table>")
    docs = build_feeds([huge, grain], site, 20, env, max_entry_bytes=50_000)
    assert all(len(doc.body) < 50_000 for doc in docs.values())
    for content in _contents(docs, huge, site).values():
        root = lxml.html.fragment_fromstring(content, create_parent="div")
        assert root.findtext("p") == huge.summary
        (link,) = root.iter("a")
        assert (link.text, link.get("href")) == ("Too long for a feed: read the whole article", huge.canonical_url)
    assert _contents(docs, grain, site) == _contents(build_feeds([grain], site, 20, env), grain, site)  # whole
    german = build_feeds([huge], site.model_copy(update={"language": "de"}), 20, make_environment(language="de"),
                         max_entry_bytes=50_000)
    for content in _contents(german, huge, site).values():
        (link,) = lxml.html.fragment_fromstring(content, create_parent="div").iter("a")
        assert link.text == "Zu lang für einen Feed: den ganzen Artikel lesen"


def test_a_right_to_left_article_or_site_says_its_direction_in_the_entrys_content(seed, grain, site, env) -> None:
    """xml:lang names a language, not a direction: a feed reader showing an Arabic article's
    content needs dir="rtl" in it, whether the article or the whole site is Arabic."""
    arabic = dataclasses.replace(grain, lang="ar")
    docs = build_feeds([seed, arabic], site, 20, env)
    for content in _contents(docs, arabic, site).values():
        root = lxml.html.fragment_fromstring(content, create_parent="body")
        assert [(div.get("dir"), div.get("lang")) for div in root] == [("rtl", "ar")]
    for content in _contents(docs, seed, site).values():
        assert 'dir="rtl"' not in content
    arabic_site = site.model_copy(update={"language": "ar"})
    for content in _contents(build_feeds([seed], arabic_site, 20, make_environment(language="ar")),
                             seed, arabic_site).values():
        assert content.lstrip().startswith('<div dir="rtl" lang="ar">')
    assert rss_problems(docs["feed.rss"].body, SITE_URL + "feed.rss") == []
    assert atom_problems(docs["feed.atom"].body, SITE_URL + "feed.atom") == []


# --- one bad article or tag never stops the others -----------------------------------------------


def _entry_ids(docs: dict[str, FeedDocument], prefix: str = "") -> dict[str, list[str]]:
    """The entry ids of the RSS, Atom and JSON feeds under ``prefix``, in feed order."""
    ids = {fmt: [e.id for e in _parsed(docs[f"{prefix}feed.{fmt}"]).entries] for fmt in ("rss", "atom")}
    ids["json"] = [item["id"] for item in json.loads(docs[f"{prefix}feed.json"].body)["items"]]
    return ids


def _past_the_model(article: Article, **fields: object) -> Article:
    """``article`` with ``fields`` set past the model's cleaning (a copy; the model is frozen).

    The model strips what XML can't carry; should a value still get past it (a bug, a
    new source), the feed build must lose only that article.
    """
    copy = dataclasses.replace(article)
    for name, value in fields.items():
        object.__setattr__(copy, name, value)
    return copy


def test_an_article_no_feed_can_carry_is_left_out_named_and_the_rest_published(site, env, seed, grain, seoul, caplog):
    # A control character that XML can't carry: feedgen raises on it.
    bad = _past_the_model(grain, title="Grain\x01 deal")
    docs = build_feeds([seed, bad, seoul], site, 20, env)
    good = [entry_id(a, SITE_URL) for a in sorted([seed, seoul], key=lambda a: a.published, reverse=True)]
    assert _entry_ids(docs) == {"rss": good, "atom": good, "json": good}
    left_out = [r for r in caplog.records if grain.id in r.getMessage()]
    assert left_out and "XML compatible" in left_out[0].getMessage(), caplog.text


def test_max_entries_counts_only_the_articles_that_could_be_rendered(site, env, seed, grain, seoul):
    newest = max([seed, grain, seoul], key=lambda a: a.published)
    bad = _past_the_model(newest, title="Broken\x02")
    rest = [a for a in (seed, grain, seoul) if a is not newest]
    docs = build_feeds([bad, *rest], site, 2, env)
    assert len(_entry_ids(docs)["rss"]) == 2


def test_an_article_the_content_template_fails_on_is_left_out(tmp_path, site, seed, grain, caplog):
    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "content.html").write_text("<p>{{ 100 // article.tags | length }}</p>\n")
    untagged = dataclasses.replace(grain, tags=(), category="")
    docs = build_feeds([seed, untagged], site, 20, make_environment(tmp_path))
    assert _entry_ids(docs)["rss"] == [entry_id(seed, SITE_URL)]
    assert any(grain.id in r.getMessage() and "ZeroDivisionError" in r.getMessage() for r in caplog.records)


def test_a_tag_feed_that_cannot_be_built_does_not_stop_the_others(site, env, seed, seoul, caplog):
    # The tag feed's title takes the newest article's spelling of the tag: here one XML can't carry.
    older, newer = sorted([seed, seoul], key=lambda a: a.published)
    docs = build_feeds(
        [dataclasses.replace(older, tags=("Bad-tag",)), _past_the_model(newer, title="X\x01", tags=("Bad\x02tag",))],
        site, 20, env,
    )
    assert _entry_ids(docs)["atom"] == [entry_id(older, SITE_URL)]
    assert not any(path.startswith("tags/bad-tag/") for path in docs)
    assert any("tags/bad-tag/" in r.getMessage() for r in caplog.records), caplog.text


def test_the_builder_makes_every_format_the_url_map_routes(seed, site, env) -> None:
    """One list of format names, urls.FEED_FORMATS: a format added to the builder's table
    and not to the URL map (or the other way round) would be built and never served, or
    routed and never built."""
    assert tuple(FORMATS) == urls.FEED_FORMATS
    assert {name: fmt.file_name for name, fmt in FORMATS.items()} == {
        name: urls.feed_path(name) for name in urls.FEED_FORMATS
    }
    docs = build_feeds([dataclasses.replace(seed, tags=("Climate",))], site, 20, env)
    assert set(docs) == {urls.feed_path(fmt, slug) for fmt in urls.FEED_FORMATS for slug in ("", "climate")}
