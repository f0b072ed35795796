"""The overview's charts over HTTP (real app, real store): each ``/admin/charts/<name>.svg`` is
behind the sign-in, answers an SVG that xml.etree parses with no script, no event handler and
no reference to anything outside it, draws a hostile label as text, draws the numbers of the
figures the tables show, and sits beside its table on the overview."""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import lxml.html
import pytest
from aiohttp.test_utils import TestClient

from publisher import clock, urls
from publisher.admin import figures
from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.delivery import gate_store
from publisher.web.admin import charts
from publisher.web.security import PAGE_CSP
from tests.support.admin import AdminVisitor, add_operator, some_mail_sent
from tests.support.web_client import web_client

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
HOSTILE = '<script>"&x'


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    async with web_client(publisher) as client:
        yield client


async def signed_in(publisher: Publisher, client: TestClient, role: Role = Role.VIEWER) -> AdminVisitor:
    email = f"{role}@example.org"
    await add_operator(publisher, email, role)
    visitor = AdminVisitor(client)
    assert (await visitor.sign_in(email)).status == 303
    return visitor


def chart_paths() -> list[str]:
    return [urls.ADMIN_CHART.fixed(chart=name) for name in urls.ADMIN_CHARTS]


def series(root: ET.Element) -> dict[str, list[str]]:
    """The values drawn, per series (named by the legend; a chart without one: "0", "1", …)."""
    legend = [text.text or "" for text in root.iterfind(f".//{SVG}g[@class='legends']//{SVG}text")]
    found: dict[str, list[str]] = {}
    for group in root.iter(f"{SVG}g"):
        classes = group.get("class", "").split()
        if "series" in classes and group.find(f".//{SVG}desc[@class='value']") is not None:
            index = int(next(c for c in classes if c.startswith("serie-")).removeprefix("serie-"))
            name = legend[index] if index < len(legend) else str(index)
            found[name] = [desc.text or "" for desc in group.iterfind(f".//{SVG}desc[@class='value']")]
    return found


def check_script_free(body: bytes, name: str) -> ET.Element:
    """``body`` parses as one SVG holding no script, handler, link or outside reference."""
    assert b"<?xml-stylesheet" not in body and b"<!--" not in body, name
    root = ET.fromstring(body)
    assert root.tag == f"{SVG}svg", name
    for element in root.iter():
        assert element.tag.removeprefix(SVG) not in ("script", "foreignObject", "a", "image", "use", "iframe"), name
        for attribute, value in element.attrib.items():
            assert not attribute.removeprefix(XLINK).lower().startswith("on"), (name, attribute)
            assert attribute not in ("href", f"{XLINK}href", "style"), (name, attribute)
            assert "url(" not in value and "javascript:" not in value.lower(), (name, attribute)
    [style] = root.iter(f"{SVG}style")
    assert "@import" not in (style.text or "") and "url(" not in (style.text or ""), name
    return root


async def test_every_chart_is_behind_the_sign_in(publisher: Publisher, client: TestClient) -> None:
    assert tuple(charts.CHARTS) == urls.ADMIN_CHARTS
    visitor = AdminVisitor(client)
    for path in chart_paths():
        response = await visitor.get(path)
        assert response.status == 303, path
        assert response.headers["Location"] == "/admin/sign-in?next=" + path
        assert b"<svg" not in await response.read()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.ADMIN])
async def test_every_chart_is_an_svg_without_script_under_the_page_csp(
    publisher: Publisher, client: TestClient, role: Role
) -> None:
    """Every role sees them (the overview is a viewer's page); each answer's CSP is the page's
    with exactly its own ``<style>`` allowed by hash, so a chart opened alone is drawn too."""
    visitor = await signed_in(publisher, client, role)
    for path in chart_paths():
        response = await visitor.get(path)
        assert response.status == 200, path
        assert response.content_type == "image/svg+xml"
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.read()
        root = check_script_free(body, path)
        [style] = root.iter(f"{SVG}style")
        digest = base64.b64encode(hashlib.sha256((style.text or "").encode()).digest()).decode()
        assert response.headers["Content-Security-Policy"] == PAGE_CSP.replace(
            "style-src 'self'", f"style-src 'self' 'sha256-{digest}'")
        assert "prefers-color-scheme:dark" in (style.text or "").replace(" ", "")  # readable in both schemes


async def test_a_hostile_provider_name_is_drawn_as_text(publisher: Publisher, client: TestClient) -> None:
    assert await gate_store.pause(publisher.engine, HOSTILE, "too many complaints", clock.now())
    visitor = await signed_in(publisher, client)
    for name in ("complaints", "hard-bounces"):
        body = await (await visitor.get(urls.ADMIN_CHART.fixed(chart=name))).read()
        assert b"<script" not in body and b"&lt;script&gt;" in body
        root = check_script_free(body, name)
        assert HOSTILE in [text.text for text in root.iter(f"{SVG}text")]


def test_hostile_labels_and_thresholds_in_the_pure_drawings() -> None:
    """The drawings alone: a digest and a provider named like markup are text; the breakers'
    thresholds are labelled guides (the rates' only major ones)."""
    from datetime import timedelta

    from publisher.delivery.gates import Breakers

    now = clock.now()
    queue = figures.Queue({"pending": 3}, [figures.DigestProgress(HOSTILE, "daily", "paused", "x", now, {"pending": 3})])
    root = check_script_free(charts.draw_queue(queue).svg, "queue")
    assert HOSTILE in [text.text for text in root.iter(f"{SVG}text")]
    breakers = Breakers(timedelta(days=7), 0.001, 0.003, 0.02, 0.05, 200)
    rates = figures.Rates(timedelta(days=7), breakers, [figures.ProviderRate(HOSTILE, 1000, 2, 30, None, None)])
    for which, marks in (("complaints", ["warn 0.10%", "pause 0.30%"]), ("hard bounces", ["warn 2.00%", "pause 5.00%"])):
        root = check_script_free(charts.draw_rates(rates, which).svg, which)
        majors = [text.text for text in root.iter(f"{SVG}text") if "major" in text.get("class", "").split()]
        assert majors == marks, which
        assert series(root)["0"] == ["0.20%" if which == "complaints" else "3.00%"]
    off = figures.Rates(timedelta(days=7), None, [figures.ProviderRate("google", 1000, 2, 30, None, None)])
    root = check_script_free(charts.draw_rates(off, "complaints").svg, "breakers off")
    assert not [text for text in root.iter(f"{SVG}text") if re.match("warn|pause", text.text or "")]


def test_a_chart_of_nothing_says_so() -> None:
    root = check_script_free(charts.draw_queue(figures.Queue({}, [])).svg, "queue")
    assert [text.text for text in root.iter(f"{SVG}text")] == ["Nothing to draw yet"]


async def test_the_charts_draw_the_numbers_of_the_figures(publisher: Publisher, client: TestClient) -> None:
    await some_mail_sent(publisher)
    visitor = await signed_in(publisher, client)
    now = clock.now()

    shown = await figures.subscribers(publisher.engine, now)
    root = ET.fromstring(await (await visitor.get("/admin/charts/subscribers.svg")).read())
    assert series(root)["0"] == [f"{shown.by_status[status]:,}" for status in sorted(shown.by_status)]
    assert sorted(shown.by_status) == ["active", "pending"]

    root = ET.fromstring(await (await visitor.get("/admin/charts/growth.svg")).read())
    drawn = series(root)
    assert [int(v.replace(",", "")) for v in drawn["confirmed"]] == [c.confirmed for c in shown.changes]
    assert [int(v.replace(",", "")) for v in drawn["pending"]] == [c.pending for c in shown.changes]
    assert sum(int(v) for v in drawn["confirmed"]) == 3 and sum(int(v) for v in drawn["pending"]) == 1

    hours = await figures.messages_per_hour(publisher.engine, now)
    root = ET.fromstring(await (await visitor.get("/admin/charts/messages.svg")).read())
    drawn = series(root)
    assert list(drawn) == ["sent", "deferred", "failed", "cancelled"]
    assert [int(v.replace(",", "")) for v in drawn["sent"]] == [by.get("sent", 0) for _, by in hours]
    assert sum(by.get("sent", 0) for _, by in hours) == 3


async def test_the_overview_shows_each_chart_beside_its_table(publisher: Publisher, client: TestClient) -> None:
    """An ``<img>`` per chart (the queue's only while a digest is being sent or paused), its
    alt saying what it shows and where its numbers are, under its own visible title (no two
    alike: the complaints and hard bounces share a table), in the same pair as its table."""
    visitor = await signed_in(publisher, client)
    page = lxml.html.fromstring(await (await visitor.get("/admin/")).text())
    images = {img.get("src"): img for img in page.iter("img")}
    expected = [path for path in chart_paths() if not path.endswith("/queue.svg")]
    assert sorted(images) == sorted(expected)
    for path in expected:
        img = images[path]
        name = re.sub(r".*/(.*)\.svg", r"\1", path)
        assert img.get("alt") == charts.CHARTS[name].alt
        assert img.get("alt", "").endswith("; the numbers are in the table next to it")
        figure = img.getparent()
        assert figure.tag == "figure" and figure.findtext("figcaption") == charts.CHARTS[name].title, path
        pair = next(parent for parent in img.iterancestors() if "figure-pair" in parent.get("class", ""))
        assert len(list(pair.iter("table"))) == 1, path
        assert img.get("width") == str(charts.WIDTH) and img.get("height") == str(charts.HEIGHT)
    titles = [chart.title for chart in charts.CHARTS.values()]
    assert len(set(titles)) == len(titles)
