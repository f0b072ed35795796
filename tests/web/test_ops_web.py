"""Operations over HTTP: /healthz, /readyz, /metrics, and the feed route they count."""

from __future__ import annotations

import errno
import gzip
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import feedparser
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from publisher import clock, metrics
from publisher.app import Publisher
from publisher.config import Settings
from publisher.feeds.build import FeedDocument
from publisher.store.schema import articles
from publisher.web.feeds import accepts_gzip
from publisher.web.security import PAGE_CSP
from publisher.web.server import create_runner
from publisher.runtime import scheduler
from tests.support.databases import read_only_engine
from tests.support.people import add_subscriber
from tests.support.web_client import web_client

IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    await publisher.intake.scan()
    async with web_client(publisher) as test_client:
        yield test_client


def unreachable(tmp_path: Path) -> AsyncEngine:
    """An engine whose SQLite file is in a directory that does not exist (nothing creates it)."""
    return create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'publisher.db'}")


def ready(publisher: Publisher) -> None:
    """What the daemon's schedule leaves behind: running, with a fresh scan."""
    publisher.node.scheduler_running = True
    publisher.node.last_scan_at = clock.now()


async def readiness(client: TestClient) -> tuple[int, dict[str, dict[str, object]]]:
    response = await client.get("/readyz")
    assert response.headers["Content-Type"].startswith("application/json")
    body = await response.json()
    assert body["status"] == ("ready" if response.status == 200 else "not ready")
    assert set(body["checks"]) == {"database", "scheduler", "scan"}
    return response.status, body["checks"]


async def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, labels), parsed as Prometheus would."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def feed_requests(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], status: int) -> float:
    return samples["publisher_feed_requests_total", (("status", str(status)),)]


# --- health ---------------------------------------------------------------------------


async def test_healthz_answers_without_io(client: TestClient, publisher: Publisher, tmp_path: Path) -> None:
    await publisher.engine.dispose()
    publisher.engine = unreachable(tmp_path)
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_503_before_the_schedule_runs(client: TestClient, publisher: Publisher) -> None:
    publisher.node.last_scan_at = None
    status, checks = await readiness(client)
    assert status == 503
    assert checks["database"]["ok"] is True
    assert checks["scheduler"] == {"ok": False, "detail": "the schedule is not running"}
    assert checks["scan"]["ok"] is False and checks["scan"]["detail"] == "no scan has finished yet"


async def test_readyz_is_200_when_every_check_passes(client: TestClient, publisher: Publisher) -> None:
    ready(publisher)
    status, checks = await readiness(client)
    assert status == 200
    assert all(check["ok"] is True for check in checks.values())
    assert str(checks["database"]["detail"]).startswith("SELECT 1 and a write in ")
    assert checks["scan"]["max_age_seconds"] == 180  # 3 x the default 60 s scan interval


async def test_readyz_is_503_with_a_stale_scan(client: TestClient, publisher: Publisher) -> None:
    ready(publisher)
    publisher.node.last_scan_at = clock.now() - timedelta(seconds=181)
    status, checks = await readiness(client)
    assert status == 503
    assert checks["database"]["ok"] is True and checks["scheduler"]["ok"] is True
    assert checks["scan"]["ok"] is False
    assert "limit 180 s" in str(checks["scan"]["detail"])


async def test_a_full_disk_for_the_static_files_is_a_warning_logged_once_and_readiness_stays(
    client: TestClient, publisher: Publisher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ready(publisher)
    caplog.set_level(logging.INFO, logger="publisher.feeds.shelf")

    def disk_full(docs: object, output_dir: Path, changed: object = None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(output_dir / "feed.rss"))

    with monkeypatch.context() as patched:
        patched.setattr("publisher.feeds.files.write_feeds", disk_full)  # shelf imports it when it writes
        await publisher.shelf.build()
        await publisher.shelf.build()
        response = await client.get("/readyz")
        assert response.status == 200
        warning = (await response.json())["warnings"]["static_files"]
        assert "No space left on device" in warning and str(publisher.settings.site.output_dir) in warning
        assert caplog.text.count("cannot write the static feed files") == 1
        assert (await client.get("/feed.rss")).status == 200
    await publisher.shelf.build()  # space again
    assert "warnings" not in await (await client.get("/readyz")).json()
    assert "static feed files are written to" in caplog.text


async def store_unreadable_article(engine: AsyncEngine, article_id: str) -> None:
    """A row as an older or damaged store may hold: its data lacks the title."""
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(insert(articles).values(
            id=article_id, slug=article_id, content_hash="0" * 64, tags="[]", published=now, updated=now,
            first_seen_at=now, changed_at=now, source="api",
            data=json.dumps({"id": article_id, "slug": article_id, "published": now.isoformat()}),
        ))


async def test_a_stored_article_that_cannot_be_read_is_left_out_of_the_feeds(
    client: TestClient, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    await store_unreadable_article(publisher.engine, "damaged-row")
    await publisher.shelf.build()
    response = await client.get("/feed.atom", headers=IDENTITY)
    assert response.status == 200
    assert len(feedparser.parse(await response.read()).entries) == 3
    assert "stored article damaged-row can't be read" in caplog.text


async def test_readyz_stale_limit_is_never_under_a_minute(make_settings: Callable[..., Settings]) -> None:
    service = Publisher(make_settings("[scheduler]\nscan_interval = 5\n"))
    await service.start()
    try:
        async with web_client(service) as client:
            ready(service)
            service.node.last_scan_at = clock.now() - timedelta(seconds=30)  # 6 intervals, but under 60 s
            status, checks = await readiness(client)
            assert status == 200 and checks["scan"]["max_age_seconds"] == 60
    finally:
        await service.close()


async def test_readyz_is_503_when_the_database_is_unreachable(
    client: TestClient, publisher: Publisher, tmp_path: Path
) -> None:
    ready(publisher)
    await publisher.engine.dispose()
    publisher.engine = unreachable(tmp_path)
    status, checks = await readiness(client)
    assert status == 503
    assert checks["database"]["ok"] is False
    assert str(checks["database"]["detail"]).startswith("SELECT 1 failed: OperationalError")
    assert "Traceback" not in str(checks["database"]["detail"])
    assert checks["scheduler"]["ok"] is True and checks["scan"]["ok"] is True


async def test_readyz_is_503_when_the_database_reads_but_refuses_writes(
    client: TestClient, publisher: Publisher
) -> None:
    ready(publisher)
    writable = publisher.engine
    publisher.engine = read_only_engine(publisher.settings.database.url)
    try:
        status, checks = await readiness(client)
    finally:
        await publisher.engine.dispose()
        publisher.engine = writable
    assert status == 503
    assert checks["database"]["ok"] is False
    assert str(checks["database"]["detail"]).startswith("a write failed: ")
    assert (await readiness(client))[0] == 200


# --- metrics --------------------------------------------------------------------------


async def test_metrics_count_feed_requests_by_status(client: TestClient, publisher: Publisher) -> None:
    before = await scrape(client)
    first = await client.get("/feed.atom", headers=IDENTITY)
    assert first.status == 200
    etag = first.headers["ETag"]
    for _ in range(2):
        assert (await client.get("/feed.atom", headers=IDENTITY | {"If-None-Match": etag})).status == 304
    assert (await client.get("/tags/no-such-tag/feed.rss")).status == 404
    after = await scrape(client)
    assert feed_requests(after, 200) - feed_requests(before, 200) == 1
    assert feed_requests(after, 304) - feed_requests(before, 304) == 2
    assert feed_requests(after, 404) - feed_requests(before, 404) == 1
    # Every family is there from the start, each allowed label value included.
    names = {name for name, _ in after}
    assert {
        "publisher_articles_published_total", "publisher_send_rate", "publisher_queue_depth",
        "publisher_scan_duration_seconds_count", "publisher_scan_duration_seconds_bucket",
    } <= names
    assert {("publisher_messages_total", (("state", state),)) for state in metrics.MESSAGE_STATES} <= set(after)
    assert {("publisher_digests_total", (("cadence", c),)) for c in metrics.CADENCES} <= set(after)
    assert after["publisher_queue_depth", ()] == 0  # nothing in the ledger


async def test_metrics_functions_record_what_they_are_told() -> None:
    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "articles": value("publisher_articles_published_total"),
        "daily": value("publisher_digests_total", cadence="daily"),
        "deferred": value("publisher_messages_total", state="deferred"),
        "scans": value("publisher_scan_duration_seconds_count"),
    }
    metrics.articles_published(3)
    metrics.digest_planned("daily")
    metrics.messages("deferred", 5)
    metrics.messages("sent", 0)
    metrics.send_rate(1234.5)
    metrics.queue_depth(42)
    metrics.scan_finished(0.2)
    assert value("publisher_articles_published_total") - before["articles"] == 3
    assert value("publisher_digests_total", cadence="daily") - before["daily"] == 1
    assert value("publisher_messages_total", state="deferred") - before["deferred"] == 5
    assert value("publisher_scan_duration_seconds_count") - before["scans"] == 1
    assert value("publisher_send_rate") == 1234.5
    assert value("publisher_queue_depth") == 42
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain") and b"publisher_send_rate 1234.5" in body
    metrics.queue_depth(0)
    # Label values are a closed set: a typo is an error, not a new time series.
    with pytest.raises(ValueError, match="cadence"):
        metrics.digest_planned("hourly")
    with pytest.raises(ValueError, match="state"):
        metrics.messages("bounced")
    with pytest.raises(ValueError, match="status"):
        metrics.feed_request(500)


# --- the feed route -------------------------------------------------------------------


async def test_the_service_records_its_work_in_the_metrics(publisher: Publisher) -> None:
    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "articles": value("publisher_articles_published_total"),
        "digests": value("publisher_digests_total", cadence="instant"),
        "sent": value("publisher_messages_total", state="sent"),
        "scans": value("publisher_scan_duration_seconds_count"),
    }
    await add_subscriber(publisher.engine, "ann@example.org")
    await add_subscriber(publisher.engine, "bob@example.org")
    await scheduler.scan_and_send_instant(publisher)
    assert value("publisher_articles_published_total") - before["articles"] == 3  # the sample articles
    assert value("publisher_digests_total", cadence="instant") - before["digests"] == 1
    assert value("publisher_messages_total", state="sent") - before["sent"] == 2
    assert value("publisher_scan_duration_seconds_count") - before["scans"] == 1
    assert value("publisher_send_rate") > 0


async def test_feed_200_then_304_on_its_etag(client: TestClient, publisher: Publisher) -> None:
    doc = publisher.shelf.docs["feed.atom"]
    response = await client.get("/feed.atom", headers=IDENTITY)
    assert response.status == 200
    assert await response.read() == doc.body
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(doc.body))
    assert response.headers["ETag"] == doc.etag
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert "Content-Encoding" not in response.headers
    assert response.headers["Content-Security-Policy"] == PAGE_CSP  # the security headers, as on every page
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Strict-Transport-Security"]

    for if_none_match in (doc.etag, f"W/{doc.etag}", f'"a", {doc.etag} , "b"', "*"):
        cached = await client.get("/feed.atom", headers=IDENTITY | {"If-None-Match": if_none_match})
        assert cached.status == 304, if_none_match
        assert await cached.read() == b""
        assert cached.headers["ETag"] == doc.etag
        assert cached.headers["Vary"] == "Accept-Encoding"
        assert cached.headers["Content-Security-Policy"] == PAGE_CSP
        assert "Content-Length" not in cached.headers or cached.headers["Content-Length"] == "0"

    last_modified = response.headers["Last-Modified"]
    assert (await client.get("/feed.atom", headers=IDENTITY | {"If-Modified-Since": last_modified})).status == 304
    later = format_datetime(doc.last_modified + timedelta(days=1), usegmt=True)
    assert (await client.get("/feed.atom", headers=IDENTITY | {"If-Modified-Since": later})).status == 304
    earlier = format_datetime(doc.last_modified - timedelta(seconds=1), usegmt=True)
    assert (await client.get("/feed.atom", headers=IDENTITY | {"If-Modified-Since": earlier})).status == 200
    future = format_datetime(clock.now() + timedelta(days=365), usegmt=True)
    assert (await client.get("/feed.atom", headers=IDENTITY | {"If-Modified-Since": future})).status == 200
    both = IDENTITY | {"If-None-Match": '"other"', "If-Modified-Since": last_modified}
    assert (await client.get("/feed.atom", headers=both)).status == 200  # If-None-Match wins


async def test_feed_gzip_only_when_accepted(client: TestClient, publisher: Publisher) -> None:
    doc = publisher.shelf.docs["feed.atom"]
    packed = await client.get("/feed.atom", headers={"Accept-Encoding": "br;q=1.0, gzip;q=0.8"},
                              auto_decompress=False)
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    raw = await packed.read()
    assert raw == doc.gzipped  # the bytes compressed once, at build time
    assert gzip.decompress(raw) == doc.body
    gz_etag = packed.headers["ETag"]
    assert gz_etag != doc.etag
    again = await client.get("/feed.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
    assert again.status == 304 and again.headers["ETag"] == gz_etag

    for refused in ("gzip;q=0", "identity", "deflate", "*;q=0", "gzip;q=0, *"):
        plain = await client.get("/feed.atom", headers={"Accept-Encoding": refused}, auto_decompress=False)
        assert "Content-Encoding" not in plain.headers, refused
        assert await plain.read() == doc.body


async def test_feed_head_has_the_headers_and_no_body(client: TestClient, publisher: Publisher) -> None:
    doc = publisher.shelf.docs["feed.json"]
    head = await client.head("/feed.json", headers=IDENTITY)
    assert head.status == 200
    assert head.headers["ETag"] == doc.etag
    assert head.headers["Content-Length"] == str(len(doc.body))
    assert head.headers["Content-Type"] == "application/feed+json; charset=utf-8"
    assert await head.read() == b""
    cached = await client.head("/feed.json", headers=IDENTITY | {"If-None-Match": doc.etag})
    assert cached.status == 304


async def test_tag_feeds_and_unknown_feeds(client: TestClient, publisher: Publisher) -> None:
    tag_path = next(path for path in publisher.shelf.docs if path.startswith("tags/") and path.endswith(".rss"))
    response = await client.get("/" + tag_path, headers=IDENTITY)
    assert response.status == 200 and await response.read() == publisher.shelf.docs[tag_path].body
    for missing in ("/tags/no-such-tag/feed.rss", "/tags/UPPER/feed.rss", "/tags/x/feed.xml", "/feed.xml"):
        assert (await client.get(missing)).status == 404, missing


async def test_a_rebuilt_feed_is_served_at_once(client: TestClient, publisher: Publisher) -> None:
    old = publisher.shelf.docs["feed.atom"]
    first = await client.get("/feed.atom", headers=IDENTITY)
    assert first.headers["ETag"] == old.etag
    body = old.body.replace(b"</feed>", b"<!-- rebuilt --></feed>")
    new = FeedDocument.build(old.path, body, "application/atom+xml", old.last_modified + timedelta(hours=1))
    publisher.shelf.docs = {**publisher.shelf.docs, "feed.atom": new}
    response = await client.get("/feed.atom", headers=IDENTITY | {"If-None-Match": old.etag})
    assert response.status == 200
    assert response.headers["ETag"] == new.etag
    assert await response.read() == body
    # A feed that vanishes (a tag nobody uses any more) is a 404 from then on.
    publisher.shelf.docs = {path: doc for path, doc in publisher.shelf.docs.items() if path != "feed.atom"}
    assert (await client.get("/feed.atom")).status == 404
    publisher.shelf.docs = {**publisher.shelf.docs, "feed.atom": replace(new)}
    assert (await client.get("/feed.atom", headers=IDENTITY)).status == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip", True), ("GZIP", True), ("gzip, deflate, br", True), ("deflate, gzip;q=0.5", True),
        ("x-gzip", True), ("*", True), ("gzip;q=0", False), ("gzip; q=0.000", False), ("*;q=0", False),
        ("gzip;q=0, *", False), ("identity", False), ("br", False), ("", False), ("gzip;q=junk", False),
        ("gzipper", False),
    ],
)
def test_accepts_gzip(value: str, expected: bool) -> None:
    assert accepts_gzip(value) is expected


# --- the daemon's runner: feeds before the application --------------------------------


async def test_the_daemons_runner_answers_feeds_like_the_app_and_leaves_the_rest_to_it(
    client: TestClient, publisher: Publisher
) -> None:
    runner = create_runner(publisher)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            for path in ("/feed.atom", "/tags/russia/feed.rss"):
                fast = await session.get(base + path, headers=IDENTITY)
                routed = await client.get(path, headers=IDENTITY)  # the same app, through its router
                assert fast.status == routed.status == 200
                assert await fast.read() == await routed.read()
                assert {k: v for k, v in fast.headers.items() if k not in {"Date", "Server"}} == {
                    k: v for k, v in routed.headers.items() if k not in {"Date", "Server"}
                }
                assert "Content-Security-Policy" in fast.headers
                again = await session.get(base + path, headers={"If-None-Match": fast.headers["ETag"]})
                assert again.status == 304
            head = await session.head(base + "/feed.json")
            assert head.status == 200 and await head.read() == b""
            missing = await session.get(base + "/tags/no-such-tag/feed.atom")
            assert missing.status == 404 and missing.headers["Content-Type"].startswith("text/html")
            assert (await session.post(base + "/feed.atom")).status == 405
            assert (await session.get(base + "/healthz")).status == 200
    finally:
        await runner.cleanup()


async def test_feeds_never_reach_the_applications_middlewares_on_the_daemons_runner(publisher: Publisher) -> None:
    """The fast path sits in front of the application through aiohttp's runner (its
    ``server.request_handler``): if an aiohttp version stops routing requests through
    it, feed requests reach the middlewares and this fails (pyproject.toml caps aiohttp
    to the versions it passed on)."""
    await publisher.intake.scan()  # the sample articles, and their feeds
    reached: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Callable[..., object]) -> web.StreamResponse:
        reached.append(request.path)
        return await handler(request)  # type: ignore[misc, no-any-return]

    runner = create_runner(publisher)
    runner.app.middlewares.append(record)  # before setup: the application is not frozen yet
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/feed.atom", "/feed.rss", "/tags/russia/feed.json"):
                assert (await session.get(f"http://127.0.0.1:{port}{path}")).status == 200
            assert (await session.head(f"http://127.0.0.1:{port}/feed.json")).status == 200
            assert (await session.get(f"http://127.0.0.1:{port}/healthz")).status == 200
    finally:
        await runner.cleanup()
    assert reached == ["/healthz"]
