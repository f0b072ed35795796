"""Fan-out: turn ledger rows into messages handed to the transport.

For each unfinished digest the articles are rendered and CSS-inlined once; each
recipient's message is that render plus their personal links.  Rows are taken in
keyset-paged batches, marked ``sending`` before the first byte leaves, and their
outcomes written back in one transaction per batch.  A process that dies mid-batch
leaves its rows in ``sending``; the next run sends them again, so a crash can repeat
at most the messages in flight and never loses one.  A digest is finished only when
no row is pending, sending or deferred.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jinja2
from sqlalchemy import Row, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.config import Settings
from publisher.mail.message import build_message
from publisher.mail.render import Personal, RenderedDigest, render_digest
from publisher.mail.transport import DeliveryError, Transport
from publisher.store import digests as digest_store
from publisher.store.schema import deliveries, digests, subscribers
from subscribers.model import Status
from subscribers.tokens import Purpose, Tokens

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "sending", "deferred")


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    cancelled: int = 0
    finished: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _unsent(row: Row) -> dict[str, object]:
    return {"sid": row.subscriber_id, "state": "pending", "attempts": row.attempts, "retry_at": None, "last_reply": None}


async def unfinished_digests(engine: AsyncEngine) -> list[Row]:
    """Digests with rows still to deliver, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(digests.c.id, digests.c.cadence)
            .where(digests.c.status == "sending")
            .order_by(digests.c.created_at, digests.c.id)
        )
        return list(rows.all())


class Deliverer:
    """Delivers every unfinished digest through one transport."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        env: jinja2.Environment,
        tokens: Tokens,
        transport: Transport,
        *,
        clock: Callable[[], datetime] = _now,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.env = env
        self.tokens = tokens
        self.transport = transport
        self.clock = clock
        self.stop = stop or asyncio.Event()

    async def run(self, unfinished: list[Row]) -> DeliveryReport:
        """Deliver ``unfinished`` digests (from :func:`unfinished_digests`), oldest first."""
        report = DeliveryReport()
        for digest in unfinished:
            if self.stop.is_set():
                break
            await self._deliver_digest(digest, report)
        return report

    async def _deliver_digest(self, digest: Row, report: DeliveryReport) -> None:
        stored = await digest_store.load(self.engine, digest.id)
        if stored is None:
            return  # erased between listing and now: nothing to deliver
        rendered = render_digest(stored.articles, self.settings, self.env, digest.id, digest.cadence)
        after = 0
        while not self.stop.is_set():
            batch = await self._claim(digest.id, after)
            if not batch:
                break
            after = batch[-1].subscriber_id
            outcomes = []
            for row in batch:
                # Stopping: rows not yet handed over go back to pending, not left "in flight".
                if self.stop.is_set():
                    outcomes.append(_unsent(row))
                else:
                    outcomes.append(await self._send_one(digest.id, rendered, row))
            await self._record(digest.id, outcomes, report)
        if await self._finish_if_done(digest.id):
            report.finished.append(digest.id)
            log.info("digest %s: finished", digest.id)

    async def _claim(self, digest_id: str, after: int) -> list[Row]:
        """The next batch of rows due for sending, marked ``sending`` before any is sent."""
        due = or_(
            deliveries.c.state.in_(("pending", "sending")),
            and_(deliveries.c.state == "deferred", deliveries.c.retry_at <= self.clock()),
        )
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(
                        deliveries.c.subscriber_id,
                        deliveries.c.attempts,
                        subscribers.c.email,
                        subscribers.c.name,
                        subscribers.c.status,
                    )
                    .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                    .where(deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id > after, due)
                    .order_by(deliveries.c.subscriber_id)
                    .limit(self.settings.delivery.batch_size)
                )
            ).all()
            if rows:
                await conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.digest_id == digest_id,
                        deliveries.c.subscriber_id.in_([r.subscriber_id for r in rows]),
                    )
                    .values(state="sending", updated_at=self.clock())
                )
        return list(rows)

    async def _send_one(self, digest_id: str, rendered: RenderedDigest, row: Row) -> dict[str, object]:
        outcome: dict[str, object] = {
            "sid": row.subscriber_id, "attempts": row.attempts, "retry_at": None, "last_reply": None,
        }
        if row.status != Status.ACTIVE:
            # Unsubscribed (or bounced) after the digest was planned: never hand it over.
            return outcome | {"state": "cancelled", "last_reply": f"subscriber is {row.status}"}
        site_url = self.settings.site.url
        personal = Personal(
            name=row.name,
            email=row.email,
            unsubscribe_url=self.tokens.link(site_url, Purpose.UNSUBSCRIBE, row.subscriber_id, row.email),
            preferences_url=self.tokens.link(site_url, Purpose.PREFERENCES, row.subscriber_id, row.email),
        )
        message = build_message(
            rendered, personal, settings=self.settings, digest_id=digest_id,
            subscriber_id=row.subscriber_id, date=self.clock(),
        )
        attempts = row.attempts + 1
        try:
            reply = await self.transport.send(self.settings.delivery.from_address, row.email, message)
        except DeliveryError as exc:
            if exc.permanent or attempts >= self.settings.delivery.max_attempts:
                log.warning("digest %s: to subscriber %s failed: %s", digest_id, row.subscriber_id, exc)
                return outcome | {"state": "failed", "attempts": attempts, "last_reply": str(exc)}
            delay = self.settings.delivery.retry_base * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
            log.info("digest %s: to subscriber %s deferred: %s", digest_id, row.subscriber_id, exc)
            return outcome | {
                "state": "deferred", "attempts": attempts, "last_reply": str(exc),
                "retry_at": self.clock() + timedelta(seconds=delay),
            }
        return outcome | {"state": "sent", "attempts": attempts, "last_reply": reply}

    async def _record(self, digest_id: str, outcomes: list[dict[str, object]], report: DeliveryReport) -> None:
        """Write a batch's outcomes in one transaction (one commit per batch, not per message)."""
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id == bindparam("sid"))
                .values(
                    state=bindparam("state"),
                    attempts=bindparam("attempts"),
                    retry_at=bindparam("retry_at"),
                    last_reply=bindparam("last_reply"),
                    updated_at=now,
                ),
                outcomes,
            )
        counts = {s: sum(1 for o in outcomes if o["state"] == s) for s in ("sent", "deferred", "failed", "cancelled")}
        for state, count in counts.items():
            setattr(report, state, getattr(report, state) + count)
        log.info("digest %s: %s", digest_id, ", ".join(f"{n} {s}" for s, n in counts.items() if n))

    async def _finish_if_done(self, digest_id: str) -> bool:
        async with self.engine.begin() as conn:
            open_rows = (
                await conn.execute(
                    select(func.count()).where(
                        deliveries.c.digest_id == digest_id, deliveries.c.state.in_(OPEN_STATES)
                    )
                )
            ).scalar_one()
            if open_rows:
                return False
            await conn.execute(
                update(digests).where(digests.c.id == digest_id).values(status="finished", finished_at=self.clock())
            )
            return True
