"""Proposed takeaways (publisher.content.takeaways): what the suggester picks and leaves,
that it never fails on an article, and the ``[content] takeaways`` setting."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.config import ConfigError, load_settings
from publisher.content.markdown import parse_article
from publisher.content.model import Article, ContentLimits, TakeawaysMode, same_authored
from publisher.content.takeaways import MAX_CHARS, MAX_ITEMS, lead, split_sentences, suggest, with_generated
from publisher.content.upstream import parse_feed

SITE = "https://news.example.org/"
ROOT = Path(__file__).resolve().parents[2]


def article(body_html: str, title: str = "Harbour Bridge Repairs", **fields: object) -> Article:
    when = datetime(2026, 1, 5, tzinfo=UTC)
    return Article(id="a", slug="a", title=title, published=when, updated=when,
                   canonical_url=f"{SITE}articles/a", body_html=body_html, **fields)  # type: ignore[arg-type]


def paragraphs(*texts: str) -> str:
    return "".join(f"<p>{text}</p>" for text in texts)


FILLER = [
    "The weather was mild for most of the week across the region and nobody complained much.",
    "People walked their dogs in the park as they do on most ordinary mornings in spring.",
    "A local bakery changed the colour of its awning after a long discussion with its neighbours.",
    "Several readers wrote in about the crossword, which they found harder than usual this time.",
]


def test_sentences_with_figures_and_the_titles_terms_are_preferred_over_filler() -> None:
    figures = "The council will spend 4.5 million pounds on the harbour bridge repairs over 3 years."
    title_terms = "Repairs to the harbour bridge start in March, with one lane closed to traffic throughout."
    proposed = suggest(article(paragraphs(FILLER[0], FILLER[1], figures, FILLER[2], title_terms, FILLER[3])))
    assert figures in proposed and title_terms in proposed
    # The third of the three is the opening sentence (position counts), not the later filler.
    assert set(proposed) == {FILLER[0], figures, title_terms}


def test_a_number_tips_the_balance_between_two_alike_sentences() -> None:
    plain = "Officials said that many more ferries will cross the harbour during the bridge repairs."
    counted = "Officials said that 14 more ferries will cross the harbour during the bridge repairs."
    body = paragraphs(*FILLER, plain, counted)
    assert counted in suggest(article(body))
    assert plain not in suggest(article(body))  # and the two are near-duplicates: one is enough


def test_near_duplicates_are_left_out() -> None:
    first = "The harbour bridge repairs will close one lane for eighteen months from March."
    again = "From March, the harbour bridge repairs will close one lane for eighteen months."
    proposed = suggest(article(paragraphs(first, *FILLER, again)))
    assert (first in proposed) != (again in proposed)


VARIED = [
    "Bridge repairs close the northern lane of the harbour crossing for eight weeks from March.",
    "Ferry operators add 14 crossings a day while the bridge carries less traffic than usual.",
    "Cyclists get a protected path on the eastern side, paid for by a regional transport grant.",
    "Night work is banned near the hospital, so some welding moves to weekends instead.",
    "Engineers found corrosion in 40 of the 212 steel cables during last winter's inspection.",
    "The contractor faces penalties of 20,000 pounds for each day the work overruns.",
    "Buses on route 7 will detour through the old town, adding about ten minutes per trip.",
    "Residents can follow progress on a public map updated by the council every Friday.",
]


def test_three_to_five_items_in_article_order_each_at_most_max_chars() -> None:
    sentences = [*VARIED, "word " * 200 + "harbour bridge repairs 2026."]
    proposed = suggest(article(paragraphs(*sentences)))
    assert 3 <= len(proposed) <= MAX_ITEMS
    assert all(len(item) <= MAX_CHARS for item in proposed)
    positions = [next(i for i, s in enumerate(sentences) if s.startswith(item.rstrip("…"))) for item in proposed]
    assert positions == sorted(positions)


def test_headings_quotes_table_cells_figures_sources_and_list_introductions_are_never_proposed() -> None:
    never = [
        "Harbour bridge repairs cost 4 million in 2026 and the heading says so loudly.",
        "The harbour bridge repairs are 4 million well spent, said the quoted engineer today.",
        "Harbour bridge repairs 2026 budget line one of the table with 4 million in it.",
        "A photo caption of harbour bridge repairs in 2026 showing 4 cranes at work.",
        "Harbour bridge repairs figures from the 2026 council budget and 4 audits",
        "What the harbour bridge repairs of 2026 mean for the 4 districts:",
        "Harbour bridge repairs of 2026 will not stop 4 ferries, said the harbour master.",
    ]
    body = (f"<h2>{never[0]}</h2><blockquote><p>{never[1]}</p></blockquote>"
            f"<table><caption>Costs</caption><tr><th>Item</th></tr><tr><td>{never[2]}</td></tr></table>"
            f"<figure><figcaption>{never[3]}</figcaption></figure><p>Sources: {never[4]}</p><p>{never[5]}</p>"
            f"<p>“{never[6]}” The ferries run all night.</p>"
            f"<ul><li><strong>Traffic:</strong> One lane of the bridge stays closed to cars during the repairs.</li></ul>"
            + paragraphs(*FILLER))
    proposed = suggest(article(body))
    assert proposed and not any(text.rstrip(":") in item for text in never for item in proposed)
    # A list item's bold label goes; its sentence may stay.
    assert "One lane of the bridge stays closed to cars during the repairs." in proposed


def test_inline_code_and_quotes_stay_in_their_sentence() -> None:
    body = paragraphs("The harbour bridge repairs use <code>epoxy-42</code> resin, which engineers call "
                      "<q>the best there is</q> for salt water.", *FILLER)
    assert ("The harbour bridge repairs use epoxy-42 resin, which engineers call the best there is for salt water."
            in suggest(article(body)))


def test_sentences_split_at_their_ends_not_at_abbreviations_decimals_or_initials() -> None:
    text = ('Dr. Amara Osei said the U.S. plan costs $1.2bn, up 3.5% on last year. "It will work," '
            "said John F. Kennedy Jr. at 10 p.m. on Monday! Will it? 東京は晴れです。大阪は雨です。")
    assert split_sentences(text) == [
        "Dr. Amara Osei said the U.S. plan costs $1.2bn, up 3.5% on last year.",
        '"It will work," said John F. Kennedy Jr. at 10 p.m. on Monday!',
        "Will it?",
        "東京は晴れです。",
        "大阪は雨です。",
    ]


@pytest.mark.parametrize("body", [
    "",
    "<p></p>",
    "<p>Too short.</p>",
    "<h2>Only a heading here about the harbour bridge repairs</h2>",
    "<p>" + "。".join(["東京都は二〇二六年に港の橋の修理を始める予定です"] * 8) + "。</p>",
    "<p>" + " ".join(["أعلنت البلدية أن إصلاح جسر الميناء سيبدأ في مارس ويستمر ثمانية عشر شهرا."] * 6) + "</p>",
    "<p>" + "x" * 100_000 + "</p>",
    "<p>" + "The harbour bridge repairs go on and on. " * 5_000 + "</p>",
    "<p>Nested <b><i>markup <a href='https://x.example/'>with a link</a></i></b> and no end to it at all"
    "<ul><li>an inner list item that stands as a block of its own, long enough</li></ul></p>",
])
def test_any_body_gives_a_few_proposals_or_none_without_failing(body: str) -> None:
    proposed = suggest(article(body, title="港の橋 جسر الميناء Harbour"))
    assert len(proposed) <= MAX_ITEMS
    assert all(0 < len(item) <= MAX_CHARS for item in proposed)
    assert suggest(article(body, title="港の橋 جسر الميناء Harbour")) == proposed  # deterministic


def test_arabic_and_japanese_articles_get_proposals() -> None:
    arabic = [
        "قال المسؤولون إن إصلاح جسر الميناء سيبدأ في شهر مارس المقبل.",
        "ستضيف شركات العبارات أربع عشرة رحلة يوميا خلال فترة الأشغال الطويلة.",
        "يحصل راكبو الدراجات على مسار محمي في الجهة الشرقية من الطريق.",
        "وجد المهندسون صدأ في أربعين كابلا فولاذيا أثناء فحص الشتاء الماضي.",
    ]
    japanese = [
        "港の橋の修理は三月に始まり、北側の車線が八週間閉鎖されます。",
        "フェリー会社は工事期間中、一日十四便を追加すると発表しました。",
        "自転車利用者のために東側に保護された専用道が設けられます。",
        "技術者は昨年冬の点検で鋼製ケーブル四十本に腐食を見つけました。",
    ]
    assert len(suggest(article(paragraphs(*arabic), title="إصلاح جسر الميناء"))) >= 3
    assert len(suggest(article(f"<p>{''.join(japanese)}</p>", title="港の橋の修理"))) >= 3


def test_the_same_article_always_gets_the_same_proposals() -> None:
    sample = parse_article((ROOT / "content" / "transit-ridership.md").read_bytes(), "transit-ridership.md", SITE)
    proposed = suggest(sample)
    assert 3 <= len(proposed) <= MAX_ITEMS
    assert any("94%" in item for item in proposed)  # the article's headline figure
    assert all(suggest(dataclasses.replace(sample)) == proposed for _ in range(3))


def test_lead_is_the_first_sentences_of_the_body() -> None:
    assert lead(article(paragraphs(*FILLER))) == tuple(FILLER[:3])


# --- the setting: what an article becomes -----------------------------------------------

def test_only_auto_gives_an_article_without_takeaways_generated_ones() -> None:
    bare = article(paragraphs(*FILLER, "The harbour bridge repairs will cost 4 million pounds in all."))
    assert with_generated(bare, TakeawaysMode.AUTHOR) == bare
    assert with_generated(bare, TakeawaysMode.SUGGEST) == bare
    auto = with_generated(bare, TakeawaysMode.AUTO)
    assert auto.takeaways == suggest(bare) and auto.takeaways_generated
    written = dataclasses.replace(bare, takeaways=("The author's own point",))
    assert with_generated(written, TakeawaysMode.AUTO) == written


def test_generated_takeaways_change_the_content_hash_but_not_the_authors_part() -> None:
    bare = article(paragraphs(*FILLER))
    auto = with_generated(bare, TakeawaysMode.AUTO)
    edited = dataclasses.replace(bare, title="Harbour Bridge Repairs Delayed")
    assert auto.content_hash() != bare.content_hash()  # the feeds render the entry again
    assert same_authored(auto.content_hash(), bare.content_hash())  # but it is no edit
    assert not same_authored(with_generated(edited, TakeawaysMode.AUTO).content_hash(), bare.content_hash())
    # An article without generated takeaways keeps the hash it always had.
    assert bare.content_hash() == dataclasses.replace(auto, takeaways=(), takeaways_generated=False).content_hash()
    assert Article.from_dict(auto.to_dict()) == auto


def test_the_markdown_parser_applies_the_setting() -> None:
    data = (ROOT / "content" / "transit-ridership.md").read_bytes()
    suggested = parse_article(data, "t.md", SITE, limits=ContentLimits(takeaways=TakeawaysMode.SUGGEST))
    auto = parse_article(data, "t.md", SITE, limits=ContentLimits(takeaways=TakeawaysMode.AUTO))
    assert suggested.takeaways == () and not suggested.takeaways_generated
    assert auto.takeaways == suggest(suggested) and auto.takeaways_generated


def test_the_setting_defaults_to_suggest_and_a_bad_value_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[content]\n", encoding="utf-8")
    assert load_settings(config, environ={}).content.takeaways == TakeawaysMode.SUGGEST
    config.write_text('[content]\ntakeaways = "auto"\n', encoding="utf-8")
    assert load_settings(config, environ={}).content.limits.takeaways == TakeawaysMode.AUTO
    config.write_text('[content]\ntakeaways = "always"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ={})
    assert error.value.problems == [
        f"{config}: content.takeaways: Input should be 'author', 'suggest' or 'auto'"
    ]


def upstream_feed(dated: bool) -> bytes:
    """An upstream RSS feed of one item without takeaways (``dated``: with a pubDate)."""
    body = "".join(f"<p>{sentence}</p>" for sentence in VARIED)
    date = "<pubDate>Mon, 05 Jan 2026 08:00:00 +0000</pubDate>" if dated else ""
    return (f'<rss version="2.0"><channel><title>Up</title><item><title>Harbour Bridge Repairs</title>'
            f"<guid>bridge</guid><link>https://up.example/bridge</link>{date}"
            f"<description><![CDATA[{body}]]></description></item></channel></rss>").encode()


def test_the_upstream_feed_parser_applies_the_setting() -> None:
    feed = upstream_feed(dated=True)
    now = datetime(2026, 1, 6, tzinfo=UTC)
    [plain] = parse_feed(feed, "https://up.example/feed", now=now).articles
    [auto] = parse_feed(feed, "https://up.example/feed", now=now,
                        limits=ContentLimits(takeaways=TakeawaysMode.AUTO)).articles
    assert plain.takeaways == () and not plain.takeaways_generated
    assert auto.takeaways == suggest(plain) and len(auto.takeaways) >= 3 and auto.takeaways_generated


def test_function_words_of_other_languages_are_no_key_terms() -> None:
    from publisher.content.takeaways import _terms

    assert _terms("Le plan de la ville pour les arbres") == {"plan", "ville", "arbr"}
    assert _terms("Der Plan der Stadt und die Bäume") == {"plan", "stadt", "die", "bäume"}  # "die": English too
    assert _terms("The war in Ukraine") == {"war", "ukraine"}  # German "war" is an English word first


def test_an_undated_upstream_item_keeps_its_dates_when_only_its_generated_takeaways_change() -> None:
    from publisher.content.upstream import keep_first_dates

    feed = upstream_feed(dated=False)
    first = datetime(2026, 1, 6, tzinfo=UTC)
    [stored] = parse_feed(feed, "https://up.example/feed", now=first).articles
    scan = parse_feed(feed, "https://up.example/feed", now=datetime(2026, 2, 1, tzinfo=UTC),
                      limits=ContentLimits(takeaways=TakeawaysMode.AUTO))
    [kept] = keep_first_dates(scan, {stored.id: stored})
    assert kept.takeaways_generated and (kept.published, kept.updated) == (first, first)
