"""``[content] takeaways`` as the author and the reader see it: proposals printed by
``check``, ``articles show`` and ``preview`` under "suggest" (never published), none
under "author", and under "auto" takeaways published in feeds and digests, marked as
generated, without an article ever looking edited for it.

The sample content's transit article has no takeaways; the other two have their author's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import etree
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.cli import main
from publisher.config import load_settings
from publisher.content.model import TakeawaysMode
from publisher.content.takeaways import with_generated
from publisher.store import articles as article_store
from publisher.store import ingest as article_ingest
from publisher.store.db import create_engine, upgrade
from tests.support.articles import seed_like
from tests.support.databases import Backend
from tests.support.outbox import outbox_messages, plain_text

TRANSIT = "2024-03-transit-ridership"
SUGGESTED = "transit-ridership.md: suggested takeaways (not published"
# A sentence of the transit article the suggester proposes (its headline figure).
PROPOSAL = "Weekday trips on the regional transit network reached 94% of their 2019 level in February"


def cli(site_dir: Path, *args: str, mode: str | None = None) -> Result:
    """``publisher ARGS`` in-process, with ``[content] takeaways = mode`` from the environment."""
    env = {"PUBLISHER_SECRET_KEY": "takeaways-test-key"} | ({"PUBLISHER_CONTENT__TAKEAWAYS": mode} if mode else {})
    result = CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), *args], env=env)
    assert result.exit_code == 0, result.output
    return result


def transit_entry(site_dir: Path) -> dict[str, str]:
    feed = json.loads((site_dir / "public" / "feed.json").read_text(encoding="utf-8"))
    [entry] = [item for item in feed["items"] if item["url"].endswith("/transit-ridership")]
    return entry


def test_check_proposes_takeaways_for_the_article_without_any_only_under_suggest(bare_site_dir: Path) -> None:
    suggested = cli(bare_site_dir, "check").output  # "suggest" is the default
    assert SUGGESTED in suggested and f"  - {PROPOSAL}" in suggested
    assert suggested.count("suggested takeaways") == 1  # the author's takeaways are left alone
    assert "OK" in suggested.splitlines()[-1]

    author = cli(bare_site_dir, "check", mode="author").output
    assert "suggested takeaways" not in author and PROPOSAL not in author


def test_suggestions_are_shown_by_articles_show_and_preview_but_never_published(site_dir: Path) -> None:
    cli(site_dir, "subscribers", "add", "ann@example.org", "--cadence", "instant")  # before: the articles are news
    cli(site_dir, "build")
    assert "Key takeaways" not in transit_entry(site_dir)["content_html"]
    shown = cli(site_dir, "articles", "show", TRANSIT).output
    assert "suggested takeaways (not published" in shown and PROPOSAL in shown
    assert PROPOSAL not in cli(site_dir, "articles", "show", TRANSIT, mode="author").output

    preview = cli(site_dir, "preview", "--out", str(site_dir / "preview")).output
    assert "transit-ridership: suggested takeaways (not published" in preview and PROPOSAL in preview
    assert PROPOSAL not in (site_dir / "preview" / "digest.txt").read_text(encoding="utf-8").replace("\n", " ")
    assert "suggested takeaways" not in cli(site_dir, "preview", "--out", str(site_dir / "p2"), mode="author").output


def test_auto_publishes_them_marked_as_generated_and_a_switch_is_no_edit(site_dir: Path, database: Backend) -> None:
    cli(site_dir, "subscribers", "add", "ann@example.org", "--cadence", "instant")
    cli(site_dir, "build")
    before = transit_entry(site_dir)

    built = cli(site_dir, "build", mode="auto").output
    assert "0 new, 0 updated, 2 unchanged" in built and "1 with new generated takeaways" in built
    entry = transit_entry(site_dir)
    assert "Key takeaways" in entry["content_html"] and PROPOSAL in entry["content_html"]
    assert entry["date_modified"] == before["date_modified"]  # not an edit: no reader sees a correction
    # Marked as generated in the feeds' structured data: the JSON Feed's _publisher, Atom's namespace.
    assert entry["_publisher"]["takeaways_generated"] is True and PROPOSAL in entry["_publisher"]["takeaways"][0]
    atom = etree.parse(str(site_dir / "public" / "feed.atom"))
    marks = atom.xpath("//atom:entry[atom:link[contains(@href, 'transit-ridership')]]/p:takeaways/@generated",
                       namespaces={"atom": "http://www.w3.org/2005/Atom", "p": "https://publisher.invalid/ns/1.0"})
    assert marks == ["true"]
    [(data,)] = database.fetch(site_dir, f"SELECT data FROM articles WHERE id = '{TRANSIT}'")
    stored = json.loads(data)
    assert stored["takeaways_generated"] is True and PROPOSAL in stored["takeaways"][0]
    shown = cli(site_dir, "articles", "show", TRANSIT, mode="auto").output
    assert "generated takeaways (published, marked as generated)" in shown and "updated: 2024-03-11" in shown
    assert "0 new, 0 updated, 3 unchanged" in cli(site_dir, "build", mode="auto").output

    cli(site_dir, "send", mode="auto")
    [message] = outbox_messages(load_settings(site_dir / "config.toml", environ={}))
    assert PROPOSAL in " ".join(plain_text(message).split())

    back = cli(site_dir, "build").output  # "suggest" again: taken out of the feeds, still no edit
    assert "1 with new generated takeaways" in back and "0 updated" in back
    assert transit_entry(site_dir) == before
    [(data,)] = database.fetch(site_dir, f"SELECT data FROM articles WHERE id = '{TRANSIT}'")
    assert "takeaways_generated" not in json.loads(data)


# --- the store's rule: new generated takeaways are stored anew, never an edit -----------------

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)


@pytest.fixture
async def engine(database: Backend, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.url(tmp_path))
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_generated_takeaways_are_stored_anew_with_the_dates_as_they_were(engine: AsyncEngine) -> None:
    bare = seed_like(takeaways=())
    await article_ingest.ingest(engine, [bare], NOW, source="api")
    edited = dataclasses.replace(bare, title="An edited title")
    await article_ingest.ingest(engine, [edited], NOW + timedelta(hours=1), source="api")  # an edit: dated then

    auto = with_generated(edited, TakeawaysMode.AUTO)
    result = await article_ingest.ingest(engine, [auto], LATER, source="api")
    assert [a.id for a in result.regenerated] == [bare.id] and not result.updated and result.changed
    stored = await article_store.by_slug(engine, bare.slug)
    assert stored is not None and stored.takeaways == auto.takeaways and stored.takeaways_generated
    assert stored.updated == NOW + timedelta(hours=1)  # the edit's date, not LATER

    again = await article_ingest.ingest(engine, [auto], LATER, source="api")
    assert again.unchanged == 1 and not again.changed
    rewritten = with_generated(dataclasses.replace(edited, title="Edited again"), TakeawaysMode.AUTO)
    edit = await article_ingest.ingest(engine, [rewritten], LATER, source="api")
    assert [a.id for a in edit.updated] == [bare.id] and not edit.regenerated  # the author's change is an edit


async def test_an_article_taken_down_stays_down_when_only_its_generated_takeaways_change(engine: AsyncEngine) -> None:
    bare = seed_like(takeaways=())
    await article_ingest.ingest(engine, [bare], NOW, source="api")
    assert await article_ingest.unpublish(engine, bare.id, NOW)
    result = await article_ingest.ingest(engine, [with_generated(bare, TakeawaysMode.AUTO)], LATER, source="api")
    assert result.unchanged == 1 and not result.changed
    assert await article_store.by_slug(engine, bare.slug) is None
