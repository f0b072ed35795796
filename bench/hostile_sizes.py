"""Hostile sizes: what one huge article or upstream item costs, within the default limits.

Issue 16's figures; it prints them, it is not a test.  Each line is one input that used
to cost seconds or hundreds of megabytes, and what it costs now (CPU seconds of the pure
step, and the size of what comes out):

* a Markdown article and an upstream item with N tables under one heading (each table's
  caption was a scan back to the heading: quadratic);
* an upstream item with 1,500 categories, built into feeds (a tag is three documents);
* a digest of an article with a 2 MB table (inline CSS on every cell).

    .venv/bin/python bench/hostile_sizes.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from publisher.config import Settings
from publisher.content.upstream import parse_feed
from publisher.content.markdown import parse_article
from publisher.feeds.build import build_feeds
from publisher.mail.render import render_digest
from publisher.templating import make_environment

T = TypeVar("T")
SITE = "https://news.example.org/"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TABLE_MD = "| Year | Output |\n|---|---|\n| 2024 | 2 MW |\n"
TABLE_HTML = "<table><tr><th>Year</th><th>Output</th></tr><tr><td>2024</td><td>2 MW</td></tr></table>"


def timed(step: Callable[[], T]) -> tuple[T, float]:
    started = time.process_time()
    result = step()
    return result, time.process_time() - started


def markdown(body: str) -> bytes:
    return f"---\ntitle: Figures\ndate: 2026-01-01\n---\n## Figures\n\n{body}".encode()


def feed(body: str, categories: int = 0) -> bytes:
    tags = "".join(f"<category>tag {n}</category>" for n in range(categories))
    return (f'<rss version="2.0"><channel><title>T</title><item><title>Big</title><guid>big</guid>'
            f"<link>https://up.example/big</link>{tags}<description><![CDATA[<h2>Figures</h2>{body}]]>"
            "</description></item></channel></rss>").encode()


def main() -> None:
    settings = Settings()
    env = make_environment()
    for count in (1_000, 4_000):
        data = markdown("\n".join([TABLE_MD] * count))
        article, seconds = timed(lambda: parse_article(data, "figures.md", SITE))
        print(f"Markdown, {count:,} tables ({len(data) // 1024} KB): {seconds:.2f} s, "
              f"{len(article.fact_tables)} fact tables")
        data = feed(TABLE_HTML * count)
        scan, seconds = timed(lambda: parse_feed(data, "https://up.example/feed", now=NOW))
        print(f"upstream item, {count:,} tables ({len(data) // 1024} KB): {seconds:.2f} s, "
              f"{len(scan.articles[0].fact_tables)} fact tables")
    item = parse_feed(feed("<p>Text.</p>", categories=1_500), "https://up.example/feed", now=NOW).articles[0]
    docs, seconds = timed(lambda: build_feeds([item], settings.site, 20, env))
    print(f"upstream item, 1,500 categories: {len(item.tags)} tags, {len(docs)} feed documents, "
          f"{sum(len(d.body) for d in docs.values()) // 1024} KB, built in {seconds:.2f} s")
    rows = "".join(f"| {n} | {n} MW |\n" for n in range(60_000))
    data = markdown(f"| Year | Output |\n|---|---|\n{rows}")
    article, seconds = timed(lambda: parse_article(data, "figures.md", SITE))
    rendered, render_seconds = timed(lambda: render_digest([article], settings, env, "bench", "daily"))
    print(f"Markdown, one table of {len(data) // 1024} KB: parsed in {seconds:.2f} s; digest HTML "
          f"{len(rendered.html.encode()) // 1024} KB, text {len(rendered.text.encode()) // 1024} KB, "
          f"rendered in {render_seconds:.2f} s")


if __name__ == "__main__":
    main()
