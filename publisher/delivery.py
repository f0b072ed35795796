"""Fan-out: turn ledger rows into messages, over several reused SMTP connections.

For each unfinished digest the articles are rendered and CSS-inlined once, and the
MIME frame is encoded once (:class:`publisher.mail.message.DigestMessages`); each
recipient's message is then a join of bytes with their personal values.

The pipeline of one run::

    producer ──(bounded queue)──► N senders, one connection each ──► recorder
    claims ``batch_size`` due      pace (rate, window), build,        writes outcomes in
    rows at a time (keyset, SKIP   send, classify the reply           batches, releasing
    LOCKED: other nodes claim                                         the claims; tracks
    others), reads their                                              the error ratio
    statuses, queues them

Several processes, on one machine or several, can run this at once on PostgreSQL:
each claims its own rows (:func:`publisher.ledger.claim`) and renews the lease on
the rows it holds every third of ``[cluster] lease``, so rows are only taken over
from a node that stopped renewing (died, or lost the database).

Memory stays flat: at most one batch of rows and a queue of a few messages per
connection are in memory, whatever the list's size.  Outcomes are flushed every
``FLUSH_EVERY`` messages or ``FLUSH_SECONDS``; a crash leaves in ``sending`` only the
rows claimed but not yet recorded (one batch, the queue, the unflushed outcomes), and
only those that were really sent can go out twice.

Replies: 421/450/451/452/454 are throttling (the message is deferred and that
connection backs off; throttling never fails a message); other temporary failures
retry with exponential backoff and jitter up to ``max_attempts`` and ``max_age``; a
5xx fails the row with the server's reply, and counts as a bounce by the rules of
:func:`publisher.mail.bounces.smtp_reply_kind`: "no such user" (550/551/553, 5.1.x)
marks the subscriber bounced at once, "mailbox full" or a blocklist counts towards
``soft_bounce_limit``.  When more
than ``max_error_ratio`` of the last ``error_window`` messages failed, the digest
pauses with its reason until ``publisher resume``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jinja2
from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import ledger, metrics
from publisher.config import Settings
from publisher.digest import is_resend
from publisher.logs import digest_context
from publisher.mail.bounces import smtp_reply_kind
from publisher.mail.dkim import DkimSigner
from publisher.mail.message import DigestMessages
from publisher.mail.render import Personal, render_digest
from publisher.mail.transport import DeliveryError, Transport
from publisher.pacing import Backoff, Pacer
from publisher.store import digests as digest_store
from publisher.store.articles import UnreadableArticle
from publisher.templating import template_error
from subscribers import service
from subscribers.model import Cadence, Status
from subscribers.service import BounceKind
from subscribers.tokens import Purpose, Tokens

log = logging.getLogger(__name__)

THROTTLING = frozenset({421, 450, 451, 452, 454})
FLUSH_EVERY = 200  # outcomes per ledger transaction
FLUSH_SECONDS = 0.5
SEND_CHUNK = 10  # messages per queue hand-over
PROGRESS_SECONDS = 5.0
RECORD_RETRIES = (0.1, 1.0, 5.0)  # pauses before writing outcomes again after a database error

TransportFactory = Callable[[], Transport]


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    cancelled: int = 0
    finished: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    unreachable: str = ""  # why nothing was attempted: the transport could not be opened

    @property
    def handled(self) -> int:
        return self.sent + self.deferred + self.failed + self.cancelled


def personal_values(tokens: Tokens, site_url: str, subscriber_id: int, name: str, email: str) -> Personal:
    """A subscriber's own values in their copy of a digest: their name and signed links.

    The one recipe for them, for deliveries and for the operator's previews and test sends.
    """
    return Personal(
        name=name,
        email=email,
        unsubscribe_url=tokens.link(site_url, Purpose.UNSUBSCRIBE, subscriber_id, email),
        preferences_url=tokens.link(site_url, Purpose.PREFERENCES, subscriber_id, email),
    )


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Digest:
    """One digest being delivered in this run."""

    id: str
    created_at: datetime
    messages: Callable[[str], DigestMessages]  # by the subscriber's cadence
    errors: deque[bool]
    paused: bool = False


@dataclass
class _Item:
    digest: _Digest
    row: Row


class Deliverer:
    """Delivers every unfinished digest through ``concurrency`` transports of ``transports()``."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        env: jinja2.Environment,
        tokens: Tokens,
        transports: TransportFactory,
        *,
        clock: Callable[[], datetime] = _now,
        stop: asyncio.Event | None = None,
        progress: Callable[[DeliveryReport], None] | None = None,
        signer: DkimSigner | None = None,
        claimant: ledger.Claimant,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.env = env
        self.tokens = tokens
        self.transports = transports
        self.clock = clock
        self.stop = stop or asyncio.Event()
        self.progress = progress
        delivery = settings.delivery
        self.pacer = Pacer(delivery.rate, delivery.window_messages, delivery.window_seconds)
        self.signer = signer
        self.claimant = claimant
        self.report = DeliveryReport()
        self._held: dict[str, set[int]] = {}  # claimed rows not yet recorded, by digest
        self._pending: list[dict[str, object]] = []
        self._bounced: list[tuple[int, BounceKind]] = []
        self._started = self._last_flush = self._last_log = time.monotonic()
        self._flush_lock = asyncio.Lock()

    async def run(self, *, wait: bool = False) -> DeliveryReport:
        """Deliver every row due now; with ``wait``, also wait out deferrals (and other
        nodes' lapsed claims) until every digest is finished or paused (or ``stop`` is set)."""
        keeper = asyncio.create_task(self._keep_leases())
        try:
            await self._run(wait)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if self.report.handled:  # what this node did, in its own log (several nodes share digests)
            self._log_counts("delivery run ended")
        return self.report

    async def _run(self, wait: bool) -> None:
        while not self.stop.is_set():
            unfinished = await ledger.unfinished_digests(self.engine)
            if not unfinished:
                break
            await self._pass(unfinished)
            if not wait or self.stop.is_set():
                break
            due = await ledger.next_retry(self.engine, self.claimant)
            if due is None:
                continue  # nothing deferred: the next pass finishes what is left, or finds nothing
            delay = (due - self.clock()).total_seconds()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=delay)

    async def _keep_leases(self) -> None:
        """Renew the lease on the rows this run holds, three times per lease."""
        every = self.claimant.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            # Not while outcomes are written: two transactions of this run updating the
            # same rows in different orders deadlock (PostgreSQL then fails one of them).
            async with self._flush_lock:
                held = {digest: set(ids) for digest, ids in self._held.items() if ids}
                if not held:
                    continue
                try:
                    await ledger.renew(self.engine, held, self.clock(), self.claimant)
                except Exception:  # the database is away: the next renewal may succeed before the lease lapses
                    log.exception("delivery: could not renew the lease on %d rows", sum(map(len, held.values())))

    async def _pass(self, unfinished: list[Row]) -> None:
        """One pass over every unfinished digest: each due row is tried once."""
        queue: asyncio.Queue[list[_Item] | None] = asyncio.Queue(maxsize=self.settings.delivery.concurrency)
        senders = [asyncio.create_task(self._sender(queue)) for _ in range(self.settings.delivery.concurrency)]
        try:
            for row in unfinished:
                if self.stop.is_set():
                    break
                with digest_context(row.id):
                    digest = await self._prepare(row)
                    if digest is not None:
                        await self._produce(digest, queue)
        finally:
            for _ in senders:
                await queue.put(None)
            await asyncio.gather(*senders)
            await self._flush()
        for row in unfinished:
            with digest_context(row.id):
                if await ledger.finish_if_done(self.engine, row.id, self.clock()):
                    self.report.finished.append(row.id)
                    log.info("digest %s: finished", row.id)

    async def _prepare(self, row: Row) -> _Digest | None:
        try:
            stored = await digest_store.load(self.engine, row.id)
        except UnreadableArticle as exc:
            return await self._unrenderable(row.id, exc)
        if stored is None or not stored.articles:
            # Every article was taken down after planning: what is left can never be sent.
            reason = "every article in it was removed before it was sent"
            cancelled = await ledger.cancel(self.engine, row.id, reason, self.clock())
            log.warning("digest %s: %s; %d message(s) cancelled", row.id, reason, cancelled or 0)
            self.report.cancelled += cancelled or 0
            return None
        date = self.clock()
        resend = is_resend(row.id)

        def frame(cadence: str) -> DigestMessages:
            rendered = render_digest(stored.articles, self.settings, self.env, stored.id, cadence, resend=resend)
            return DigestMessages(rendered, settings=self.settings, digest_id=row.id, date=date)

        window = deque[bool](maxlen=self.settings.delivery.error_window)
        try:
            if resend:
                # A resend goes to every cadence and says "your daily digest" to a daily
                # reader: rendered once per cadence, all of them here, so that a template
                # failing on one stops this digest before any of it is sent.
                frames = {cadence: frame(cadence) for cadence in Cadence}
                return _Digest(row.id, row.created_at, frames.__getitem__, window)
            messages = frame(stored.cadence)
        except Exception as exc:  # noqa: BLE001 - a bad stored article or template is this digest's alone
            return await self._unrenderable(row.id, exc)
        return _Digest(row.id, row.created_at, lambda _cadence: messages, window)

    async def _unrenderable(self, digest_id: str, exc: Exception) -> None:
        """Pause a digest that can't be rendered, with the reason; the later digests go on.

        Retrying can't help until someone fixes the template or takes the article out
        (``publisher digests drop-article``), then ``publisher resume``.
        """
        reason = f"cannot render the digest: {template_error(exc)}"
        log.error("digest %s: paused: %s; fix it, then `publisher resume %s`", digest_id, reason, digest_id)
        await ledger.pause(self.engine, digest_id, reason)
        self.report.paused.append(digest_id)

    async def _produce(self, digest: _Digest, queue: asyncio.Queue[list[_Item] | None]) -> None:
        """Claim the digest's due rows batch by batch and queue the ones still subscribed.

        Senders take a few messages per queue operation (``SEND_CHUNK``): one
        hand-over per message cost more than building the message.  Rows claimed
        but not queued when the run stops go back to ``pending`` (released).
        """
        after = 0
        held = self._held.setdefault(digest.id, set())
        while not (self.stop.is_set() or digest.paused):
            batch = await ledger.claim(
                self.engine, digest.id, after, self.settings.delivery.batch_size, self.clock(), self.claimant
            )
            if not batch:
                return
            after = batch[-1].subscriber_id
            held.update(row.subscriber_id for row in batch)
            ready = []
            for row in batch:
                if row.status == Status.ACTIVE:
                    ready.append(_Item(digest, row))
                else:  # left after the digest was planned: never hand it over
                    await self._outcome(digest, row, "cancelled", last_reply=f"subscriber is {row.status}")
            for first in range(0, len(ready), SEND_CHUNK):
                if self.stop.is_set() or digest.paused:
                    for item in ready[first:]:  # never handed over: released, to do
                        await self._outcome(digest, item.row, "pending", attempts=item.row.attempts)
                    return
                await queue.put(ready[first:first + SEND_CHUNK])

    async def _sender(self, queue: asyncio.Queue[list[_Item] | None]) -> None:
        """One connection: take messages from the queue until the producer is done."""
        transport = self.transports()
        backoff = Backoff(min(self.settings.delivery.retry_base, 5.0))
        try:
            while (items := await queue.get()) is not None:
                # Senders serve every digest; a chunk is one digest's (see _produce): tag its lines.
                with digest_context(items[0].digest.id):
                    for item in items:
                        await self._deliver_item(transport, item, backoff)
        finally:
            with contextlib.suppress(Exception):
                await transport.close()

    async def _deliver_item(self, transport: Transport, item: _Item, backoff: Backoff) -> None:
        if self.stop.is_set() or item.digest.paused:  # not handed over: it stays to do
            await self._outcome(item.digest, item.row, "pending", attempts=item.row.attempts)
            return
        try:
            await transport.open()  # a no-op once connected
        except DeliveryError as exc:  # relay unreachable or refusing: defer, and rest
            pause = await self._refused(item.digest, item.row, item.row.attempts + 1, exc, backoff)
        else:
            if not self.pacer.unlimited:
                await self.pacer.wait()
            pause = await self._send(transport, item, backoff)
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=pause)

    async def _send(self, transport: Transport, item: _Item, backoff: Backoff) -> float:
        """Send one message and record its outcome; the seconds this connection should rest."""
        digest, row = item.digest, item.row
        personal = personal_values(self.tokens, self.settings.site.url, row.subscriber_id, row.name, row.email)
        attempts = row.attempts + 1
        try:
            message = digest.messages(row.cadence).build(personal, row.subscriber_id)
        except ValueError as exc:  # an address or value no header may carry: retrying can't help
            await self._failed(digest, row, attempts, f"cannot build the message: {exc}")
            return 0.0
        if self.signer is not None:
            # RSA signing (OpenSSL) releases the GIL: in a thread it overlaps the sending.
            message = await asyncio.get_running_loop().run_in_executor(None, self.signer.sign, message)
        try:
            reply = await transport.send(self.settings.delivery.from_address, row.email, message)
        except DeliveryError as exc:
            return await self._refused(digest, row, attempts, exc, backoff)
        backoff.reset()
        digest.errors.append(False)
        await self._outcome(digest, row, "sent", attempts=attempts, last_reply=reply)
        return 0.0

    async def _refused(self, digest: _Digest, row: Row, attempts: int, exc: DeliveryError, backoff: Backoff) -> float:
        delivery = self.settings.delivery
        too_old = self.clock() - digest.created_at > timedelta(seconds=delivery.max_age)
        if exc.permanent:
            kind = smtp_reply_kind(exc.code, exc.reply) if exc.code is not None else None
            if kind is not None:  # "no such user" is hard; mailbox full or a blocklist, soft
                self._bounced.append((row.subscriber_id, kind))
            await self._failed(digest, row, attempts, exc.reply if exc.code is None else f"{exc.code} {exc.reply}")
            return 0.0
        throttled = exc.code in THROTTLING
        if too_old or (not throttled and attempts >= delivery.max_attempts):
            await self._failed(digest, row, attempts, str(exc))
            return 0.0
        delay = delivery.retry_base * 2 ** min(attempts - 1, 20) * random.uniform(0.8, 1.2)
        await self._outcome(
            digest, row, "deferred", attempts=attempts, last_reply=str(exc),
            retry_at=self.clock() + timedelta(seconds=delay),
        )
        # Throttled, or the relay unreachable: this connection rests before its next message.
        return backoff.next_pause() if throttled or exc.code is None else 0.0

    async def _failed(self, digest: _Digest, row: Row, attempts: int, reply: str) -> None:
        log.warning("digest %s: to subscriber %s failed: %s", digest.id, row.subscriber_id, reply)
        digest.errors.append(True)
        await self._outcome(digest, row, "failed", attempts=attempts, last_reply=reply)
        window = digest.errors
        ratio = sum(window) / len(window)
        if not digest.paused and len(window) == window.maxlen and ratio > self.settings.delivery.max_error_ratio:
            digest.paused = True
            reason = (
                f"{sum(window)} of the last {len(window)} messages failed "
                f"(max_error_ratio {self.settings.delivery.max_error_ratio:g}); last reply: {reply}"
            )
            log.error("digest %s: paused: %s; `publisher resume %s` continues it", digest.id, reason, digest.id)
            await ledger.pause(self.engine, digest.id, reason)
            self.report.paused.append(digest.id)

    async def _outcome(
        self, digest: _Digest, row: Row, state: str, *, attempts: int | None = None,
        last_reply: str | None = None, retry_at: datetime | None = None,
    ) -> None:
        self._pending.append({
            "digest": digest.id, "sid": row.subscriber_id, "state": state,
            "attempts": row.attempts if attempts is None else attempts,
            "retry_at": retry_at, "last_reply": last_reply,
        })
        if state != "pending":
            setattr(self.report, state, getattr(self.report, state) + 1)
        if len(self._pending) >= FLUSH_EVERY or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            await self._flush()

    async def _flush(self) -> None:
        """Write the outcomes gathered so far in one transaction; mark hard bounces."""
        async with self._flush_lock:
            outcomes, self._pending = self._pending, []
            bounced, self._bounced = self._bounced, []
            self._last_flush = time.monotonic()
            now = self.clock()
            await self._record(outcomes, now)
            for outcome in outcomes:
                self._held[str(outcome["digest"])].discard(int(outcome["sid"]))  # type: ignore[call-overload]
            for state, count in Counter(str(o["state"]) for o in outcomes if o["state"] != "pending").items():
                metrics.messages(state, count)
            metrics.send_rate(self.report.handled / max(time.monotonic() - self._started, 1e-6))
            for subscriber_id, kind in bounced:
                await service.record_bounce(
                    self.engine, email=None, subscriber_id=subscriber_id, kind=kind, now=now,
                    soft_limit=self.settings.delivery.soft_bounce_limit,
                )
        if self.progress is not None:
            self.progress(self.report)
        if time.monotonic() - self._last_log >= PROGRESS_SECONDS:
            self._last_log = time.monotonic()
            self._log_counts("delivery")

    async def _record(self, outcomes: list[dict[str, object]], now: datetime) -> None:
        """Write outcomes, trying again after a database error (a deadlock, a failover).

        These messages went out: losing their outcomes would send them again once
        the claim lapses, so a failed write is retried, with pauses, before the run
        gives up (and leaves them to the lease).
        """
        for pause in RECORD_RETRIES:
            try:
                await ledger.record(self.engine, outcomes, now)
                return
            except DBAPIError as exc:
                log.warning("delivery: could not record %d outcomes (%s); trying again in %ss",
                            len(outcomes), exc.orig or exc, pause)
                await asyncio.sleep(pause)
        await ledger.record(self.engine, outcomes, now)

    def _log_counts(self, what: str) -> None:
        r = self.report
        with digest_context(None):  # counts for the whole run, whichever digest's outcome flushed them
            log.info("%s: %d sent, %d deferred, %d failed, %d cancelled", what, r.sent, r.deferred, r.failed, r.cancelled)
