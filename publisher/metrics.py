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
provider_messages{provider,state}         gauge      messages of the digests not finished, by mailbox
                                                     provider and ledger state (refreshed on a scrape)
provider_paused{provider}                 gauge      1 while a circuit breaker keeps a provider paused, 0 once
                                                     resumed (refreshed on a scrape)
========================================  =========  =====================================

The share of feed requests answered "not modified" is left to Prometheus::

    sum(rate(publisher_feed_requests_total{status="304"}[5m]))
      / sum(rate(publisher_feed_requests_total{status=~"200|304"}[5m]))

``provider`` takes the names of the provider table (:mod:`publisher.delivery.providers`:
the built-in ones, ``[providers]`` and ``other``), so it is bounded by the config.

Every figure is kept in plain numbers here and turned into prometheus_client's metric
families only when scraped (:class:`_Collector`): prometheus_client (about 2 MB and
50 ms of imports) is loaded by the first :func:`render` or read of ``REGISTRY``, so a
``publisher send`` from cron never loads it, and a recorded figure costs an integer
addition instead of a counter's lock and label lookup (the feed route answers in
about 25 µs).  The functions are called from the event loop's thread only.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

CADENCES = ("instant", "daily", "weekly")
MESSAGE_STATES = ("sent", "deferred", "failed", "cancelled")
LEDGER_STATES = ("pending", "sending", *MESSAGE_STATES)
FEED_STATUSES = (200, 304, 404)
# From a few files on a fast disk to a large directory or a slow network share.
SCAN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# Every allowed label value exists from the start, so a rate() over it has a zero to
# start from instead of a missing series.
_articles = 0
_digests = dict.fromkeys(CADENCES, 0)
_messages = dict.fromkeys(MESSAGE_STATES, 0)
_feed_counts = dict.fromkeys(FEED_STATUSES, 0)
_send_rate = 0.0
_queue_depth = 0
_scan_buckets = [0] * (len(SCAN_BUCKETS) + 1)  # per bucket, not cumulative; the last one is +Inf
_scan_sum = 0.0
_provider_messages: dict[str, dict[str, int]] = {}  # provider → ledger state → messages
_provider_paused: dict[str, bool] = {}  # provider → paused now (providers ever paused)


class _Collector:
    """Every ``publisher_`` family, from this module's plain numbers (see the module's docstring)."""

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        yield CounterMetricFamily("publisher_articles_published", "New articles stored by a scan.", value=_articles)
        yield _labelled("publisher_digests", "Digests planned, by cadence.", "cadence", _digests)
        yield _labelled("publisher_messages", "Delivery outcomes written to the ledger, by state.", "state", _messages)
        yield GaugeMetricFamily(
            "publisher_send_rate", "Messages per second of the current or last delivery run.", value=_send_rate
        )
        yield GaugeMetricFamily(
            "publisher_queue_depth",
            "Ledger rows due now (pending, interrupted or deferred past their retry time).", value=_queue_depth,
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, SCAN_BUCKETS), "+Inf"), _scan_buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "publisher_scan_duration_seconds", "Duration of a content scan.", buckets=buckets, sum_value=_scan_sum
        )
        yield _labelled(
            "publisher_feed_requests", "Feed responses by status (200, 304 not modified, 404).", "status", _feed_counts
        )
        by_provider = GaugeMetricFamily(
            "publisher_provider_messages",
            "Messages of the digests not finished, by mailbox provider and ledger state.", labels=["provider", "state"],
        )
        for provider, counts in _provider_messages.items():
            for state, count in counts.items():
                by_provider.add_metric([provider, state], count)
        yield by_provider
        paused = GaugeMetricFamily(
            "publisher_provider_paused", "1 while a circuit breaker keeps a mailbox provider paused, 0 once resumed.",
            labels=["provider"],
        )
        for provider, is_paused in _provider_paused.items():
            paused.add_metric([provider], int(is_paused))
        yield paused


def _labelled(name: str, documentation: str, label: str, counts: dict[str, int] | dict[int, int]) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in counts.items():
        family.add_metric([str(value)], count)
    return family


_registry: CollectorRegistry | None = None


def __getattr__(name: str) -> object:
    """``REGISTRY``: the registry, made (and prometheus_client imported) when first read."""
    global _registry
    if name != "REGISTRY":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _registry is None:
        from prometheus_client import CollectorRegistry

        _registry = CollectorRegistry(auto_describe=True)
        _registry.register(_Collector())  # type: ignore[arg-type]  # a Collector by its collect()
    return _registry


def _check(value: str, allowed: tuple[str, ...], label: str) -> str:
    if value not in allowed:
        raise ValueError(f"{label} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def articles_published(n: int = 1) -> None:
    """``n`` new articles were stored (edits of known articles are not counted)."""
    global _articles
    _articles += n


def digest_planned(cadence: str) -> None:
    """One digest of ``cadence`` (instant, daily or weekly; a ``Cadence`` works too) was planned."""
    _digests[_check(str(cadence), CADENCES, "cadence")] += 1


def messages(state: str, n: int = 1) -> None:
    """``n`` ledger rows reached ``state``: sent, deferred, failed or cancelled."""
    _messages[_check(state, MESSAGE_STATES, "state")] += n


def send_rate(value: float) -> None:
    """Messages per second of the delivery run in progress (or the last one)."""
    global _send_rate
    _send_rate = value


def queue_depth(n: int) -> None:
    """How many ledger rows are due now (``publisher.delivery.ledger.due_count``)."""
    global _queue_depth
    _queue_depth = n


def scan_finished(seconds: float) -> None:
    """A content scan took ``seconds``."""
    global _scan_sum
    _scan_buckets[bisect.bisect_left(SCAN_BUCKETS, seconds)] += 1
    _scan_sum += seconds


def feed_request(status: int) -> None:
    """A feed request was answered with ``status`` (200, 304 or 404)."""
    try:
        _feed_counts[status] += 1
    except KeyError:
        raise ValueError(f"feed status must be one of {FEED_STATUSES}, not {status!r}") from None


def provider_messages(counts: dict[str, dict[str, int]]) -> None:
    """The messages of the digests not finished, by provider and ledger state (replaces the last
    figures: a provider whose digests finished drops out)."""
    global _provider_messages
    for by_state in counts.values():
        for state in by_state:
            _check(state, LEDGER_STATES, "state")
    _provider_messages = counts


def provider_pauses(paused: dict[str, bool]) -> None:
    """Which providers a breaker paused (True) or that were resumed (False); replaces the last figures."""
    global _provider_paused
    _provider_paused = dict(paused)


def render() -> tuple[bytes, str]:
    """The registry in Prometheus' text format: ``(body, content type)``."""
    from prometheus_client import generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return generate_latest(__getattr__("REGISTRY")), CONTENT_TYPE_LATEST
