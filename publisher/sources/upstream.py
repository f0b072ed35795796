"""Fetching an upstream feed politely, so a blog we follow never has a reason to block us.

:class:`FeedFetcher` is the I/O edge around :func:`~publisher.content.upstream.parse_feed`:

* a conditional GET (``If-None-Match`` / ``If-Modified-Since``): an unchanged feed
  costs the blog a 304 and us no parsing;
* limits on time, size and redirects, because the far side is not ours: a stalled or
  huge response must not hold a worker or the memory;
* failures come back as a :class:`FetchResult`, never as an exception, with a
  ``retry_at`` that backs off exponentially (with jitter, so many feeds do not retry
  in step) and honours ``Retry-After``;
* an optional JSON state file keeps the validators and ``retry_at`` across restarts;
* a 200 whose items are unchanged since the last (a server that ignores conditional
  GET) parses only the feed, not the items: their articles are reused (in memory,
  :class:`~publisher.content.upstream.ParsedItems`).

The validators of a 200 are only remembered when the caller :meth:`~FeedFetcher.commit`\\ s
the result, after it has stored the articles: were they remembered at once, a crash or
a failed database write in between would get a 304 next time, and the new articles
would never be read.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp

from publisher.content.upstream import FeedScan, ParsedItems, parse_feed
from publisher import __version__
from publisher import clock as publisher_clock
from publisher.content.model import ContentLimits
from publisher.delivery.pacing import Backoff

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_MAX_RETRY_AFTER = 24 * 3600.0  # a server asking for more is misconfigured, not a reason to stop for good
_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"


def user_agent(site_url: str) -> str:
    """``publisher/<version> (+<site url>)``: tells a blog's operator who we are and where to ask."""
    return f"publisher/{__version__} (+{site_url})"


@dataclass(frozen=True, slots=True)
class Validators:
    """The ``ETag`` and ``Last-Modified`` of a 200, sent back to ask "changed since?"."""

    etag: str = ""
    last_modified: str = ""

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch gave: articles (200), "unchanged" (304) or an error with ``retry_at``."""

    url: str  # after redirects
    status: int | None = None  # HTTP status of the final response; None when none came
    scan: FeedScan | None = None  # on a 200 that was a feed
    validators: Validators = Validators()  # of this 200; commit() makes the next fetch send them
    error: str = ""
    retry_at: datetime | None = None  # on errors: do not fetch before

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def unchanged(self) -> bool:
        return self.ok and self.status == 304


class _Failure(Exception):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class FeedFetcher:
    """Fetches one feed URL; one ``fetch()`` at a time (the scheduler runs a job once at a time).

    ``session``: a shared :class:`aiohttp.ClientSession`, else one is created and
    closed by :meth:`close` (or ``async with``).  ``interval``: the least time between
    two successful fetches that :meth:`due` enforces (0: only the backoff counts).
    ``clock`` and ``rng`` are there for tests.
    """

    def __init__(
        self,
        url: str,
        *,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
        state_path: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        interval: float = 0.0,
        backoff_base: float = 60.0,
        backoff_limit: float = 3600.0,
        clock: Callable[[], datetime] = lambda: publisher_clock.now(),
        rng: random.Random | None = None,
        limits: ContentLimits = ContentLimits(),
    ) -> None:
        self.url = url
        self.limits = limits  # what an item may hold (the intake sets it anew after a reload)
        self._user_agent = user_agent
        self._session = session
        self._owns_session = session is None
        self._state_path = state_path
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._interval = timedelta(seconds=interval)
        self._backoff = Backoff(backoff_base, backoff_limit)
        self._clock = clock
        self._rng = rng or random.Random()
        self._validators = Validators()
        self._retry_at: datetime | None = None  # after a failure
        self._next_at: datetime | None = None  # after a success, when interval > 0
        self._items = ParsedItems()  # the last 200's articles: an unchanged item is not parsed again
        self._load_state()

    @property
    def validators(self) -> Validators:
        """What the next request sends (the last committed 200's)."""
        return self._validators

    @property
    def retry_at(self) -> datetime | None:
        return self._retry_at

    def due(self, now: datetime) -> bool:
        """May the caller fetch now?  Not while backing off, nor within ``interval`` of a success."""
        not_before = self._retry_at or self._next_at
        return not_before is None or now >= not_before

    async def fetch(self) -> FetchResult:
        """GET the feed (conditionally); never raises, except on cancellation."""
        now = self._clock()
        try:
            result = await self._get(now)
        except _Failure as failure:
            return self._failed(now, failure)
        except aiohttp.TooManyRedirects:
            return self._failed(now, _Failure(f"more than {self._max_redirects} redirects"))
        except aiohttp.ConnectionTimeoutError:
            return self._failed(now, _Failure(f"no connection within {self._timeout.connect:g} s"))
        except TimeoutError:
            return self._failed(now, _Failure(f"no complete response within {self._timeout.total:g} s"))
        except aiohttp.ClientError as exc:
            return self._failed(now, _Failure(f"network error: {exc or type(exc).__name__}"))
        except Exception as exc:  # fetch() never raises: a bug here must not stop the other sources
            log.exception("fetching %s failed unexpectedly", self.url)
            return self._failed(now, _Failure(f"unexpected error: {type(exc).__name__}: {exc}"))
        self._backoff.reset()
        self._next_at = now + self._interval if self._interval else None
        if self._retry_at is not None:
            self._retry_at = None
            self._save_state()
        return result

    def commit(self, result: FetchResult) -> None:
        """Remember the validators of a 200 once its articles are safely stored (see the module doc)."""
        if result.ok and result.status == 200 and result.validators != self._validators:
            self._validators = result.validators
            self._save_state()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- HTTP ---------------------------------------------------------------------------

    async def _get(self, now: datetime) -> FetchResult:
        if self._session is None:
            # No cookies: a feed needs none, and a jar would only grow.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        headers = {"User-Agent": self._user_agent, "Accept": _ACCEPT, **self._validators.request_headers()}
        async with self._session.get(
            self.url,
            headers=headers,
            timeout=self._timeout,
            allow_redirects=self._max_redirects > 0,
            max_redirects=self._max_redirects + 1,  # aiohttp fails on the Nth redirect, we allow N
        ) as response:
            final_url = str(response.url)
            if response.status == 304:
                return FetchResult(final_url, 304, validators=self._validators)
            if response.status != 200:
                throttled = response.status in {429, 503}
                retry_after = _retry_after(response.headers.get("Retry-After"), now) if throttled else None
                status = f"HTTP {response.status} {response.reason or ''}".rstrip()
                raise _Failure(status, response.status, retry_after)
            body = await self._read(response)
            validators = Validators(response.headers.get("ETag", ""), response.headers.get("Last-Modified", ""))
            content_type = response.headers.get("Content-Type", "")
        # Parsing a large feed takes a while: off the event loop, which also serves the web.
        scan = await asyncio.to_thread(
            parse_feed, body, final_url, now=now, content_type=content_type, limits=self.limits, items=self._items
        )
        if not scan.is_feed:
            raise _Failure(scan.problems[0].message if scan.problems else "not a feed", 200)
        return FetchResult(final_url, 200, scan, validators)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, chunk by chunk, giving up (and dropping the connection) past ``max_bytes``.

        The limit counts decompressed bytes, so a small gzip bomb is stopped too.
        """
        limit = f"the {self._max_bytes:,} byte limit"
        if response.content_length is not None and response.content_length > self._max_bytes:
            response.close()
            raise _Failure(f"response of {response.content_length:,} bytes is larger than {limit}", 200)
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self._max_bytes:
                response.close()
                raise _Failure(f"response is larger than {limit}", 200)
        return bytes(body)

    def _failed(self, now: datetime, failure: _Failure) -> FetchResult:
        """Back off: half the exponential pause plus a random part of the other half, or Retry-After if longer."""
        pause = self._backoff.next_pause()
        wait = max(pause / 2 + self._rng.uniform(0, pause / 2), failure.retry_after or 0.0)
        self._retry_at = now + timedelta(seconds=wait)
        self._next_at = None
        self._save_state()
        return FetchResult(self.url, failure.status, error=failure.message, retry_at=self._retry_at)

    # --- state file ---------------------------------------------------------------------

    def _load_state(self) -> None:
        """Read the state file if there is one for this URL; a bad file only costs politeness."""
        if self._state_path is None or not self._state_path.exists():
            return
        try:
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
            if state.get("url") != self.url:  # the config now names another feed
                return
            self._validators = Validators(str(state.get("etag") or ""), str(state.get("last_modified") or ""))
            if retry_at := state.get("retry_at"):
                moment = datetime.fromisoformat(retry_at)
                self._retry_at = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("ignoring feed state file %s: %s", self._state_path, exc)

    def _save_state(self) -> None:
        """Write the state file atomically (a crash never leaves half a file)."""
        if self._state_path is None:
            return
        state = {
            "url": self.url,
            "etag": self._validators.etag,
            "last_modified": self._validators.last_modified,
            "retry_at": self._retry_at.isoformat() if self._retry_at else None,
        }
        temporary = self._state_path.with_name(self._state_path.name + ".tmp")
        try:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, self._state_path)
        except OSError as exc:
            log.warning("cannot write feed state file %s: %s", self._state_path, exc)


def _retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds, given as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now.timestamp()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)
