"""The operator's way back to one article: find it by any name it goes by, send it again.

``publisher resend``, ``publisher preview --article`` and ``publisher digests
drop-article`` name an article as an operator has it at hand: its id, slug, URL or
feed entry id (:func:`find_article`).  A resend is a one-article digest outside the
cadences (:func:`plan_resend`): cursors don't move.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.model import Article
from publisher.delivery.model import DeliveryState, DigestState
from publisher.digest.plan import RESEND_PREFIX, PlannedDigest, digest_id, matches_topics
from publisher.store.db import Exclusive, analyze_after_bulk_insert, serialize, transaction
from publisher.store.schema import UTCDateTime, articles, deliveries, digests, subscribers
from subscribers.model import Cadence, Status


class UnknownArticle(LookupError):
    """No published (not removed) article is known by this reference.

    ``closest``: ``(id, title)`` of the published articles whose id, slug or URL is
    nearest to it, best first (what the operator probably meant).
    """

    def __init__(self, reference: str, closest: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reference)
        self.reference = reference
        self.closest = list(closest)


@dataclass(frozen=True)
class FoundArticle:
    seq: int
    id: str
    title: str
    tags: list[str]


async def find_article(conn: AsyncConnection, reference: str, site_url: str) -> FoundArticle:
    """The published article that ``reference`` names: its id (front matter ``id``), its
    slug, its canonical URL, or its feed entry id (RSS guid, Atom and JSON id), which
    is what an operator copies from a feed reader or the site.

    Raises :class:`UnknownArticle` with the closest matches.
    """
    from publisher.feeds.entries import entry_id  # the feed builder's libraries only when an article is looked up

    reference = reference.strip()
    rows = (
        await conn.execute(
            select(articles.c.seq, articles.c.id, articles.c.slug, articles.c.data, articles.c.tags)
            .where(articles.c.removed_at.is_(None))
            .order_by(articles.c.seq.desc())
        )
    ).all()
    found = {row.seq: Article.from_dict(json.loads(row.data)) for row in rows}
    names: dict[str, int] = {}  # every name an article goes by → its seq; the id first, then the newest
    for kind in ("id", "slug", "url", "entry"):
        for row in rows:
            article = found[row.seq]
            name = {"id": row.id, "slug": row.slug, "url": article.canonical_url,
                    "entry": entry_id(article, site_url)}[kind]
            names.setdefault(name, row.seq)
    seq = names.get(reference) or names.get(reference.rstrip("/"))
    if seq is None:
        guesses = difflib.get_close_matches(reference, list(names), n=len(names), cutoff=0.6)
        closest = list(dict.fromkeys(names[guess] for guess in guesses))[:3]
        raise UnknownArticle(reference, [(found[s].id, found[s].title) for s in closest])
    row = next(row for row in rows if row.seq == seq)
    return FoundArticle(seq, row.id, found[seq].title, json.loads(row.tags))


async def _audience(conn: AsyncConnection, tags: Sequence[str]) -> ColumnElement[bool]:
    """Which subscribers a resend of an article with ``tags`` goes to: the active ones
    whose topics it matches (decided per distinct topics list, not per subscriber)."""
    active = subscribers.c.status == Status.ACTIVE
    all_topics = (await conn.execute(select(subscribers.c.topics).where(active).distinct())).scalars().all()
    matching = [topics for topics in all_topics if matches_topics(tags, json.loads(topics))]
    return and_(active, subscribers.c.topics.in_(matching))


async def resend_audience(engine: AsyncEngine, reference: str, site_url: str) -> tuple[FoundArticle, int]:
    """The article ``reference`` names and how many subscribers a resend of it would go
    to now (what the dashboard asks the operator to confirm); changes nothing."""
    async with engine.connect() as conn:
        row = await find_article(conn, reference, site_url)
        who = await _audience(conn, row.tags)
        count = (await conn.execute(select(func.count()).select_from(subscribers).where(who))).scalar_one()
    return row, count


async def plan_resend(
    engine: AsyncEngine, reference: str, now: datetime, *, site_url: str, dry_run: bool = False
) -> tuple[PlannedDigest, FoundArticle]:
    """:func:`plan_resend_on` in a transaction of its own (rolled back with ``dry_run``)."""
    async with transaction(engine, dry_run=dry_run) as conn:
        planned, row = await plan_resend_on(conn, reference, now, site_url=site_url)
    if not dry_run:
        await analyze_after_bulk_insert(engine, deliveries, planned.recipients)
    return planned, row


async def plan_resend_on(
    conn: AsyncConnection, reference: str, now: datetime, *, site_url: str
) -> tuple[PlannedDigest, FoundArticle]:
    """A one-article digest of the article ``reference`` names (see :func:`find_article`)
    for every active subscriber whose topics it matches, in the caller's transaction.

    The operator's way to send an edited article again (an edit alone never does),
    whatever each subscriber's cadence; cursors don't move, so it doesn't change what
    their next regular digest holds.  Its id starts with ``resend-``.
    """
    await serialize(conn, Exclusive.PLANNING)
    row = await find_article(conn, reference, site_url)
    who = await _audience(conn, row.tags)
    seqs = (row.seq,)
    ident = RESEND_PREFIX + digest_id(Cadence.INSTANT, now, seqs).removeprefix(f"{Cadence.INSTANT}-")
    await conn.execute(
        insert(digests).values(
            id=ident, cadence=Cadence.INSTANT, article_seqs=json.dumps(seqs), status=DigestState.SENDING,
            created_at=now,
        )
    )
    added = await conn.execute(
        insert(deliveries).from_select(
            ["digest_id", "subscriber_id", "state", "attempts", "updated_at"],
            select(
                literal(ident), subscribers.c.id, literal(DeliveryState.PENDING.value), literal(0),
                literal(now, UTCDateTime()),
            ).where(who),
        )
    )
    return PlannedDigest(ident, Cadence.INSTANT, seqs, added.rowcount), row
