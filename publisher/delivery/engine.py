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
each claims its own rows (:func:`publisher.delivery.ledger.claim`) and renews the lease on
the rows it holds every third of ``[cluster] lease``, so rows are only taken over
from a node that stopped renewing (died, or lost the database).

Memory stays flat: at most one batch of rows and a queue of a few messages per
connection are in memory, whatever the list's size.  Outcomes are flushed every
``FLUSH_EVERY`` messages or ``FLUSH_SECONDS``; a crash leaves in ``sending`` only the
rows claimed but not yet recorded (one batch, the queue, the unflushed outcomes), and
only those that were really sent can go out twice.

Replies, as :func:`publisher.mail.bounces.reply_action` reads them (with the phase of
the session they came at): 421/450/451/452/454 are throttling (the message is
deferred and that connection backs off; throttling never fails a message); other
temporary failures retry with exponential backoff and jitter up to ``max_attempts``
and ``max_age``; a refusal about the recipient fails the row with the server's reply
and bounces them ("no such user" at once; "mailbox full" counts towards
``soft_bounce_limit``); a refusal of the message or the sender (content, policy, an
unverified sender) fails the row and leaves the reader alone.

Pausing: a relay that refuses ``pause_after_identical`` messages in a row with the same
reply is broken itself (an unverified sender, a full spool): the digest pauses at once
with that reply as its reason, and those messages go back to ``pending`` (held in
memory until the streak is decided), so ``publisher resume`` sends them once the relay
is fixed.  Otherwise, when more than ``max_error_ratio`` of the last ``error_window``
messages failed, the digest pauses with its reason until ``publisher resume``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import jinja2
from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import metrics
from publisher.delivery import ledger
from publisher.config import Settings
from publisher.delivery.model import DeliveryState
from publisher.digest.plan import is_resend
from publisher.logs import digest_context
from publisher.mail.bounces import ReplyAction
from publisher.mail.dkim import DkimSigner
from publisher.mail.message import DigestMessages
from publisher.mail.render import Personal, render_digest
from publisher.mail.transport import DeliveryError, Transport
from publisher.delivery.pacing import Backoff, Pacer
from publisher.store import digests as digest_store
from publisher.store.articles import UnreadableArticle
from publisher.templating import template_error
from subscribers import service
from subscribers.model import Cadence, Status
from subscribers.service import BounceKind
from subscribers.tokens import Purpose, Tokens

log = logging.getLogger(__package__)  # "publisher.delivery": the name operators filter its lines by

FLUSH_EVERY = 200  # outcomes per ledger transaction
FLUSH_SECONDS = 0.5
SEND_CHUNK = 10  # messages per queue hand-over
PROGRESS_SECONDS = 5.0
RETRY_FIRST, RETRY_LIMIT = 0.1, 10.0  # seconds between tries of a ledger write after a database error

TransportFactory = Callable[[], Transport]
T = TypeVar("T")


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
    # Messages refused in a row with one same reply (about the message, not the reader),
    # with their attempt counts: recorded failed once something else happens, or
    # released to ``pending`` if the streak pauses the digest.
    refusals: list[tuple[Row, int]] = field(default_factory=list)
    refusal_reply: str = ""
    pause_reply: str = ""  # the refusal whose streak paused the digest


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
        self._relay_throttling = False  # this pass ends: the relay kept throttling a connection

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
            due = await ledger.next_retry(self.engine)
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
        """One pass over every unfinished digest: each due row is tried once, unless the
        relay keeps throttling (``throttle_limit``): then the pass ends early, the rows
        handed over deferred without an attempt, the rest left pending."""
        self._relay_throttling = False
        queue: asyncio.Queue[list[_Item] | None] = asyncio.Queue(maxsize=self.settings.delivery.concurrency)
        senders = [asyncio.create_task(self._sender(queue)) for _ in range(self.settings.delivery.concurrency)]
        prepared: list[_Digest] = []
        try:
            for row in unfinished:
                if self.stop.is_set():
                    break
                with digest_context(row.id):
                    digest = await self._prepare(row)
                    if digest is not None:
                        prepared.append(digest)
                        await self._produce(digest, queue)
        finally:
            for _ in senders:
                await queue.put(None)
            await asyncio.gather(*senders)
            for digest in prepared:  # a streak too short to pause: those messages failed
                with digest_context(digest.id):
                    await self._end_refusals(digest)
            await self._flush()
        for row in unfinished:
            with digest_context(row.id):
                if await self._retrying("finish the digest", lambda: ledger.finish_if_done(
                    self.engine, row.id, self.clock()
                )):
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
        while not (self.stop.is_set() or digest.paused or self._relay_throttling):
            batch = await self._retrying("claim rows", lambda: ledger.claim(
                self.engine, digest.id, after, self.settings.delivery.batch_size, self.clock(), self.claimant
            ))
            if not batch:
                return
            after = batch[-1].subscriber_id
            held.update(row.subscriber_id for row in batch)
            ready = []
            for row in batch:
                if row.status == Status.ACTIVE:
                    ready.append(_Item(digest, row))
                else:  # left after the digest was planned: never hand it over
                    await self._outcome(digest, row, DeliveryState.CANCELLED, last_reply=f"subscriber is {row.status}")
            for first in range(0, len(ready), SEND_CHUNK):
                if self.stop.is_set() or digest.paused or self._relay_throttling:
                    for item in ready[first:]:  # never handed over: released, to do
                        await self._outcome(digest, item.row, DeliveryState.PENDING, attempts=item.row.attempts)
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
                    throttled = 0
                    for item in items:
                        if await self._deliver_item(transport, item, backoff):
                            throttled += 1
                            if throttled == self.settings.delivery.throttle_limit and not self._relay_throttling:
                                self._relay_throttling = True
                                log.warning("delivery: %d messages in a row throttled on one connection; "
                                            "deferring the rest until the next pass", throttled)
        finally:
            with contextlib.suppress(Exception):
                await transport.close()

    async def _deliver_item(self, transport: Transport, item: _Item, backoff: Backoff) -> bool:
        """Try one message; whether the relay throttled it (an answer to the message, not
        to connecting: a connection over the relay's limit just rests)."""
        row = item.row
        if self.stop.is_set() or item.digest.paused:  # not handed over: it stays to do
            await self._outcome(item.digest, row, DeliveryState.PENDING, attempts=row.attempts)
            return False
        if self._relay_throttling:  # not tried: no attempt counted; the next pass goes on
            await self._outcome(
                item.digest, row, DeliveryState.DEFERRED, attempts=row.attempts, retry_at=self._retry_at(1),
                last_reply="not tried: the relay kept throttling",
            )
            return False
        throttled = False
        try:
            await transport.open()  # a no-op once connected
        except DeliveryError as exc:  # relay unreachable or refusing: defer, and rest
            pause = await self._refused(item.digest, row, row.attempts + 1, exc, backoff)
        else:
            if not self.pacer.unlimited:
                await self.pacer.wait()
            pause, throttled = await self._send(transport, item, backoff)
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=pause)
        return throttled

    async def _send(self, transport: Transport, item: _Item, backoff: Backoff) -> tuple[float, bool]:
        """Send one message and record its outcome; the seconds this connection should
        rest, and whether the relay throttled the message."""
        digest, row = item.digest, item.row
        personal = personal_values(self.tokens, self.settings.site.url, row.subscriber_id, row.name, row.email)
        attempts = row.attempts + 1
        try:
            message = digest.messages(row.cadence).build(personal, row.subscriber_id)
        except ValueError as exc:  # an address or value no header may carry: retrying can't help
            await self._failed(digest, row, attempts, f"cannot build the message: {exc}")
            return 0.0, False
        if self.signer is not None:
            # RSA signing (OpenSSL) releases the GIL: in a thread it overlaps the sending.
            message = await asyncio.get_running_loop().run_in_executor(None, self.signer.sign, message)
        try:
            reply = await transport.send(self.settings.delivery.from_address, row.email, message)
        except DeliveryError as exc:
            return await self._refused(digest, row, attempts, exc, backoff), exc.action is ReplyAction.THROTTLED
        backoff.reset()
        if digest.refusals:
            await self._end_refusals(digest)
        digest.errors.append(False)
        await self._outcome(digest, row, DeliveryState.SENT, attempts=attempts, last_reply=reply)
        return 0.0, False

    async def _refused(self, digest: _Digest, row: Row, attempts: int, exc: DeliveryError, backoff: Backoff) -> float:
        delivery = self.settings.delivery
        action = exc.action
        if exc.permanent:
            reply = exc.reply if exc.code is None else f"{exc.code} {exc.reply}"
            if action is ReplyAction.MESSAGE_FAILED:
                await self._message_refused(digest, row, attempts, reply)
                return 0.0
            await self._end_refusals(digest)
            if action in (ReplyAction.HARD_BOUNCE, ReplyAction.SOFT_BOUNCE):
                self._bounced.append((row.subscriber_id, "hard" if action is ReplyAction.HARD_BOUNCE else "soft"))
            await self._failed(digest, row, attempts, reply)
            return 0.0
        throttled = action is ReplyAction.THROTTLED
        too_old = self.clock() - digest.created_at > timedelta(seconds=delivery.max_age)
        if too_old or (not throttled and attempts >= delivery.max_attempts):
            await self._failed(digest, row, attempts, str(exc))
            return 0.0
        await self._outcome(
            digest, row, DeliveryState.DEFERRED, attempts=attempts, last_reply=str(exc), retry_at=self._retry_at(attempts),
        )
        # Throttled, or the relay unreachable: this connection rests before its next message.
        return backoff.next_pause() if throttled or exc.code is None else 0.0

    def _retry_at(self, attempts: int) -> datetime:
        """When to try a message again after its ``attempts``-th try: exponential, with jitter."""
        delay = self.settings.delivery.retry_base * 2 ** min(attempts - 1, 20) * random.uniform(0.8, 1.2)
        return self.clock() + timedelta(seconds=delay)

    async def _message_refused(self, digest: _Digest, row: Row, attempts: int, reply: str) -> None:
        """A refusal of the message or the sender: held while the same reply repeats; the
        ``pause_after_identical``-th in a row pauses the digest and releases them all.

        Every change to the streak happens before the first ``await``: the senders
        share it, and one's outcome write must not interleave with another's update.
        """
        if digest.paused:
            if reply == digest.pause_reply:  # in flight when the streak paused the digest
                await self._outcome(digest, row, DeliveryState.PENDING, attempts=row.attempts, last_reply=reply)
            else:
                await self._failed(digest, row, attempts, reply)
            return
        ended, ended_reply = self._take_refusals(digest, reply) if reply != digest.refusal_reply else ([], "")
        digest.refusals.append((row, attempts))
        limit = self.settings.delivery.pause_after_identical
        released: list[tuple[Row, int]] = []
        if len(digest.refusals) >= limit:
            released, digest.refusals = digest.refusals, []
            digest.paused, digest.pause_reply = True, reply
        for failed_row, failed_attempts in ended:
            await self._failed(digest, failed_row, failed_attempts, ended_reply)
        if not released:
            return
        reason = f"{limit} messages in a row refused with the same reply (pause_after_identical): {reply}"
        log.error("digest %s: paused: %s; `publisher resume %s` continues it", digest.id, reason, digest.id)
        await self._retrying("pause the digest", lambda: ledger.pause(self.engine, digest.id, reason))
        self.report.paused.append(digest.id)
        for held, _ in released:  # the relay's fault, not these messages': to do again
            await self._outcome(digest, held, DeliveryState.PENDING, attempts=held.attempts, last_reply=reply)

    @staticmethod
    def _take_refusals(digest: _Digest, next_reply: str = "") -> tuple[list[tuple[Row, int]], str]:
        """End the digest's streak of refusals: the ones held, and their reply."""
        ended, digest.refusals = digest.refusals, []
        reply, digest.refusal_reply = digest.refusal_reply, next_reply
        return ended, reply

    async def _end_refusals(self, digest: _Digest) -> None:
        """Something other than the same refusal came: the refusals held so far failed."""
        ended, reply = self._take_refusals(digest)
        for row, attempts in ended:
            await self._failed(digest, row, attempts, reply)

    async def _failed(self, digest: _Digest, row: Row, attempts: int, reply: str) -> None:
        log.warning("digest %s: to subscriber %s failed: %s", digest.id, row.subscriber_id, reply)
        digest.errors.append(True)
        await self._outcome(digest, row, DeliveryState.FAILED, attempts=attempts, last_reply=reply)
        window = digest.errors
        ratio = sum(window) / len(window)
        if not digest.paused and len(window) == window.maxlen and ratio > self.settings.delivery.max_error_ratio:
            digest.paused = True
            reason = (
                f"{sum(window)} of the last {len(window)} messages failed "
                f"(max_error_ratio {self.settings.delivery.max_error_ratio:g}); last reply: {reply}"
            )
            log.error("digest %s: paused: %s; `publisher resume %s` continues it", digest.id, reason, digest.id)
            await self._retrying("pause the digest", lambda: ledger.pause(self.engine, digest.id, reason))
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
        if state != DeliveryState.PENDING:
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
            for state, count in Counter(str(o["state"]) for o in outcomes if o["state"] != DeliveryState.PENDING).items():
                metrics.messages(state, count)
            metrics.send_rate(self.report.handled / max(time.monotonic() - self._started, 1e-6))
            for subscriber_id, kind in bounced:
                await self._retrying("record a bounce", functools.partial(
                    service.record_bounce, self.engine, email=None, subscriber_id=subscriber_id, kind=kind, now=now,
                    soft_limit=self.settings.delivery.soft_bounce_limit,
                ))
        if self.progress is not None:
            self.progress(self.report)
        if time.monotonic() - self._last_log >= PROGRESS_SECONDS:
            self._last_log = time.monotonic()
            self._log_counts("delivery")

    async def _record(self, outcomes: list[dict[str, object]], now: datetime) -> None:
        """Write outcomes, however long the database refuses (a lock held for a minute, a failover).

        These messages went out: losing their outcomes would send them again once the
        claim lapses (or the process restarts), so they stay in memory and the write is
        tried again, with growing pauses, for as long as the process lives.  Sending
        waits meanwhile: the senders' next outcomes queue behind this write.
        """
        await self._retrying(f"record {len(outcomes)} outcomes", lambda: ledger.record(self.engine, outcomes, now))

    async def _retrying(self, what: str, write: Callable[[], Awaitable[T]]) -> T:
        """``write()`` until the database takes it, pausing longer after each error."""
        pause = Backoff(RETRY_FIRST, limit=RETRY_LIMIT)
        while True:
            try:
                return await write()
            except DBAPIError as exc:
                delay = pause.next_pause()
                log.warning("delivery: could not %s (%s); trying again in %.1fs", what, exc.orig or exc, delay)
                await asyncio.sleep(delay)

    def _log_counts(self, what: str) -> None:
        r = self.report
        with digest_context(None):  # counts for the whole run, whichever digest's outcome flushed them
            log.info("%s: %d sent, %d deferred, %d failed, %d cancelled", what, r.sent, r.deferred, r.failed, r.cancelled)
