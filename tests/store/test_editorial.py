"""Editorial safety: nothing goes out before the editor means it.

Drafts, duplicate ids, what ``check`` and ``build`` tell the editor, and an edit's
``updated`` date, as a reader of the feeds and a user of the CLI and the API see them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from click.testing import CliRunner, Result

from publisher.app import Publisher
from publisher.cli import main
from publisher.runtime.scheduler import build_scheduler, schedule_jobs
from publisher.store import ingest as article_ingest
from publisher.store.schema import articles
from subscribers.model import Cadence
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber
from tests.system.test_cli import run

ARTICLE = "---\nid: {id}\ntitle: {title}\ndate: 2026-11-20T08:00:00Z\n{extra}---\n\nThe text of {title}.\n"


def write(content: Path, name: str, title: str, *, id: str = "", extra: str = "") -> Path:
    path = content / name
    path.write_text(ARTICLE.format(id=id or path.stem.lstrip("_"), title=title, extra=extra), encoding="utf-8")
    return path


def atom_titles(publisher: Publisher) -> list[str]:
    return [entry.title for entry in feedparser.parse(publisher.shelf.docs["feed.atom"].body).entries]


def cli(site_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), *args])


# --- drafts --------------------------------------------------------------------------------


async def test_drafts_are_never_published(publisher: Publisher) -> None:
    content = publisher.settings.content.dir
    write(content, "flagged.md", "Flagged draft", extra="draft: true\n")
    write(content, "status.md", "Status draft", extra="status: draft\n")
    write(content, "_underscored.md", "Underscored draft")
    write(content, "ready.md", "Ready article", extra="draft: false\n")
    result = await publisher.intake.scan()
    titles = atom_titles(publisher)
    assert "Ready article" in titles
    assert not {"Flagged draft", "Status draft", "Underscored draft"} & set(titles)
    assert sorted(a.id for a in result.new) == sorted(
        ["ready", "2023-09-kim-russia-visit", "2024-06-city-heat-plan", "2024-03-transit-ridership"]
    )


async def test_a_published_article_made_a_draft_is_unpublished(publisher: Publisher) -> None:
    path = write(publisher.settings.content.dir, "story.md", "A story")
    await publisher.intake.scan()
    assert "A story" in atom_titles(publisher)
    write(publisher.settings.content.dir, "story.md", "A story", extra="draft: true\n")
    result = await publisher.intake.scan()
    assert result.removed == ["story"]
    assert "A story" not in atom_titles(publisher)
    path.rename(path.with_name("_story.md"))  # still a draft under its new name: nothing comes back
    assert not (await publisher.intake.scan()).changed


async def test_a_draft_posted_to_the_api_is_not_published(articles_api: TestClient, publisher: Publisher) -> None:
    response = await articles_api.post("/api/articles", json={"id": "cms-1", "title": "Posted draft",
                                                        "date": "2026-11-20", "draft": True, "body": "Text."})
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "draft"
    assert "Posted draft" not in atom_titles(publisher)


async def test_an_article_posted_with_a_future_date_is_scheduled(articles_api: TestClient, publisher: Publisher) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    response = await articles_api.post("/api/articles", json={"id": "cms-2", "title": "Posted for later",
                                                        "date": when.isoformat(), "body": "Text."})
    assert response.status == 202, await response.text()
    assert (await response.json())["status"] == "scheduled"
    assert "Posted for later" not in atom_titles(publisher)
    assert [a.id for a in (await article_ingest.release(publisher.engine, when)).new] == ["cms-2"]


# --- duplicate ids -------------------------------------------------------------------------


async def test_a_copy_never_takes_over_a_published_id(publisher: Publisher, site_dir: Path) -> None:
    content = publisher.settings.content.dir
    write(content, "original.md", "The original", id="shared")
    await publisher.intake.scan()
    (guid,) = [e.id for e in feedparser.parse(publisher.shelf.docs["feed.atom"].body).entries if e.title == "The original"]
    write(content, "a-copy.md", "The copy", id="shared")  # sorts before the original
    await publisher.intake.scan()
    entries = {e.title: e.id for e in feedparser.parse(publisher.shelf.docs["feed.atom"].body).entries}
    assert entries.get("The original") == guid and "The copy" not in entries

    built = await asyncio.to_thread(cli, site_dir, "build")  # its own event loop
    assert built.exit_code == 1, built.output
    assert f"id 'shared' (also used by {content / 'original.md'})" in built.output
    assert "a-copy.md" in built.output


async def test_the_api_may_not_take_over_an_id_a_file_publishes(articles_api: TestClient, publisher: Publisher) -> None:
    response = await articles_api.post("/api/articles", json={"id": "2024-06-city-heat-plan", "title": "Hijack",
                                                        "date": "2026-11-20", "body": "Text."})
    assert response.status == 409, await response.text()
    assert "city-heat-plan.md" in (await response.json())["error"]
    assert "Hijack" not in atom_titles(publisher)


# --- build's exit code ---------------------------------------------------------------------


def test_build_fails_without_the_content_directory(site_dir: Path) -> None:
    (site_dir / "content").rename(site_dir / "elsewhere")
    result = cli(site_dir, "build")
    assert result.exit_code == 1
    assert "content directory does not exist" in result.output


def test_build_counts_skipped_files_and_fails(site_dir: Path) -> None:
    (site_dir / "content" / "broken.md").write_text("---\ntitle: No date\n---\nText.\n", encoding="utf-8")
    result = cli(site_dir, "build")
    assert result.exit_code == 1, result.output
    assert "3 new, 0 updated, 0 unchanged, 0 scheduled, 1 skipped" in result.output
    assert "broken.md:1: missing date" in result.output


# --- an edit's updated date ------------------------------------------------------------------


def feed_dates(publisher: Publisher, entry_title: str) -> tuple[datetime, datetime]:
    """(Atom ``<updated>``, JSON Feed ``date_modified``) of the entry with this title."""
    (atom,) = [e for e in feedparser.parse(publisher.shelf.docs["feed.atom"].body).entries if e.title == entry_title]
    (item,) = [i for i in json.loads(publisher.shelf.docs["feed.json"].body)["items"] if i["title"] == entry_title]
    return datetime.fromisoformat(atom.updated), datetime.fromisoformat(item["date_modified"])


async def test_an_edit_is_dated_when_it_was_first_seen(publisher: Publisher) -> None:
    path = write(publisher.settings.content.dir, "story.md", "A story")
    await publisher.intake.scan()
    published = datetime(2026, 11, 20, 8, tzinfo=UTC)  # the date ARTICLE gives
    assert feed_dates(publisher, "A story") == (published, published)

    path.write_text(path.read_text(encoding="utf-8") + "\nA correction.\n", encoding="utf-8")
    before = datetime.now(UTC).replace(microsecond=0)
    await publisher.intake.scan()
    after = datetime.now(UTC)
    atom_updated, json_updated = feed_dates(publisher, "A story")
    assert before <= atom_updated <= after and json_updated == atom_updated

    assert not (await publisher.intake.scan()).changed  # an unchanged re-scan does not move it
    assert feed_dates(publisher, "A story") == (atom_updated, json_updated)


async def test_an_edit_keeps_the_updated_date_its_front_matter_gives(publisher: Publisher) -> None:
    path = write(publisher.settings.content.dir, "story.md", "A story", extra="updated: 2026-11-21T10:00:00Z\n")
    await publisher.intake.scan()
    path.write_text(path.read_text(encoding="utf-8") + "\nA correction.\n", encoding="utf-8")
    assert [a.id for a in (await publisher.intake.scan()).updated] == ["story"]
    given = datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert feed_dates(publisher, "A story") == (given, given)


async def test_an_article_stored_before_tables_had_alignment_is_not_an_edit(publisher: Publisher) -> None:
    """An upgrade that adds a field to the model must not date every stored article "updated"."""
    (publisher.settings.content.dir / "story.md").write_text(
        ARTICLE.format(id="story", title="A story", extra="") + "\n| a | b |\n| --- | --- |\n| 1 | 2 |\n",
        encoding="utf-8")
    await publisher.intake.scan()
    # The row as the previous version wrote it: its tables had no "align" key in the JSON or the hash.
    async with publisher.engine.begin() as conn:
        (data,) = (await conn.execute(sa.select(articles.c.data).where(articles.c.id == "story"))).one()
        old = json.loads(data)
        for table in old["fact_tables"]:
            table.pop("align", None)
        old.pop("source_path")
        old_hash = hashlib.sha256(json.dumps(old, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        await conn.execute(sa.update(articles).where(articles.c.id == "story").values(content_hash=old_hash))
    assert not (await publisher.intake.scan()).changed
    published = datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert feed_dates(publisher, "A story") == (published, published)


# --- what check reports ----------------------------------------------------------------------

RAGGED_TABLE = "| a | b |\n| --- | --- |\n| 1 | 2 | 3 |\n"


def check_lines(site_dir: Path) -> tuple[int, list[str]]:
    """``publisher check``'s exit code and its lines, with the content directory's path cut."""
    result = cli(site_dir, "check")
    return result.exit_code, [line.replace(str(site_dir / "content") + "/", "") for line in result.output.splitlines()]


def test_check_reports_body_problems_of_a_file_whose_front_matter_is_broken(bare_site_dir: Path) -> None:
    (bare_site_dir / "content" / "both.md").write_text(
        f"---\ntitle: Both\ndate: 2026-11-20\ntags: [a, b\nslug: both\n---\n\nText.\n\n{RAGGED_TABLE}",
        encoding="utf-8",
    )
    code, lines = check_lines(bare_site_dir)
    assert code == 1
    assert [line for line in lines if line.startswith("both.md:")] == [
        "both.md:5: invalid YAML front matter: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts at line 4)",
        "both.md:12: table row has 3 cells, header has 2",
    ]


def test_front_matter_errors_name_their_line(bare_site_dir: Path) -> None:
    content = bare_site_dir / "content"
    (content / "yaml.md").write_text("---\ntitle: Y\n\ndate: 2026-11-20\nauthor: a: b\n---\nText.\n", encoding="utf-8")
    (content / "toml.md").write_text('+++\ntitle = "T"\n\n\ndate = = 2026-11-20\n+++\nText.\n', encoding="utf-8")
    code, lines = check_lines(bare_site_dir)
    assert code == 1
    assert "yaml.md:5: invalid YAML front matter: mapping values are not allowed here" in lines
    assert "toml.md:5: invalid TOML front matter: Invalid value" in lines


def test_unknown_keys_and_images_without_alt_text_are_warnings(bare_site_dir: Path) -> None:
    write(bare_site_dir / "content", "typos.md", "Typos", extra="tagz: [trade]\nautor: Ann\nmood: calm\n")
    with (bare_site_dir / "content" / "typos.md").open("a", encoding="utf-8") as file:
        file.write("\nA chart:\n![](chart.png)\n\n![A map](map.png)\n")
    code, lines = check_lines(bare_site_dir)
    assert code == 0, lines
    typos = [line for line in lines if line.startswith("typos.md:")]
    assert typos == [
        "typos.md:5: warning: unknown front matter key 'tagz': did you mean 'tags'?",
        "typos.md:6: warning: unknown front matter key 'autor': did you mean 'author'?",
        "typos.md:7: warning: unknown front matter key 'mood'",
        "typos.md:13: warning: image chart.png has no alt text (write it between the brackets: ![text](...))",
    ]
    built = cli(bare_site_dir, "build")  # a warning never keeps an article out
    assert built.exit_code == 0 and "4 new" in built.output, built.output


# --- scheduled articles ----------------------------------------------------------------------


def dated(content: Path, name: str, title: str, when: datetime) -> Path:
    path = content / name
    path.write_text(f"---\nid: {path.stem}\ntitle: {title}\ndate: {when.isoformat()}\n---\n\nText.\n", encoding="utf-8")
    return path


async def test_a_scheduled_article_goes_out_when_its_time_comes_even_after_newer_news(publisher: Publisher) -> None:
    """The digest cursor trap: an article stored before its time must not fall behind the cursors."""
    await publisher.intake.scan()
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    now = datetime.now(UTC)
    later = now + timedelta(hours=2)
    dated(publisher.settings.content.dir, "embargoed.md", "Embargoed story", later)
    result = await publisher.intake.scan()
    assert [a.id for a in result.scheduled] == ["embargoed"] and not result.new
    assert "Embargoed story" not in atom_titles(publisher)
    await publisher.delivery.send([Cadence.INSTANT])
    dated(publisher.settings.content.dir, "fresh.md", "Fresh story", now)
    await publisher.intake.scan()
    await publisher.delivery.send([Cadence.INSTANT])  # moves every cursor past the fresh story
    sent_before = {m["Message-ID"] for m in outbox_messages(publisher.settings)}
    assert sent_before

    released = await article_ingest.release(publisher.engine, later)
    assert [a.id for a in released.new] == ["embargoed"]
    await publisher.shelf.build()
    assert "Embargoed story" in atom_titles(publisher)
    await publisher.delivery.send([Cadence.INSTANT])
    (digest,) = [m for m in outbox_messages(publisher.settings) if m["Message-ID"] not in sent_before]
    assert "Embargoed story" in digest.get_body(("plain",)).get_content()


async def test_a_scheduled_article_is_edited_rescheduled_or_removed_with_its_file(publisher: Publisher) -> None:
    content = publisher.settings.content.dir
    when = datetime.now(UTC) + timedelta(days=1)
    path = dated(content, "later.md", "Later story", when)
    await publisher.intake.scan()
    path.write_text(path.read_text(encoding="utf-8").replace("Text.", "New text."), encoding="utf-8")
    assert [a.id for a in (await publisher.intake.scan()).scheduled] == ["later"]
    assert not (await publisher.intake.scan()).scheduled  # unchanged
    path.unlink()
    await publisher.intake.scan()
    assert not (await article_ingest.release(publisher.engine, when + timedelta(days=1))).new


async def test_a_published_article_given_a_future_date_is_unpublished_until_then(publisher: Publisher) -> None:
    path = dated(publisher.settings.content.dir, "story.md", "A story", datetime.now(UTC) - timedelta(hours=1))
    await publisher.intake.scan()
    when = datetime.now(UTC) + timedelta(hours=1)
    dated(publisher.settings.content.dir, path.name, "A story", when)
    assert (await publisher.intake.scan()).removed == ["story"]
    assert "A story" not in atom_titles(publisher)
    back = await article_ingest.release(publisher.engine, when)
    assert [a.id for a in back.updated] == ["story"] and not back.new  # it went out once already


async def test_build_and_send_publish_what_has_come_due(publisher: Publisher, site_dir: Path) -> None:
    when = datetime.now(UTC) + timedelta(seconds=1)
    dated(publisher.settings.content.dir, "soon.md", "Soon story", when)
    assert [a.id for a in (await publisher.intake.scan()).scheduled] == ["soon"]
    await asyncio.sleep((when - datetime.now(UTC)).total_seconds())  # the article's time, not a race
    built = await asyncio.to_thread(cli, site_dir, "build")
    assert built.exit_code == 0 and "1 new" in built.output, built.output
    assert "Soon story" in [e.title for e in feedparser.parse((site_dir / "public" / "feed.atom").read_bytes()).entries]


async def test_the_daemons_schedule_publishes_on_time(publisher: Publisher) -> None:
    scheduler = build_scheduler()
    schedule_jobs(scheduler, publisher, at_start=False)
    scheduler.start()
    try:
        await publisher.intake.scan()
        await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
        when = datetime.now(UTC) + timedelta(seconds=1)
        dated(publisher.settings.content.dir, "soon.md", "Soon story", when)
        await publisher.intake.scan()  # arms the release at the article's time; no scan after it
        release = scheduler.get_job("release")
        assert release is not None and release.next_run_time == when
        deadline = when + timedelta(seconds=5)

        def digest_with_it() -> bool:
            return any("Soon story" in m.get_body(("plain",)).get_content() for m in outbox_messages(publisher.settings))

        while not ("Soon story" in atom_titles(publisher) and digest_with_it()):
            assert datetime.now(UTC) < deadline, "not published and sent within 5 s of its time"
            await asyncio.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)
        await publisher.tasks.settle()


def test_check_and_status_list_scheduled_articles(site_dir: Path) -> None:
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    dated(site_dir / "content", "later.md", "Later story", when)
    code, lines = check_lines(site_dir)
    assert code == 0 and f"later.md: scheduled for {when:%Y-%m-%d %H:%M} UTC (later)" in lines, lines
    assert cli(site_dir, "build").exit_code == 0
    status = cli(site_dir, "status")
    assert f"later  {when:%Y-%m-%d %H:%M} UTC  Later story" in status.output, status.output


async def test_feeds_never_date_past_their_last_modified_nor_in_the_future(publisher: Publisher) -> None:
    content = publisher.settings.content.dir
    (content / "odd.md").write_text("---\nid: odd\ntitle: Odd\ndate: 2026-01-01\nupdated: 2999-01-01\n---\nText.\n",
                                    encoding="utf-8")
    dated(content, "later.md", "Later story", datetime.now(UTC) + timedelta(days=3))
    await publisher.intake.scan()
    now = datetime.now(UTC)
    for path in ("feed.atom", "feed.rss", "feed.json"):
        document = publisher.shelf.docs[path]
        assert document.last_modified <= now
        parsed = feedparser.parse(document.body)
        for entry in parsed.entries:
            for key in ("published_parsed", "updated_parsed"):  # dict.get: no feedparser fallback from one to the other
                if parsed_date := dict.get(entry, key):
                    assert datetime(*parsed_date[:6], tzinfo=UTC) <= document.last_modified, (path, entry.title)


# --- articles: list, show, remove (CLI and API) ------------------------------------------------


def table_rows(output: str) -> dict[str, list[str]]:
    """A rich table's rows by their first cell."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) > 1 and cells[0]:
            rows[cells[0]] = cells
    return rows


@pytest.mark.slow  # runs the publisher in a subprocess
def test_articles_list_shows_published_scheduled_and_drafts(site_dir: Path) -> None:
    content = site_dir / "content"
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    dated(content, "later.md", "Later story", when)
    write(content, "_draft.md", "Draft story")
    assert cli(site_dir, "build").exit_code == 0
    listed = table_rows(run(site_dir / "config.toml", "articles", "list").stdout)  # 200 columns: one line a row
    assert listed["2024-06-city-heat-plan"][1:] == [
        "city-heat-plan", "City Council Adopts a Heat Plan Built Around Shade and Water", "2024-06-03 07:30 UTC",
        "published",
    ]
    assert "later" not in listed and "draft" not in listed
    assert table_rows(run(site_dir / "config.toml", "articles", "list", "--scheduled").stdout)["later"][1:] == [
        "later", "Later story", f"{when:%Y-%m-%d %H:%M} UTC", "scheduled",
    ]
    assert table_rows(run(site_dir / "config.toml", "articles", "list", "--drafts").stdout)["draft"][1:] == [
        "draft", "Draft story", "2026-11-20 08:00 UTC", "draft",
    ]


def test_articles_show_and_remove(site_dir: Path) -> None:
    assert cli(site_dir, "subscribers", "add", "ann@example.org", "--cadence", "instant").exit_code == 0
    sent = cli(site_dir, "send")
    assert sent.exit_code == 0, sent.output
    (digest_id,) = [line.split()[1].rstrip(":") for line in sent.output.splitlines() if line.startswith("planned ")]
    shown = cli(site_dir, "articles", "show", "2024-03-transit-ridership")
    assert shown.exit_code == 0, shown.output
    assert "state: published" in shown.output
    assert "title: Regional Transit Ridership Nears Its Pre-Pandemic Level" in shown.output
    assert "first seen: " in shown.output and f"digests: {digest_id}" in shown.output

    removed = cli(site_dir, "articles", "remove", "2024-03-transit-ridership")
    assert removed.exit_code == 0, removed.output
    titles = [e.title for e in feedparser.parse((site_dir / "public" / "feed.atom").read_bytes()).entries]
    assert "Regional Transit Ridership Nears Its Pre-Pandemic Level" not in titles
    assert cli(site_dir, "build").exit_code == 0  # the unchanged file does not bring it back
    assert "state: removed" in cli(site_dir, "articles", "show", "2024-03-transit-ridership").output
    unknown = cli(site_dir, "articles", "remove", "no-such-article")
    assert unknown.exit_code == 1 and "no-such-article" in unknown.output


async def test_the_api_lists_articles_a_page_at_a_time_and_unpublishes_one(
    articles_api: TestClient, publisher: Publisher
) -> None:
    seen: list[str] = []
    after = None
    while True:
        query = {"limit": "2"} | ({"after": str(after)} if after is not None else {})
        response = await articles_api.get("/api/articles", params=query)
        assert response.status == 200, await response.text()
        page = await response.json()
        assert page["total"] == 3 and len(page["articles"]) <= 2
        seen += [article["id"] for article in page["articles"]]
        after = page["next_after"]
        if after is None:
            break
    assert sorted(seen) == ["2023-09-kim-russia-visit", "2024-03-transit-ridership", "2024-06-city-heat-plan"]
    assert (await articles_api.get("/api/articles", params={"limit": "0"})).status == 422

    deleted = await articles_api.delete("/api/articles/2023-09-kim-russia-visit")
    assert deleted.status == 204
    assert "Kim Jong Un in Russia: Is the War in Ukraine Forging a New Axis?" not in atom_titles(publisher)
    assert (await articles_api.delete("/api/articles/2023-09-kim-russia-visit")).status == 404
    assert (await (await articles_api.get("/api/articles")).json())["total"] == 2
