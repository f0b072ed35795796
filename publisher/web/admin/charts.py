"""The overview's charts: SVG drawn on the server by pygal, each at its own guarded URL.

Why pygal: it draws on the server (no script in the browser, so the dashboard's
Content-Security-Policy stays as strict as the public pages'), it is pure Python, it is
kept up (Kozea, LGPL), and its output goes through lxml, which escapes every label as
XML text: a provider or digest named ``<script>"&`` is drawn as those characters.

Why an ``<img>`` (``GET /admin/charts/<name>.svg``) rather than the SVG inline in the
page: a chart needs its own ``<style>``, which the page's CSP (``style-src 'self'``)
refuses inline; as an image it is a document of its own, in which nothing runs and
nothing is fetched, and the page keeps its CSP unchanged.  The chart's response carries
the page CSP too, with its ``<style>`` allowed by hash (and nothing else), so a chart
opened on its own is drawn as in the page.  Each ``<img>`` has an ``alt`` saying what it
shows and that the numbers are in the table next to it: the tables stay the accessible
figures.  Each chart's title is the page's text (a ``<figcaption>`` above the image), not
pygal's: it reads in the page's font and scheme, and tells apart charts that share a
table (complaints and hard bounces, beside the providers' table).

pygal links its tooltip script and writes its config in a ``<script>`` by default:
``js=()`` drops the first, :func:`_scrubbed` the second (and pygal's comments), so a
chart holds no script at all.  Its background is transparent and its colours have a
contrast of 3:1 or more with both schemes' backgrounds; its text follows the reader's
scheme (an ``@media (prefers-color-scheme: dark)`` block, which an image follows too).

Every chart reads the same :mod:`publisher.admin.figures` functions as the tables
beside it; drawing one is a few milliseconds (``bench/dashboard.py`` times each).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from publisher import clock, urls
from publisher.admin.model import Role, Session
from publisher.metrics import LEDGER_STATES, MESSAGE_STATES
from publisher.web.admin import gate
from publisher.web.keys import PUBLISHER
from publisher.web.security import PAGE_CSP

if TYPE_CHECKING:
    from publisher.admin import figures
    from publisher.app import Publisher

WIDTH, HEIGHT = 640, 360  # the drawing's units; the page scales it to its column
TOP_PROVIDERS = 12  # the providers drawn (most messages sent first); the table lists them all
FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif'  # the site's
# Each at 3:1 or more against both the light (#ffffff) and the dark (#12171d) page background.
COLOURS = {
    "sent": "#3a8a5c", "active": "#3a8a5c", "confirmed": "#3a8a5c",
    "pending": "#2e86c1", "sending": "#8a5cc2",
    "deferred": "#b7791f", "complained": "#cc6a00",
    "failed": "#d64545", "bounced": "#d64545", "left": "#d64545",
    "cancelled": "#808891", "unsubscribed": "#808891",
    "complaints": "#cc6a00", "hard bounces": "#d64545",
}
# The text and lines follow the page's scheme (site.css's --fg and --muted of each).
_CSS = """
text, .title, .legends .legend text, .axis text, .axis text.major, text.no_data { fill: #1f2933 !important; }
.axis .line, .axis .guide.line { stroke: #52606d !important; }
@media (prefers-color-scheme: dark) {
  text, .title, .legends .legend text, .axis text, .axis text.major, text.no_data { fill: #e4e7eb !important; }
  .axis .line, .axis .guide.line { stroke: #a7b1bc !important; }
}
"""
# A threshold (the rates' charts: their only major guides) is a red dashed line with a bold label.
_THRESHOLD_CSS = """
.axis .major.guide.line { stroke: #d64545 !important; stroke-width: 2; stroke-dasharray: 8,4; }
.axis text.major { font-weight: 700; }
"""


@dataclass(frozen=True)
class Drawing:
    """A chart's SVG, and the hash its ``<style>`` is allowed by in the response's CSP."""

    svg: bytes
    style_hash: str  # "sha256-<base64>", as a CSP source names it

    @property
    def csp(self) -> str:
        """The page CSP, with this drawing's own ``<style>`` allowed by its hash alone."""
        return PAGE_CSP.replace("style-src 'self'", f"style-src 'self' '{self.style_hash}'", 1)


def _scrubbed(styles: list[str]) -> Callable[[Any], Any]:
    """An lxml filter for pygal: drop every ``<script>``, comment and processing instruction,
    the tooltips (shown by its script only) and ``style`` attributes (the CSP's hash allows
    the ``<style>`` element, no attribute); keep the ``<style>``'s text for its hash."""

    def scrub(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                tag = child.tag if isinstance(child.tag, str) else ""
                local = tag.rsplit("}", 1)[-1]
                if local == "script" or not tag or "tooltip-overlay" in child.get("class", ""):
                    parent.remove(child)
                elif local == "style":
                    styles.append(child.text or "")
            parent.attrib.pop("style", None)
        if not root.get("id"):
            root.attrib.pop("id", None)
        return root

    return scrub


def _chart(kind: str, colours: Sequence[str], styles: list[str], *, thresholds: bool = False, **options: Any) -> Any:
    """A pygal chart of ``kind`` (a class name) in the dashboard's look, without any script."""
    import pygal
    from pygal.style import Style

    style = Style(
        background="transparent", plot_background="transparent", font_family=FONT, colors=tuple(colours),
        label_font_size=16, major_label_font_size=16, legend_font_size=16, value_font_size=16, no_data_font_size=22,
        opacity="1", opacity_hover="1",
    )
    config = {
        "width": WIDTH, "height": HEIGHT, "style": style, "js": (), "no_prefix": True, "margin": 8, "margin_right": 28,
        "css": ("file://style.css", "file://graph.css", "inline:" + _CSS + (_THRESHOLD_CSS if thresholds else "")),
        "legend_at_bottom": True, "legend_at_bottom_columns": min(3, len(colours)), "show_x_guides": False,
        "truncate_label": 24, "truncate_legend": 24, "no_data_text": "Nothing to draw yet", "print_values": False,
    } | options
    return getattr(pygal, kind)(**config).add_xml_filter(_scrubbed(styles))


def _render(chart: Any, styles: list[str]) -> Drawing:
    if not chart.raw_series:  # no axes around "Nothing to draw yet" (and pygal can't place labels on none)
        chart.show_x_labels = chart.show_y_labels = chart.show_y_guides = False
        chart.y_labels = None
    svg = chart.render()
    digest = hashlib.sha256("".join(styles).encode()).digest()
    return Drawing(svg, "sha256-" + base64.b64encode(digest).decode())


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _count_axis(top: int) -> dict[str, Any]:
    """A count axis from 0 past ``top`` in at most six whole steps of 1, 2 or 5 × 10ⁿ (pygal's
    own steps fall between whole numbers on small counts, drawn as repeated labels)."""
    magnitude = 1
    while True:
        for step in (magnitude, 2 * magnitude, 5 * magnitude):
            if top <= step * 6:
                end = max(step, -(-top // step) * step)
                return {"range": (0, end), "y_labels": list(range(0, end + 1, step)), "value_formatter": _count}
        magnitude *= 10


def _percent(value: float) -> str:
    return f"{value:.2f}%"


# --- the drawings: figures in, SVG out (pure) ---------------------------------------------

def draw_subscribers(found: figures.Subscribers) -> Drawing:
    """Subscribers by status now, a bar each."""
    styles: list[str] = []
    statuses = sorted(found.by_status)
    chart = _chart("HorizontalBar", [COLOURS["pending"]], styles, show_legend=False, x_labels=statuses,
                   **_count_axis(max(found.by_status.values(), default=0)))
    if statuses:
        chart.add("subscribers", [found.by_status[status] for status in statuses])
    return _render(chart, styles)


def draw_growth(found: figures.Subscribers) -> Drawing:
    """Per day, the new confirmed and pending subscribers and those who left, stacked."""
    styles: list[str] = []
    changes = found.changes
    series = (("confirmed", [c.confirmed for c in changes]), ("pending", [c.pending for c in changes]),
              ("left", [c.left for c in changes]))
    chart = _chart("StackedBar", [COLOURS[name] for name, _ in series], styles,
                   **_count_axis(max((c.confirmed + c.pending + c.left for c in changes), default=0)),
                   x_labels=[c.day.strftime("%m-%d") for c in changes], x_labels_major_every=7,
                   show_minor_x_labels=False)
    if any(c.confirmed or c.pending or c.left for c in changes):
        for name, values in series:
            chart.add(name, values)
    return _render(chart, styles)


def draw_messages(hours: list[tuple[datetime, dict[str, int]]]) -> Drawing:
    """Per hour, the messages by outcome, stacked."""
    styles: list[str] = []
    chart = _chart("StackedBar", [COLOURS[state] for state in MESSAGE_STATES], styles,
                   **_count_axis(max((sum(by.get(s, 0) for s in MESSAGE_STATES) for _, by in hours), default=0)),
                   x_labels=[hour.strftime("%H:00") for hour, _ in hours], x_labels_major_every=6,
                   show_minor_x_labels=False)
    if any(by for _, by in hours):
        for state in MESSAGE_STATES:
            chart.add(state, [by.get(state, 0) for _, by in hours])
    return _render(chart, styles)


def draw_queue(found: figures.Queue) -> Drawing:
    """Each digest being sent or paused: its messages by state, stacked (its progress)."""
    styles: list[str] = []
    top = max((sum(digest.by_state.values()) for digest in found.digests), default=0)
    chart = _chart("HorizontalStackedBar", [COLOURS[state] for state in LEDGER_STATES], styles, **_count_axis(top),
                   x_labels=[digest.id for digest in found.digests])
    if found.digests:
        for state in LEDGER_STATES:
            chart.add(state, [digest.by_state.get(state, 0) for digest in found.digests])
    return _render(chart, styles)


def draw_rates(found: figures.Rates, which: str) -> Drawing:
    """``which`` ("complaints" or "hard bounces") per provider, in percent of the messages
    sent, with the breakers' warning and pause thresholds drawn across."""
    styles: list[str] = []
    providers = found.providers[:TOP_PROVIDERS]
    if not providers:
        return _render(_chart("HorizontalBar", [COLOURS[which]], styles, show_legend=False), styles)
    rate = "complaint_rate" if which == "complaints" else "hard_bounce_rate"
    values = [getattr(p, rate) * 100 for p in providers]
    thresholds: list[tuple[str, float]] = []
    if found.breakers is not None:
        attribute = "complaints" if which == "complaints" else "hard_bounces"
        thresholds = [(level, getattr(found.breakers, f"{attribute}_{level}") * 100) for level in ("warn", "pause")]
        thresholds = [(level, value) for level, value in thresholds if value]
    top = max([*values, *(value for _, value in thresholds), 0.01]) * 1.15
    marks = [{"label": f"{level} {_percent(value)}", "value": value} for level, value in thresholds]
    # Evenly spaced ticks, but none so close to a threshold that their labels would overlap.
    ticks = [{"label": _percent(top * i / 4), "value": top * i / 4} for i in range(5)]
    ticks = [tick for tick in ticks if all(abs(tick["value"] - mark["value"]) > top / 5 for mark in marks)]
    chart = _chart("HorizontalBar", [COLOURS[which]], styles, thresholds=bool(marks), show_legend=False,
                   value_formatter=_percent, range=(0, top), x_labels=[p.provider for p in providers],
                   y_labels=sorted(ticks + marks, key=lambda label: label["value"]),
                   y_labels_major=[mark["value"] for mark in marks] or None)
    chart.add(which, values)
    return _render(chart, styles)


# --- the charts' URLs --------------------------------------------------------------------

@dataclass(frozen=True)
class Chart:
    """One chart: its visible title, what its ``<img alt>`` says, and how it is read and drawn."""

    title: str
    alt: str
    draw: Callable[[Publisher, datetime], Awaitable[Drawing]]


async def _subscribers(publisher: Publisher, now: datetime) -> Drawing:
    from publisher.admin import figures

    return draw_subscribers(await figures.subscribers(publisher.engine, now))


async def _growth(publisher: Publisher, now: datetime) -> Drawing:
    from publisher.admin import figures

    return draw_growth(await figures.subscribers(publisher.engine, now))


async def _messages(publisher: Publisher, now: datetime) -> Drawing:
    from publisher.admin import figures

    return draw_messages(await figures.messages_per_hour(publisher.engine, now))


async def _queue(publisher: Publisher, now: datetime) -> Drawing:
    from publisher.admin import figures

    return draw_queue(await figures.queue(publisher.engine))


def _rates(which: str) -> Callable[[Publisher, datetime], Awaitable[Drawing]]:
    async def draw(publisher: Publisher, now: datetime) -> Drawing:
        from publisher.admin import figures

        return draw_rates(await figures.provider_rates(publisher.engine, publisher.providers, publisher.settings, now),
                          which)

    return draw


_BESIDE = "; the numbers are in the table next to it"
CHARTS: dict[str, Chart] = {
    "subscribers": Chart("Subscribers by status", "Bar chart of subscribers by status now" + _BESIDE, _subscribers),
    "growth": Chart("Changes per day, last 30 days",
                    "Stacked bar chart of new confirmed and pending subscribers and of those who left, per day "
                    "over the last 30 days" + _BESIDE, _growth),
    "messages": Chart("Messages per hour by outcome, last 48 hours",
                      "Stacked bar chart of messages per hour by outcome over the last 48 hours" + _BESIDE, _messages),
    "queue": Chart("Progress of each digest being sent or paused",
                   "Stacked bar chart of each digest being sent or paused, its messages by state" + _BESIDE, _queue),
    "complaints": Chart("Complaint rate per provider",
                        "Bar chart of the complaint rate per provider against the breakers' thresholds" + _BESIDE,
                        _rates("complaints")),
    "hard-bounces": Chart("Hard-bounce rate per provider",
                          "Bar chart of the hard-bounce rate per provider against the breakers' thresholds" + _BESIDE,
                          _rates("hard bounces")),
}


def _handler(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    chart = CHARTS[name]

    async def handler(request: web.Request, session: Session) -> web.StreamResponse:
        drawing = await chart.draw(request.app[PUBLISHER], clock.now())
        headers = {**gate.NO_STORE, "Content-Security-Policy": drawing.csp}
        return web.Response(body=drawing.svg, content_type="image/svg+xml", headers=headers)

    handler.__name__ = handler.__qualname__ = f"chart_{name.replace('-', '_')}"
    handler.__doc__ = f"The overview's chart {name!r}: {chart.alt.split(';')[0]}."
    return gate.guarded(Role.VIEWER)(handler)


def add_chart_routes(app: web.Application) -> None:
    """A plain route per chart (``/admin/charts/<name>.svg``): each is a page of its own to
    the router, the gate's tests and the benchmark."""
    for name in CHARTS:
        app.router.add_get(urls.ADMIN_CHART.fixed(chart=name), _handler(name))
