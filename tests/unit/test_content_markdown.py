"""parse_article: front matter, the parts renderers show separately, and precise problems."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from publisher.content.upstream import parse_feed
from publisher.content.markdown import ArticleError, parse_article, read_article
from publisher.content.model import Article, ContentLimits, FactTable, Image, Problem, Quote, Severity

SITE = "https://news.example/"
PATH = "content/sample-story.md"


def parse(text: str, path: str = PATH) -> Article:
    return parse_article(text.encode(), path, SITE)


def problems(data: str | bytes, path: str = PATH) -> list[Problem]:
    with pytest.raises(ArticleError) as caught:
        parse_article(data.encode() if isinstance(data, str) else data, path, SITE)
    return caught.value.problems


def yaml_article(front: str = "", body: str = "Body text.\n") -> str:
    return f"---\ntitle: Sample\ndate: 2024-01-02T03:04:05Z\n{front}---\n{body}"


# --- front matter ------------------------------------------------------------------------


def test_yaml_front_matter_fields() -> None:
    article = parse(
        yaml_article(
            "id: 42\nsubtitle: Sub\nauthor: Ann Writer\ncategory: Analysis\n"
            "tags: [Geo, ' economy ', Geo]\nsummary: Short.\ncanonical_url: https://other.example/x\n"
        )
    )
    assert article.title == "Sample"
    assert article.id == "42"
    assert (article.subtitle, article.author, article.category) == ("Sub", "Ann Writer", "Analysis")
    assert article.tags == ("Geo", "economy")
    assert article.summary == "Short."
    assert article.canonical_url == "https://other.example/x"
    assert article.source_path == PATH


def test_toml_front_matter_fields() -> None:
    article = parse(
        '+++\ntitle = "Toml"\ndate = 2024-05-06T07:08:09Z\ntags = "a, b ,,c"\nslug = "my-slug"\n'
        'takeaways = ["one", "two"]\n[quote]\ntext = "Said it."\ncite = "Someone"\n+++\nBody.\n'
    )
    assert article.title == "Toml"
    assert article.published == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert article.tags == ("a", "b", "c")
    assert article.slug == "my-slug"
    assert article.takeaways == ("one", "two")
    assert article.quotes == (Quote("Said it.", "Someone"),)


def test_defaults_come_from_the_file_name_and_site() -> None:
    article = parse(yaml_article())
    assert article.slug == "sample-story"
    assert article.canonical_url == "https://news.example/articles/sample-story"
    assert article.id == article.canonical_url
    assert article.updated == article.published
    assert article.summary == "Body text."


def test_unknown_keys_are_ignored() -> None:
    assert parse(yaml_article("draft_notes: {anything: [1, 2]}\n")).title == "Sample"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-09-14T09:00:00Z", datetime(2023, 9, 14, 9, tzinfo=UTC)),
        ("2023-09-14 09:00:00", datetime(2023, 9, 14, 9, tzinfo=UTC)),  # YAML datetime, naive
        ("'2023-09-14T09:00'", datetime(2023, 9, 14, 9, tzinfo=UTC)),  # ISO string, naive
        ("2023-09-14", datetime(2023, 9, 14, tzinfo=UTC)),  # YAML date
        ("'2023-09-14'", datetime(2023, 9, 14, tzinfo=UTC)),  # date-only string
        ("'2023-09-14T11:00:00+02:00'", datetime(2023, 9, 14, 11, tzinfo=timezone(timedelta(hours=2)))),
        ("'Thu, 14 Sep 2023 09:00:00 +0000'", datetime(2023, 9, 14, 9, tzinfo=UTC)),  # RFC 2822
        ("'Thu, 14 Sep 2023 11:00:00 +0200'", datetime(2023, 9, 14, 9, tzinfo=UTC)),
    ],
)
def test_yaml_dates(value: str, expected: datetime) -> None:
    article = parse(f"---\ntitle: T\ndate: {value}\n---\n")
    assert article.published == expected
    assert article.published.tzinfo is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-09-14T09:00:00Z", datetime(2023, 9, 14, 9, tzinfo=UTC)),
        ("2023-09-14T09:00:00", datetime(2023, 9, 14, 9, tzinfo=UTC)),  # local datetime
        ("2023-09-14", datetime(2023, 9, 14, tzinfo=UTC)),  # local date
        ('"2023-09-14T09:00:00Z"', datetime(2023, 9, 14, 9, tzinfo=UTC)),
    ],
)
def test_toml_dates(value: str, expected: datetime) -> None:
    assert parse(f'+++\ntitle = "T"\npublished = {value}\n+++\n').published == expected


def test_updated_is_kept_when_after_published() -> None:
    article = parse(yaml_article("updated: 2024-02-01\n"))
    assert article.updated == datetime(2024, 2, 1, tzinfo=UTC)


def test_front_matter_images_come_before_body_images_and_are_absolute() -> None:
    article = parse(
        yaml_article(
            "image: {src: /img/lead.jpg, alt: Lead, caption: The lead}\n"
            "images: [/img/second.jpg, 'https://cdn.example/third.jpg']\n",
            '![Body *alt*](pics/body.png "Body caption")\n\n![again](/img/lead.jpg)\n',
        )
    )
    assert article.images == (
        Image("https://news.example/img/lead.jpg", "Lead", "The lead"),
        Image("https://news.example/img/second.jpg"),
        Image("https://cdn.example/third.jpg"),
        Image("https://news.example/pics/body.png", "Body alt", "Body caption"),
    )
    assert article.lead_image == article.images[0]
    assert 'src="https://news.example/pics/body.png"' in article.body_html


# --- takeaways ---------------------------------------------------------------------------

TAKEAWAYS_BODY = """Intro paragraph.

## {heading}

- First *point*
- Second [point](/x)

## Next section

More text.
"""


@pytest.mark.parametrize("heading", ["Key Takeaways", "KEY TAKEAWAYS:", "key takeaways", "Key Takeaways :"])
def test_takeaways_section_is_read_and_removed_from_the_body(heading: str) -> None:
    article = parse(yaml_article(body=TAKEAWAYS_BODY.format(heading=heading)))
    assert article.takeaways == ("First point", "Second point")
    assert "akeaways" not in article.body_html.lower()
    assert "First" not in article.body_html
    assert "<h2>Next section</h2>" in article.body_html
    assert "Intro paragraph." in article.body_html


def test_takeaways_section_with_ordered_list_and_text_before_it() -> None:
    body = "### Key takeaways\n\nIn short:\n\n1. One\n2. Two\n\nAfter.\n"
    article = parse(yaml_article(body=body))
    assert article.takeaways == ("One", "Two")
    assert article.body_html.strip() == "<p>After.</p>"


def test_front_matter_takeaways_win_and_body_section_is_still_removed() -> None:
    article = parse(yaml_article("takeaways: [From front matter]\n", TAKEAWAYS_BODY.format(heading="Key Takeaways")))
    assert article.takeaways == ("From front matter",)
    assert "First" not in article.body_html


def test_a_heading_that_is_not_key_takeaways_keeps_its_list() -> None:
    article = parse(yaml_article(body="## Key Takeaways for investors\n\n- Stay\n"))
    assert article.takeaways == ()
    assert "<li>Stay</li>" in article.body_html


# The "Key Takeaways" markers (publisher.content.extract) as Markdown and as an upstream
# feed's HTML: each one is recognised by both parsers.
TAKEAWAYS_MARKERS = [
    ("## Key Takeaways", "<h2>Key Takeaways</h2>"),
    ("### KEY TAKEAWAYS :", "<h3>KEY TAKEAWAYS :</h3>"),
    ("## Key  Takeaways:", "<h2>Key  Takeaways:</h2>"),
    ("**Key Takeaways:**", "<p><strong>Key Takeaways:</strong></p>"),
    ("Key takeaways", "<p>Key takeaways</p>"),
]


def upstream_item(html: str) -> Article:
    """The one article of an RSS feed whose item's body is ``html``."""
    rss = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        "<channel><title>T</title><link>https://x.example/</link><item><title>Item</title>"
        f"<link>https://x.example/item</link><content:encoded><![CDATA[{html}]]></content:encoded></item>"
        "</channel></rss>"
    )
    (article,) = parse_feed(rss.encode(), "https://x.example/feed", now=datetime(2024, 1, 2, tzinfo=UTC)).articles
    return article


@pytest.mark.parametrize(("markdown", "html"), TAKEAWAYS_MARKERS)
def test_takeaways_markers_are_the_same_in_markdown_and_upstream_html(markdown: str, html: str) -> None:
    from_markdown = parse(yaml_article(body=f"Intro.\n\n{markdown}\n- One\n- Two\n\nAfter.\n"))
    from_feed = upstream_item(f"<p>Intro.</p>{html}<ul><li>One</li><li>Two</li></ul><p>After.</p>")
    for article in (from_markdown, from_feed):
        assert article.takeaways == ("One", "Two")
        assert "akeaways" not in article.body_html and "One" not in article.body_html
        assert "Intro." in article.body_html and "After." in article.body_html


def test_a_takeaways_paragraph_keeps_a_list_that_does_not_follow_it_directly() -> None:
    body = "**Key Takeaways:**\n\nIn short:\n\n- Stay\n"
    from_markdown = parse(yaml_article(body=body))
    from_feed = upstream_item("<p><strong>Key Takeaways:</strong></p><p>In short:</p><ul><li>Stay</li></ul>")
    for article in (from_markdown, from_feed):
        assert article.takeaways == ()
        assert "<li>Stay</li>" in article.body_html


# --- fact tables -------------------------------------------------------------------------

TABLE_BODY = """## Facts and Figures

Some intro.

| Indicator | North Korea | Russia |
| --- | :-- | --: |
| GDP | ~$28 **Billion** | $2.2 Trillion |
| Exports | Coal | Oil, gas |

{note}
"""


@pytest.mark.parametrize("label", ["Source:", "Sources:", "Data Sources:", "DATA SOURCES :", "sources:"])
def test_fact_table_with_caption_and_sources(label: str) -> None:
    article = parse(yaml_article(body=TABLE_BODY.format(note=f"{label} World Bank, SIPRI.")))
    assert article.fact_tables == (
        FactTable(
            caption="Facts and Figures",
            header=("Indicator", "North Korea", "Russia"),
            rows=(("GDP", "~$28 Billion", "$2.2 Trillion"), ("Exports", "Coal", "Oil, gas")),
            sources="World Bank, SIPRI.",
            align=("", "left", "right"),
        ),
    )
    assert "<table>" in article.body_html
    assert "<thead>" in article.body_html
    assert "World Bank, SIPRI.</p>" in article.body_html


def test_fact_table_without_sources_or_heading() -> None:
    body = "| A | B |\n| - | - |\n| 1 | 2 |\n\nThe source of this is unclear.\n"
    (table,) = parse(yaml_article(body=body)).fact_tables
    assert table.caption == ""
    assert table.sources == ""
    assert table.rows == (("1", "2"),)


def test_escaped_pipe_stays_in_its_cell() -> None:
    body = "| A | B |\n| - | - |\n| x \\| y | 2 |\n"
    (table,) = parse(yaml_article(body=body)).fact_tables
    assert table.rows == (("x | y", "2"),)


# --- quotes, summary, body ---------------------------------------------------------------


@pytest.mark.parametrize("dash", ["—", "--", "— "])
def test_blockquote_with_attribution(dash: str) -> None:
    article = parse(yaml_article(body=f"> A new landscape\n> is emerging.\n>\n> {dash}Someone Smart\n"))
    assert article.quotes == (Quote("A new landscape is emerging.", "Someone Smart"),)
    assert "<blockquote>" in article.body_html


def test_front_matter_quote_comes_first_and_nested_quotes_are_not_pull_quotes() -> None:
    body = "> Top level\n\n- item\n\n  > nested in a list\n"
    article = parse(yaml_article("quote: From the front\n", body))
    assert article.quotes == (Quote("From the front"), Quote("Top level"))
    assert article.pull_quote == Quote("From the front")


def test_summary_is_the_first_paragraph_truncated_at_a_word() -> None:
    words = " ".join(f"word{i}" for i in range(100))
    article = parse(yaml_article(body=f"![only an image](/a.png)\n\n# Heading\n\n{words}\n\nSecond.\n"))
    assert len(article.summary) <= 280
    assert article.summary.endswith("…")
    assert words.startswith(article.summary[:-1])
    assert words[len(article.summary) - 1] == " "


def test_short_first_paragraph_is_the_whole_summary() -> None:
    assert parse(yaml_article(body="Plain *and* `code` <b>html</b>.\n\nNext.\n")).summary == "Plain and code html."


def test_body_html_is_sanitized() -> None:
    body = (
        '<script>alert(1)</script>\n\n<img src="x.png" onerror="alert(2)">\n\n'
        '<a href="javascript:alert(3)">bad</a> [rel](/about) [ext](https://ext.example/)\n'
    )
    html = parse(yaml_article(body=body)).body_html
    assert "<script" not in html and "alert(1)" not in html
    assert "onerror" not in html
    assert "javascript:" not in html
    assert 'src="https://news.example/x.png"' in html
    assert '<a href="https://news.example/about" rel="noopener noreferrer">rel</a>' in html
    assert 'href="https://ext.example/"' in html


# --- problems ----------------------------------------------------------------------------


def test_non_utf8_file_reports_the_line_of_the_bad_byte() -> None:
    data = yaml_article(body="Fine.\n\nCaf").encode() + b"\xe9 au lait\n"
    assert problems(data) == [Problem(PATH, 7, "file is not valid UTF-8")]


def test_bad_yaml_reports_its_line() -> None:
    (problem,) = problems("---\ntitle: Fine\ndate: 2024-01-01\ntags: [a, b\nauthor: x\n---\nBody\n")
    assert problem.line in {4, 5}  # the unclosed list starts on 4; PyYAML notices on 5
    assert problem.message.startswith("invalid YAML front matter")


def test_yaml_tab_error_points_at_its_line() -> None:
    (problem,) = problems("---\ntitle: Fine\ndate: 2024-01-01\nauthor:\n\t- x\n---\n")
    assert problem.line == 5


def test_bad_toml_reports_its_line() -> None:
    (problem,) = problems('+++\ntitle = "T"\ndate 2024-01-01\n+++\n')
    assert problem.line == 3
    assert problem.message.startswith("invalid TOML front matter")
    assert "at line" not in problem.message


def test_unterminated_front_matter() -> None:
    assert problems("---\ntitle: T\ndate: 2024-01-01\n\nBody\n") == [
        Problem(PATH, 1, "front matter is not closed with '---'")
    ]


def test_front_matter_must_be_a_mapping() -> None:
    assert problems("---\n- a\n- b\n---\n") == [
        Problem(PATH, 2, "front matter must be a mapping of keys to values, not a list")
    ]


def test_missing_title_and_date_are_both_reported() -> None:
    assert problems("No front matter at all.\n") == [
        Problem(PATH, 1, "missing title"),
        Problem(PATH, 1, "missing date"),
    ]


def test_empty_title_points_at_its_key() -> None:
    assert problems("---\ndate: 2024-01-01\ntitle: ''\n---\n") == [Problem(PATH, 3, "missing title")]


@pytest.mark.parametrize(("key", "value"), [("date", "next tuesday"), ("published", "2024-13-45"), ("updated", "soon")])
def test_unparseable_date_names_field_and_value(key: str, value: str) -> None:
    front = "---\ntitle: T\n" + ("date: 2024-01-01\n" if key == "updated" else "\n") + f"{key}: {value}\n---\n"
    (problem,) = problems(front)
    assert problem.line == 4
    assert key in problem.message
    assert repr(value) in problem.message


def test_updated_before_published_is_a_problem() -> None:
    assert problems(yaml_article("updated: 2023-12-31\n")) == [
        Problem(PATH, 4, "updated is before the publication date")
    ]


@pytest.mark.parametrize(
    ("front", "line", "message"),
    [
        ("tags: {a: 1}\n", 4, "tags must be a list of text, not a mapping"),
        ("takeaways: one\n", 4, "takeaways must be a list of text, not str"),
        ("takeaways: [one, [two]]\n", 4, "takeaways must be a list of text, not a list"),
        ("author: [a, b]\n", 4, "author must be text, not a list"),
        ("images: /a.png\n", 4, "images must be a list, not str"),
        ("image: {alt: no src}\n", 4, "image: an image is a URL or a mapping with src, alt and caption"),
        ("quote: [x]\n", 4, "quote must be text or a mapping with text (and cite)"),
        ("slug: Not A Slug\n", 4, "slug 'Not A Slug' is not URL-safe: use 'not-a-slug'"),
        # What the store's columns can't hold is a problem of the file, not a failed scan.
        (f"slug: {'s' * 301}\n", 4, "slug is longer than 300 characters"),
        (f"id: {'i' * 1001}\n", 4, "id is longer than 1000 characters"),
        (f"canonical_url: https://news.example/{'c' * 1000}\n", 4,
         "the canonical URL (the id when there is none) is longer than 1000 characters"),
    ],
)
def test_wrong_types_are_problems_at_their_key(front: str, line: int, message: str) -> None:
    assert problems(yaml_article(front)) == [Problem(PATH, line, message)]


def test_a_slug_made_from_a_long_title_is_cut_to_fit() -> None:
    article = parse_article(yaml_article().replace("Sample", "word " * 100).encode(), "api", SITE, slug_from_title=True)
    assert len(article.slug) <= 300 and not article.slug.endswith("-") and article.slug.startswith("word-word")


def test_ragged_table_rows_report_their_lines() -> None:
    body = "Intro.\n\n| A | B | C |\n| - | - | - |\n| 1 | 2 | 3 |\n| 1 | 2 |\n| 1 | 2 | 3 | 4 |\n"
    assert problems(yaml_article(body=body)) == [
        Problem(PATH, 10, "table row has 2 cells, header has 3"),
        Problem(PATH, 11, "table row has 4 cells, header has 3"),
    ]


def test_all_problems_of_a_file_are_reported_together() -> None:
    text = "---\ndate: someday\ntags: 3\n---\n| A | B |\n| - | - |\n| 1 |\n"
    assert problems(text) == [
        Problem(PATH, 1, "missing title"),
        Problem(PATH, 2, "date 'someday' is not a date (use ISO 8601 or RFC 2822)"),
        Problem(PATH, 3, "tags must be a list of text, not int"),
        Problem(PATH, 7, "table row has 1 cells, header has 2"),
    ]
    with pytest.raises(ArticleError, match="sample-story.md:7: table row"):
        parse(text)


def test_script_and_style_go_with_their_content_everywhere() -> None:
    """Code in an article is never text: not in the summary, takeaways, quote, tables or body."""
    article = parse(
        yaml_article(
            body=(
                "Solar <script>alert('x')</script>co-ops <style>p { color: red }</style>grew.\n\n"
                "## Key takeaways\n\n- Output <script>steal()</script>doubled\n\n"
                "> Ours <script>alert('q')</script>now\n> -- A <style>b{}</style>member\n\n"
                "| Year | Output <script>t()</script> |\n| --- | --- |\n| 2024 | 2 <style>td{}</style>MW |\n"
            )
        )
    )
    assert article.summary == "Solar co-ops grew."
    assert article.takeaways == ("Output doubled",)
    assert article.quotes == (Quote("Ours now", "A member"),)
    assert article.fact_tables[0].header == ("Year", "Output")
    assert article.fact_tables[0].rows == (("2024", "2 MW"),)
    for code in ("alert", "steal", "color", "t()", "td{}", "b{}"):
        assert code not in article.body_html
        assert code not in repr(article.to_dict())


def test_every_body_image_has_an_alt_attribute() -> None:
    """Screen readers read out the file name of an image without alt; alt="" marks it decorative."""
    import lxml.html

    article = parse(
        yaml_article(
            body=(
                'Text <img src="/a.png"> and <img title="a > b" src="/b.png">.\n\n'
                '<p><img src="/c.png" alt="Kept"><IMG SRC="/d.png"></p>\n\n![Described](/e.png)\n'
            )
        )
    )
    images = lxml.html.fragment_fromstring(article.body_html, create_parent="div").findall(".//img")
    assert [(image.get("src"), image.get("alt")) for image in images] == [
        (f"{SITE}a.png", ""), (f"{SITE}b.png", ""), (f"{SITE}c.png", "Kept"), (f"{SITE}d.png", ""),
        (f"{SITE}e.png", "Described"),
    ]
    assert images[1].get("title") == "a > b"


ALIGNED_TABLE = (
    "## Output\n\n| Co-op | Members | Status | Note |\n| :--- | ---: | :---: | --- |\n"
    "| Sunny Hill | 1,204 | open | big |\n| Ridge | 87 | planned | small |\n"
)


def test_table_column_alignment_is_kept_in_the_model_and_the_body() -> None:
    import lxml.html

    article = parse(yaml_article(body=ALIGNED_TABLE))
    (table,) = article.fact_tables
    assert table.align == ("left", "right", "center", "")
    body = lxml.html.fragment_fromstring(article.body_html, create_parent="div")
    for row in body.iter("tr"):
        assert [cell.get("align") for cell in row] == ["left", "right", "center", None]


def test_a_table_stored_before_alignment_existed_reads_as_unaligned() -> None:
    article = parse(yaml_article(body=ALIGNED_TABLE))
    stored = article.to_dict()
    assert Article.from_dict(stored) == article
    del stored["fact_tables"][0]["align"]
    assert Article.from_dict(stored).fact_tables[0].align == ()


# --- limits: hostile sizes cost bounded work ---------------------------------------------


def _tables(count: int, rows: int = 1) -> str:
    """``count`` two-column tables under one heading (no heading between them: the worst case)."""
    table = "| Year | Output |\n|---|---|\n" + "".join(f"| {2000 + r} | {r} MW |\n" for r in range(rows))
    return "## Figures\n\n" + "\n".join(table for _ in range(count))


def _cpu_seconds(text: str, limits: ContentLimits) -> float:
    """The least CPU time of three parses (the machine is shared: the minimum is the parse's own)."""
    timings = []
    for _ in range(3):
        started = time.process_time()
        read_article(text.encode(), PATH, SITE, limits=limits)
        timings.append(time.process_time() - started)
    return min(timings)


def test_many_tables_parse_in_linear_time() -> None:
    """15 times the tables take about 15 times as long, not 100 (each caption was a scan back)."""
    every_table = ContentLimits(max_tables=10_000)
    small = _cpu_seconds(yaml_article(body=_tables(200)), every_table)
    large = _cpu_seconds(yaml_article(body=_tables(3000)), every_table)
    assert large < 45 * small, (small, large)
    captions = {table.caption for table in parse_article(yaml_article(body=_tables(3000)).encode(), PATH, SITE,
                                                         limits=every_table).fact_tables}
    assert captions == {"Figures"}


def test_tables_past_the_limit_stay_in_the_body_only() -> None:
    parsed = read_article(yaml_article(body=_tables(5)).encode(), PATH, SITE, limits=ContentLimits(max_tables=3))
    assert parsed.article is not None
    assert len(parsed.article.fact_tables) == 3
    assert parsed.article.body_html.count("<table") == 5
    (warning,) = [p for p in parsed.problems if "max_tables" in p.message]
    assert warning.severity == Severity.WARNING
    assert str(warning).startswith(f"{PATH}:19: warning: 5 tables: only the first 3")  # the 4th table's line


def test_tags_past_the_limit_are_dropped_with_a_warning() -> None:
    tags = ", ".join(f"tag {n}" for n in range(30))
    text = yaml_article(f"tags: [{tags}, tag 0]\n")
    parsed = read_article(text.encode(), PATH, SITE, limits=ContentLimits(max_tags=5))
    assert parsed.article is not None
    assert parsed.article.tags == ("tag 0", "tag 1", "tag 2", "tag 3", "tag 4")
    (warning,) = parsed.problems
    assert str(warning) == f"{PATH}:4: warning: 30 tags: only the first 5 are kept ([content] max_tags = 5)"


def test_a_huge_table_keeps_its_first_rows_and_counts_the_rest() -> None:
    parsed = read_article(yaml_article(body=_tables(1, rows=100)).encode(), PATH, SITE,
                          limits=ContentLimits(max_table_cells=50))
    assert parsed.article is not None
    (table,) = parsed.article.fact_tables
    assert table.rows[:2] == (("2000", "0 MW"), ("2001", "1 MW"))
    assert (len(table.rows), table.more_rows) == (24, 76)  # 2 columns × (header + 24 rows) = 50 cells
    assert parsed.article.body_html.count("<tr>") == 101  # the article page shows the whole table
    assert Article.from_dict(parsed.article.to_dict()) == parsed.article
    (warning,) = parsed.problems
    assert "emails show its first 24 rows, the article all 100" in str(warning)


# --- URLs a reader follows: absolute http(s) only ------------------------------------------


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("canonical_url: javascript:alert(1)\n", "canonical_url 'javascript:alert(1)' is not an http(s) URL"),
        ("canonical_url: 'data:text/html,<b>x</b>'\n", "canonical_url 'data:text/html,<b>x</b>' is not an http(s) URL"),
        ("image: javascript:alert(1)\n", "image 'javascript:alert(1)' is not an http(s) URL"),
        ("images:\n- src: 'data:image/png;base64,AAAA'\n  alt: a dot\n",
         "images 'data:image/png;base64,AAAA' is not an http(s) URL"),
        ("image: 'ftp://files.example/a.png'\n", "image 'ftp://files.example/a.png' is not an http(s) URL"),
        ("canonical_url: 'http://[oops/'\n", "canonical_url 'http://[oops/' is not an http(s) URL"),
    ],
)
def test_a_url_that_is_not_http_is_a_problem_at_its_key(front: str, message: str) -> None:
    assert problems(yaml_article(front)) == [Problem(PATH, 4, message)]


def test_relative_urls_are_made_absolute_and_body_images_that_are_not_http_are_left_out() -> None:
    article = parse(yaml_article(
        "canonical_url: /elsewhere/sample\nimage: media/lead.png\n",
        body="![a dot](data:image/png;base64,iVBORw0KGgo=)\n\n![chart](/media/chart.png)\n",
    ))
    assert article.canonical_url == "https://news.example/elsewhere/sample"
    assert [image.src for image in article.images] == [
        "https://news.example/media/lead.png", "https://news.example/media/chart.png",
    ]


# --- dates out of range ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "+++\ntitle = \"Sample\"\ndate = 9999-12-31T23:59:59-14:00\n+++\nBody.\n",
        "+++\ntitle = \"Sample\"\ndate = 0001-01-01T00:00:00+14:00\n+++\nBody.\n",
        "---\ntitle: Sample\ndate: 9999-12-31T23:59:59-14:00\n---\nBody.\n",
        "---\ntitle: Sample\ndate: '9999-12-31T23:59:59-14:00'\n---\nBody.\n",
        "---\ntitle: Sample\ndate: 'Fri, 31 Dec 9999 23:59:59 -1400'\n---\nBody.\n",
    ],
)
def test_a_date_out_of_range_is_a_problem_of_its_file(text: str) -> None:
    [problem] = problems(text)
    assert problem.line == 3 and "date" in problem.message and "out of range" in problem.message, problem


@pytest.mark.parametrize("value", ["'0000-01-01'", "'10000-01-01T00:00:00Z'", "'Sat, 1 Jan 10000 00:00:00 +0000'"])
def test_a_year_outside_1_to_9999_is_not_a_date(value: str) -> None:
    [problem] = problems(f"---\ntitle: Sample\ndate: {value}\n---\nBody.\n")
    assert problem.line == 3 and "is not a date" in problem.message, problem


# --- a title longer than the limit ---------------------------------------------------------


def test_a_long_title_is_cut_at_a_word_with_a_warning_at_its_line() -> None:
    title = "Harbour " * 50  # 400 characters
    parsed = read_article(yaml_article().replace("Sample", title.strip()).encode(), PATH, SITE,
                          limits=ContentLimits(max_title_length=100))
    assert parsed.article is not None
    assert len(parsed.article.title) <= 100 and parsed.article.title.endswith("Harbour…")
    assert parsed.problems == [Problem(PATH, 2, "title is longer than 100 characters: cut to "
                                       f"{parsed.article.title!r}", Severity.WARNING)]
    default = read_article(yaml_article().replace("Sample", title.strip()).encode(), PATH, SITE).article
    assert default is not None and len(default.title) <= 300 and len(default.title) > 250


@pytest.mark.parametrize(("given", "stored"), [("ar", "ar"), ("pt-br", "pt-BR"), ("zh_Hant", "zh-Hant")])
def test_lang_is_a_language_tag_in_canonical_case(given: str, stored: str) -> None:
    article = parse(yaml_article(f"lang: {given}\n"))
    assert article.lang == stored
    assert Article.from_dict(article.to_dict()) == article


@pytest.mark.parametrize("bad", ["english", "xx", "en-US-x-private", '"ar\\r\\nX: y"'])
def test_a_bad_lang_is_an_error_naming_the_key(bad: str) -> None:
    found = problems(yaml_article(f"lang: {bad}\n"))
    assert any("lang" in p.message and p.severity == Severity.ERROR for p in found), found


def test_fields_added_later_leave_the_stored_form_and_hash_of_an_article_without_them() -> None:
    article = parse(yaml_article())
    data = article.to_dict()
    assert "lang" not in data and "takeaways_generated" not in data
    assert Article.from_dict(data) == article
