"""Fan-out: turn ledger rows into messages, over several reused SMTP connections.

For each unfinished digest the articles are rendered and CSS-inlined once, and the
MIME frame is encoded once (:class:`publisher.mail.message.DigestMessages`); each
recipient's message is then a join of bytes with their personal values.

The pipeline of one run::

    producer ──(bounded queue)──► N senders, one connection each ──► outcomes
    claims ``batch_size`` due      pace (rate, window), build,        written in batches
    rows at a time (keyset, SKIP   send; policy decides about a       (publisher.delivery.
    LOCKED: other nodes claim      failure                            outcomes), releasing
    others), reads their                                              the claims
    statuses, queues them

Several processes, on one machine or several, can run this at once on PostgreSQL:
each claims its own rows (:func:`publisher.delivery.ledger.claim`) and renews the lease on
the rows it holds every third of ``[cluster] lease``, so rows are only taken over
from a node that stopped renewing (died, or lost the database).

Memory stays flat: at most one batch of rows and a queue of a few messages per
connection are in memory, whatever the list's size.

Each recipient's mailbox provider (:class:`~publisher.delivery.providers.Providers`) has
its lane (:class:`~publisher.delivery.pacing.Lane`): its own rate and concurrency
(``[delivery.providers.<name>]``), halved when it throttles.  A sender never holds its
connection for a provider's slot further than ``HORIZON`` away: that message goes back
to ``deferred`` until the slot, without an attempt counted, and the connection takes the
next one; a provider that keeps throttling (``throttle_limit`` in a row) waits for the
next pass, the others go on.

What a failure leads to (deferred, failed, bounced, throttled, a paused digest) is
:mod:`publisher.delivery.policy`'s decision; this module does what it decides.  A
streak of identical refusals is held in memory until it is decided: failed if
something else ends it, back to ``pending`` if it pauses the digest, so ``publisher
resume`` sends them once the relay is fixed.

This module is long because the producer, the senders and the per-digest state they share
(the streak, the error window, the pause) are one pipeline; the decisions
(:mod:`~publisher.delivery.policy`) and the writes (:mod:`~publisher.delivery.outcomes`)
are already elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import clock
from publisher.content.model import Article
from publisher.delivery import ledger, policy
from publisher.delivery.cluster_rate import GLOBAL, make_pacer, make_slots
from publisher.delivery.gates import Gates
from publisher.delivery.journal import Journal
from publisher.delivery.model import DeliveryConfig, DeliveryReport, DeliveryState, DigestState
from publisher.delivery.outcomes import Outcomes, retrying
from publisher.delivery.pacing import Backoff, Gate, Lane
from publisher.delivery.providers import Providers
from publisher.delivery.policy import RefusalStreak, Verdict
from publisher.digest.plan import PlanProgress, is_resend
from publisher.logs import digest_context
from publisher.mail.message import DigestMessages
from publisher.mail.render import Personal
from publisher.mail.transport import DeliveryError, Transport, TransportPool
from publisher.store import digests as digest_store
from publisher.store.articles import UnreadableArticle
from publisher.templating import template_error
from subscribers.model import Cadence, Status
from subscribers.tokens import Purpose, Tokens

if TYPE_CHECKING:  # the signer's crypto library is loaded only where [dkim] makes one
    from publisher.mail.dkim import DkimSigner

log = logging.getLogger(__package__)  # "publisher.delivery": the name operators filter its lines by

SEND_CHUNK = 10  # messages per queue hand-over

# Renders and frames one digest for one cadence: (articles, digest id, cadence, resend, date).
# The delivery service makes it from the templates and the settings that shape a message.
Framer = Callable[[Sequence[Article], str, str, bool, datetime], DigestMessages]


def personal_values(tokens: Tokens, site_url: str, subscriber_id: int, name: str, email: str) -> Personal:
    """A subscriber's own values in their copy of a digest: their name and signed links.

    The one recipe for them, for deliveries and for the operator's previews and test sends.
    """
    unsubscribe_url, preferences_url = tokens.links(
        site_url, subscriber_id, email, Purpose.UNSUBSCRIBE, Purpose.PREFERENCES
    )
    return Personal(name=name, email=email, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url)


@dataclass
class _Digest:
    """One digest being delivered in this run."""

    id: str
    created_at: datetime
    messages: Callable[[str], DigestMessages]  # by the subscriber's cadence
    errors: deque[bool]
    # Messages refused in a row with one same reply, with their attempt counts.
    refusals: RefusalStreak[tuple[Row, int]]
    paused: bool = False
    pause_reply: str = ""  # the refusal whose streak paused the digest
    plan_complete: bool = False  # its plan was seen complete after a claim that found nothing


@dataclass
class _Item:
    digest: _Digest
    row: Row


@dataclass(eq=False)
class Deliverer:
    """Delivers every unfinished digest through ``config.concurrency`` transports of ``transports``.

    A dataclass because it is its collaborators, all given by the delivery service
    (or a test), plus what one run derives from them: the pacer and the outcome writer.
    """

    engine: AsyncEngine
    config: DeliveryConfig
    frame: Framer
    tokens: Tokens
    transports: TransportPool
    _: KW_ONLY
    claimant: ledger.Claimant
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    signer: DkimSigner | None = None
    journal: Journal | None = None  # the crash record of messages sent (None: a test's run)
    planning: PlanProgress | None = None  # this process's plan still writing rows, if any
    plan_poll: float = 2.0  # seconds between looks for rows of a digest another process is planning
    gates: Gates | None = None  # warm-up and circuit breakers per mailbox provider ([warmup], [breakers])
    providers: Providers = field(default_factory=Providers)  # whose recipient each row is, for its lane
    progress: InitVar[Callable[[DeliveryReport], None] | None] = None
    pacer: Gate = field(init=False)
    outcomes: Outcomes = field(init=False)
    lanes: dict[str, Lane] = field(init=False, default_factory=dict)  # by provider, made when first used

    def __post_init__(self, progress: Callable[[DeliveryReport], None] | None) -> None:
        self.pacer = make_pacer(
            self.engine, GLOBAL, self.config.rate, self.config.window_messages, self.config.window_seconds
        )
        self.outcomes = Outcomes(
            self.engine, soft_bounce_limit=self.config.soft_bounce_limit, progress=progress, journal=self.journal,
            turn=self._turn,
        )

    def _turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Taken around each write while this process's plan is writing (see :class:`PlanProgress`)."""
        return self.planning.turn() if self.planning is not None else contextlib.nullcontext()

    @property
    def report(self) -> DeliveryReport:
        return self.outcomes.report

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
            self.outcomes.log_counts("delivery run ended")
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
            delay = (due - clock.now()).total_seconds()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=delay)

    async def _keep_leases(self) -> None:
        """Renew the lease on the rows this run holds, three times per lease."""
        every = self.claimant.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            await self.outcomes.renew(self.claimant)

    async def _pass(self, unfinished: list[Row]) -> None:
        """One pass over every unfinished digest: each due row is tried once, unless its
        provider keeps throttling (``throttle_limit``) or its next slot is far: then it is
        deferred without an attempt, for a later pass."""
        for lane in self.lanes.values():
            lane.blocked = False
        concurrency = self.config.concurrency
        queue: asyncio.Queue[list[_Item] | None] = asyncio.Queue(maxsize=concurrency)
        senders = [asyncio.create_task(self._sender(queue)) for _ in range(concurrency)]
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
            await self.outcomes.flush()
        for row in unfinished:
            with digest_context(row.id):
                if await retrying("finish the digest", lambda: ledger.finish_if_done(
                    self.engine, row.id, clock.now()
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
            cancelled = await ledger.cancel(self.engine, row.id, reason, clock.now())
            log.warning("digest %s: %s; %d message(s) cancelled", row.id, reason, cancelled or 0)
            self.report.cancelled += cancelled or 0
            return None
        date = clock.now()
        resend = is_resend(row.id)
        window = deque[bool](maxlen=self.config.error_window)
        streak = RefusalStreak[tuple[Row, int]](self.config.pause_after_identical)
        try:
            if resend:
                # A resend goes to every cadence and says "your daily digest" to a daily
                # reader: rendered once per cadence, all of them here, so that a template
                # failing on one stops this digest before any of it is sent.
                frames = {cadence: self.frame(stored.articles, row.id, cadence, True, date) for cadence in Cadence}
                return _Digest(row.id, row.created_at, frames.__getitem__, window, streak)
            messages = self.frame(stored.articles, row.id, stored.cadence, False, date)
        except Exception as exc:  # noqa: BLE001 - a bad stored article or template is this digest's alone
            return await self._unrenderable(row.id, exc)
        return _Digest(row.id, row.created_at, lambda _cadence: messages, window, streak)

    async def _unrenderable(self, digest_id: str, exc: Exception) -> None:
        """Pause a digest that can't be rendered, with the reason; the later digests go on.

        Retrying can't help until someone fixes the template or takes the article out
        (``publisher digests drop-article``), then ``publisher resume``.
        """
        reason = f"cannot render the digest: {template_error(exc)}"
        log.error("digest %s: paused: %s; fix it, then `publisher resume %s`", digest_id, reason, digest_id)
        async with self._turn():
            await ledger.pause(self.engine, digest_id, reason)
        self.report.paused.append(digest_id)

    def _halted(self, digest: _Digest) -> bool:
        return self.stop.is_set() or digest.paused

    async def _produce(self, digest: _Digest, queue: asyncio.Queue[list[_Item] | None]) -> None:
        """Claim the digest's due rows batch by batch and queue the ones still subscribed.

        Senders take a few messages per queue operation (``SEND_CHUNK``): one
        hand-over per message cost more than building the message.  Rows claimed
        but not queued when the run stops go back to ``pending`` (released).
        """
        after = 0
        gates = self.gates
        if gates is not None:
            await retrying("judge the providers' breakers", lambda: gates.check(clock.now()))
        while not self._halted(digest):
            async with self._turn():
                batch = await retrying("claim rows", lambda: ledger.claim(
                    self.engine, digest.id, after, self.config.batch_size, clock.now(), self.claimant
                ))
            if not batch:
                if (found := await retrying("read the digest's status", lambda: ledger.status(
                    self.engine, digest.id
                ))) != DigestState.SENDING:  # paused or cancelled meanwhile, maybe on another node
                    digest.paused = found == DigestState.PAUSED  # a pause: what is queued goes back to do
                    return
                if await self._more_planned(digest):
                    continue
                return
            after = batch[-1].subscriber_id
            self.outcomes.hold(digest.id, [row.subscriber_id for row in batch])
            if gates is not None:  # a provider warming up or paused: its rows wait, untried
                batch, held = await retrying("read the providers' gates", lambda: gates.split(batch, clock.now()))
                for kept in held:
                    await self._outcome(digest, kept.row, DeliveryState.DEFERRED, last_reply=kept.reply,
                                        retry_at=kept.retry_at)
            ready = []
            for row in batch:
                if row.status == Status.ACTIVE:
                    ready.append(_Item(digest, row))
                else:  # left after the digest was planned: never hand it over
                    await self._outcome(digest, row, DeliveryState.CANCELLED, last_reply=f"subscriber is {row.status}")
            for first in range(0, len(ready), SEND_CHUNK):
                if self._halted(digest):
                    for item in ready[first:]:  # never handed over: released, to do
                        await self._outcome(digest, item.row, DeliveryState.PENDING)
                    return
                await queue.put(ready[first:first + SEND_CHUNK])

    async def _more_planned(self, digest: _Digest) -> bool:
        """Whether to claim again: ``digest``'s plan is being written by this process's plan,
        whose next batch we waited for.  Another process's plan is waited for once
        (``plan_poll``), then the pass ends; a later pass takes the rows it wrote, and the
        digest stays unfinished until its plan is complete."""
        planning = self.planning
        next_batch = planning.next_batch() if planning is not None else None
        if not await ledger.being_planned(self.engine, digest.id):
            # Complete now; the claim that found nothing may have read the ledger before the
            # plan's last batch committed: one more claim takes its rows.
            again, digest.plan_complete = not digest.plan_complete, True
            return again
        ours = planning is not None and not planning.ended  # a plan of ours that failed wakes nobody
        waiting = next_batch.wait() if ours and next_batch is not None else self.stop.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiting, timeout=self.plan_poll)
        return ours

    async def _sender(self, queue: asyncio.Queue[list[_Item] | None]) -> None:
        """One connection: take messages from the queue until the producer is done."""
        transport = self.transports.take()
        backoff = Backoff(min(self.config.retry_base, 5.0))
        try:
            while (items := await queue.get()) is not None:
                # Senders serve every digest; a chunk is one digest's (see _produce): tag its lines.
                with digest_context(items[0].digest.id):
                    for item in items:
                        await self._deliver_item(transport, item, backoff)
        finally:
            await self.transports.release(transport)

    def _lane(self, provider: str) -> Lane:
        lane = self.lanes.get(provider)
        if lane is None:
            limits = self.config.providers.get(provider)
            lane = self.lanes[provider] = Lane(
                provider, limits.rate if limits else 0.0, limits.concurrency if limits else 0,
                pause_base=min(self.config.retry_base, 5.0), slots=make_slots(self.engine, provider),
            )
        return lane

    async def _deliver_item(self, transport: Transport, item: _Item, backoff: Backoff) -> None:
        """Try one message, in its provider's lane; a far slot or a provider that keeps
        throttling defers it untried (no attempt counted), and the connection goes on."""
        row = item.row
        if self.stop.is_set() or item.digest.paused:  # not handed over: it stays to do
            await self._outcome(item.digest, row, DeliveryState.PENDING)
            return
        lane = self._lane(self.providers.of(row.email))
        if lane.blocked:  # the next pass tries it
            retry_at = policy.retry_at(1, clock.now(), self.config.retry_base)
            await self._untried(item, f"{lane.name} kept throttling", retry_at)
            return
        if (far := await lane.take()) > 0:  # its slot is further off than a connection waits
            await self._untried(item, f"{lane.name} paced", clock.now() + timedelta(seconds=far))
            return
        epoch = lane.epoch
        try:
            try:
                await transport.open()  # a no-op once connected
            except DeliveryError as exc:  # relay unreachable or refusing: defer, and rest
                pause = await self._refused(item.digest, row, row.attempts + 1, exc, backoff, None)
            else:
                if not self.pacer.unlimited:
                    await self.pacer.wait()
                pause = await self._send(transport, item, backoff, (lane, epoch))
        finally:
            lane.release()
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=pause)

    async def _untried(self, item: _Item, why: str, retry_at: datetime) -> None:
        """Defer a message without trying it: no attempt counted."""
        await self._outcome(
            item.digest, item.row, DeliveryState.DEFERRED, last_reply=f"not tried: {why}", retry_at=retry_at,
        )

    async def _send(self, transport: Transport, item: _Item, backoff: Backoff, lane: tuple[Lane, int]) -> float:
        """Send one message and record its outcome; the seconds this connection should rest."""
        digest, row = item.digest, item.row
        personal = personal_values(self.tokens, self.config.site_url, row.subscriber_id, row.name, row.email)
        attempts = row.attempts + 1
        try:
            message = digest.messages(row.cadence).wire(personal, row.subscriber_id)
        except ValueError as exc:  # an address or value no header may carry: retrying can't help
            await self._failed(digest, row, attempts, f"cannot build the message: {exc}")
            return 0.0
        if self.signer is not None:
            # RSA signing (OpenSSL) releases the GIL: in a thread it overlaps the sending.
            signature = await asyncio.get_running_loop().run_in_executor(None, self.signer.signature, message.plain())
            message = message.prepend(signature)
        try:
            reply = await transport.send(self.config.from_address, row.email, message)
        except DeliveryError as exc:
            return await self._refused(digest, row, attempts, exc, backoff, lane)
        backoff.reset()
        lane[0].succeeded()
        if digest.refusals.held:
            await self._end_refusals(digest)
        digest.errors.append(False)
        await self._outcome(digest, row, DeliveryState.SENT, attempts=attempts, last_reply=reply)
        return 0.0

    async def _refused(
        self, digest: _Digest, row: Row, attempts: int, exc: DeliveryError, backoff: Backoff,
        lane: tuple[Lane, int] | None,
    ) -> float:
        """Do what the policy decides about a failed try; the seconds this connection
        should rest.  A throttle reply to a message (``lane``: its provider's, and the epoch
        it was sent in; None: the failure was to connect) slows that provider instead of the
        connection."""
        now = clock.now()
        decision = policy.decide(exc, attempts, now - digest.created_at, self.config, now)
        if decision.verdict is Verdict.REFUSE:
            await self._message_refused(digest, row, attempts, decision.reply)
        elif decision.verdict is Verdict.DEFER:
            await self._outcome(
                digest, row, DeliveryState.DEFERRED, attempts=attempts, last_reply=decision.reply,
                retry_at=decision.retry_at,
            )
        else:
            if decision.ends_streak:
                await self._end_refusals(digest)
            if decision.bounce is not None:
                self.outcomes.bounce(row.subscriber_id, decision.bounce)
            await self._failed(digest, row, attempts, decision.reply)
        if decision.throttled and lane is not None:
            provider, epoch = lane
            if policy.relay_keeps_throttling(provider.throttled(epoch), self.config):
                provider.blocked = True
                log.warning("delivery: %d messages in a row to %s throttled; deferring its others until the "
                            "next pass", self.config.throttle_limit, provider.name)
            return 0.0
        return backoff.next_pause() if decision.rest else 0.0

    async def _message_refused(self, digest: _Digest, row: Row, attempts: int, reply: str) -> None:
        """A refusal of the message or the sender: held while the same reply repeats; the
        ``pause_after_identical``-th in a row pauses the digest and releases them all.

        Every change to the streak happens before the first ``await``: the senders
        share it, and one's outcome write must not interleave with another's update.
        """
        if digest.paused:
            if reply == digest.pause_reply:  # in flight when the streak paused the digest
                await self._outcome(digest, row, DeliveryState.PENDING, last_reply=reply)
            else:
                await self._failed(digest, row, attempts, reply)
            return
        step = digest.refusals.refused((row, attempts), reply)
        if step.released:
            digest.paused, digest.pause_reply = True, reply
        for failed_row, failed_attempts in step.ended:
            await self._failed(digest, failed_row, failed_attempts, step.ended_reply)
        if not step.released:
            return
        reason = policy.identical_refusals_reason(self.config, reply)
        await self._pause(digest, reason)
        for held, _ in step.released:  # the relay's fault, not these messages': to do again
            await self._outcome(digest, held, DeliveryState.PENDING, last_reply=reply)

    async def _end_refusals(self, digest: _Digest) -> None:
        """Something other than the same refusal came: the refusals held so far failed."""
        ended, reply = digest.refusals.end()
        for row, attempts in ended:
            await self._failed(digest, row, attempts, reply)

    async def _failed(self, digest: _Digest, row: Row, attempts: int, reply: str) -> None:
        log.warning("digest %s: to subscriber %s failed: %s", digest.id, row.subscriber_id, reply)
        digest.errors.append(True)
        await self._outcome(digest, row, DeliveryState.FAILED, attempts=attempts, last_reply=reply)
        if not digest.paused and policy.error_ratio_tripped(digest.errors, self.config):
            digest.paused = True
            await self._pause(digest, policy.error_ratio_reason(digest.errors, self.config, reply))

    async def _pause(self, digest: _Digest, reason: str) -> None:
        log.error("digest %s: paused: %s; `publisher resume %s` continues it", digest.id, reason, digest.id)
        async with self._turn():
            await retrying("pause the digest", lambda: ledger.pause(self.engine, digest.id, reason))
        self.report.paused.append(digest.id)

    async def _outcome(
        self, digest: _Digest, row: Row, state: DeliveryState, *, attempts: int | None = None,
        last_reply: str | None = None, retry_at: datetime | None = None,
    ) -> None:
        """Record a row's outcome; without ``attempts``, the row's own count (not tried now)."""
        if self.outcomes.add(
            digest.id, row.subscriber_id, state, row.attempts if attempts is None else attempts,
            last_reply=last_reply, retry_at=retry_at,
        ):
            await self.outcomes.flush()
