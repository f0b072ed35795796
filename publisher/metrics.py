"""Prometheus metrics: one registry owned by this module, small typed functions to record.

The rest of the code calls the functions below (never the metric objects), so names,
labels and their allowed values live in one place and cardinality stays bounded:
every label takes one of a few fixed values, and an unknown one is a ``ValueError``
rather than a new time series.  ``GET /metrics`` serves :func:`render`.

The registry is this module's own, not prometheus_client's global default, so a test
reads exactly what publisher recorded (``REGISTRY.get_sample_value(...)``) and a
library that registers metrics globally doesn't leak into the scrape.

What is exported (all names start with ``publisher_``):

========================================  =========  =====================================
metric                                    type       meaning
========================================  =========  =====================================
articles_published_total                  counter    new articles stored by a scan
digests_total{cadence}                    counter    digests planned (instant|daily|weekly)
messages_total{state}                     counter    ledger outcomes: sent|deferred|failed|cancelled
send_rate                                 gauge      messages/s of the current (or last) delivery run
queue_depth                               gauge      ledger rows due now (refreshed on each scrape)
scan_duration_seconds                     histogram  duration of a content scan
feed_requests_total{status}               counter    feed responses: 200|304|404
========================================  =========  =====================================

The share of feed requests answered "not modified" is left to Prometheus::

    sum(rate(publisher_feed_requests_total{status="304"}[5m]))
      / sum(rate(publisher_feed_requests_total{status=~"200|304"}[5m]))

Feed requests are counted in plain integers and turned into a counter only when
scraped (:class:`_FeedRequests`): the feed route answers a request in about 25 µs and
a prometheus_client counter's lock and label lookup would be a measurable share of it.
They are incremented only from the event loop's thread.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CADENCES = ("instant", "daily", "weekly")
MESSAGE_STATES = ("sent", "deferred", "failed", "cancelled")
FEED_STATUSES = (200, 304, 404)
# From a few files on a fast disk to a large directory or a slow network share.
SCAN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

REGISTRY = CollectorRegistry(auto_describe=True)

_ARTICLES = Counter(
    "publisher_articles_published", "New articles stored by a scan.", registry=REGISTRY
)
_DIGESTS = Counter(
    "publisher_digests", "Digests planned, by cadence.", ["cadence"], registry=REGISTRY
)
_MESSAGES = Counter(
    "publisher_messages", "Delivery outcomes written to the ledger, by state.", ["state"], registry=REGISTRY
)
_SEND_RATE = Gauge(
    "publisher_send_rate", "Messages per second of the current or last delivery run.", registry=REGISTRY
)
_QUEUE_DEPTH = Gauge(
    "publisher_queue_depth", "Ledger rows due now (pending, interrupted or deferred past their retry time).",
    registry=REGISTRY,
)
_SCAN_DURATION = Histogram(
    "publisher_scan_duration_seconds", "Duration of a content scan.", buckets=SCAN_BUCKETS, registry=REGISTRY
)

# Every allowed label value exists from the start, so a rate() over it has a zero to
# start from instead of a missing series.
for _cadence in CADENCES:
    _DIGESTS.labels(cadence=_cadence)
for _state in MESSAGE_STATES:
    _MESSAGES.labels(state=_state)


class _FeedRequests(Collector):
    """``publisher_feed_requests_total{status}`` from plain integer counts."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(FEED_STATUSES, 0)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "publisher_feed_requests", "Feed responses by status (200, 304 not modified, 404).", labels=["status"]
        )
        for status, count in self.counts.items():
            family.add_metric([str(status)], count)
        yield family


_FEED_REQUESTS = _FeedRequests()
REGISTRY.register(_FEED_REQUESTS)
_feed_counts = _FEED_REQUESTS.counts


def _check(value: str, allowed: tuple[str, ...], label: str) -> str:
    if value not in allowed:
        raise ValueError(f"{label} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def articles_published(n: int = 1) -> None:
    """``n`` new articles were stored (edits of known articles are not counted)."""
    if n:
        _ARTICLES.inc(n)


def digest_planned(cadence: str) -> None:
    """One digest of ``cadence`` (instant, daily or weekly; a ``Cadence`` works too) was planned."""
    _DIGESTS.labels(cadence=_check(str(cadence), CADENCES, "cadence")).inc()


def messages(state: str, n: int = 1) -> None:
    """``n`` ledger rows reached ``state``: sent, deferred, failed or cancelled."""
    if n:
        _MESSAGES.labels(state=_check(state, MESSAGE_STATES, "state")).inc(n)


def send_rate(value: float) -> None:
    """Messages per second of the delivery run in progress (or the last one)."""
    _SEND_RATE.set(value)


def queue_depth(n: int) -> None:
    """How many ledger rows are due now (``publisher.delivery.ledger.due_count``)."""
    _QUEUE_DEPTH.set(n)


def scan_finished(seconds: float) -> None:
    """A content scan took ``seconds``."""
    _SCAN_DURATION.observe(seconds)


def feed_request(status: int) -> None:
    """A feed request was answered with ``status`` (200, 304 or 404).

    Called on the event loop's thread only (a plain integer increment, no lock).
    """
    try:
        _feed_counts[status] += 1
    except KeyError:
        raise ValueError(f"feed status must be one of {FEED_STATUSES}, not {status!r}") from None


def render() -> tuple[bytes, str]:
    """The registry in Prometheus' text format: ``(body, content type)``."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
