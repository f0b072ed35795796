"""The feed endpoints over HTTP: conditional GET, gzip, HEAD, 404 and the health check."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import format_datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from publisher.app import Publisher
from publisher.web.server import create_app


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    await publisher.intake.scan()
    async with TestClient(TestServer(create_app(publisher))) as test_client:
        yield test_client


async def test_feed_has_validators_and_304s_on_them(client: TestClient, publisher: Publisher) -> None:
    response = await client.get("/feed.rss")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    body = await response.read()
    assert body == publisher.shelf.docs["feed.rss"].body
    etag, last_modified = response.headers["ETag"], response.headers["Last-Modified"]

    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": last_modified},
    ):
        cached = await client.get("/feed.rss", headers=headers)
        assert cached.status == 304, headers
        assert await cached.read() == b""
        assert cached.headers["ETag"] == etag

    stale = await client.get("/feed.rss", headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified})
    assert stale.status == 200  # If-None-Match wins when both are sent
    older = publisher.shelf.docs["feed.rss"].last_modified - timedelta(seconds=1)
    assert (await client.get("/feed.rss", headers={"If-Modified-Since": format_datetime(older, usegmt=True)})).status == 200
    assert (await client.get("/feed.rss", headers={"If-Modified-Since": "garbage"})).status == 200


async def test_gzip_is_served_precompressed_with_its_own_etag(client: TestClient, publisher: Publisher) -> None:
    response = await client.get("/feed.atom", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    raw = await response.read()
    assert gzip.decompress(raw) == publisher.shelf.docs["feed.atom"].body
    assert response.headers["ETag"] != publisher.shelf.docs["feed.atom"].etag
    again = await client.get("/feed.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": response.headers["ETag"]})
    assert again.status == 304


async def test_tag_feeds_head_and_unknown_paths(client: TestClient, publisher: Publisher) -> None:
    tag_paths = [p for p in publisher.shelf.docs if p.startswith("tags/")]
    assert tag_paths
    assert (await client.get("/" + tag_paths[0])).status == 200
    head = await client.head("/feed.json", headers={"Accept-Encoding": "identity"})
    assert head.status == 200 and head.headers["ETag"] == publisher.shelf.docs["feed.json"].etag
    assert (await client.get("/tags/no-such-tag/feed.rss")).status == 404
    assert (await client.get("/feed.xml")).status == 404


async def test_health_and_index_link_the_feeds(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    index = await (await client.get("/")).text()
    assert 'rel="alternate" type="application/atom+xml"' in index
    assert 'href="/feed.rss"' in index
