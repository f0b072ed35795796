"""A preview plans only what its copy needs, and shows what a real send would give.

``publisher preview``, ``publisher send --test`` and the dashboard's preview make their
copy in a rehearsal (a plan rolled back).  A plan of everyone there cost seconds at a
million subscribers, holding SQLite's write lock: a subscriber's preview plans them
alone, a cadence's a sample of the due subscribers (oldest cursors first).  ``publisher
send --dry-run`` still plans everyone, to count them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from publisher import clock
from publisher.app import Publisher
from publisher.delivery import service as delivery_service
from publisher.digest.plan import PlannedDigest, PlanOptions, planned_for
from publisher.store import articles as article_store
from publisher.store.schema import deliveries, subscribers
from subscribers.model import Cadence
from tests.store.test_cadence import subscribe
from tests.support.people import add_subscriber

PlannedRows = list[int]


@pytest.fixture
def rows_planned(monkeypatch: pytest.MonkeyPatch) -> PlannedRows:
    """The ledger rows each rehearsal's plan wrote, read in its own transaction (rolled back after)."""
    counts: PlannedRows = []
    real = delivery_service.plan_on

    async def counting(conn: AsyncConnection, cadence: Cadence, now: datetime, options: PlanOptions
                       ) -> list[PlannedDigest]:
        planned = await real(conn, cadence, now, options)
        counts.append(await conn.scalar(select(func.count()).select_from(deliveries)) or 0)
        return planned

    monkeypatch.setattr(delivery_service, "plan_on", counting)
    return counts


async def _readers(publisher: Publisher, group: str, count: int, topics: tuple[str, ...] = ()) -> list[int]:
    """``count`` instant subscribers ``group-N@example.org``; their ids."""
    return [(await add_subscriber(publisher.engine, f"{group}-{n}@example.org", topics=topics)).id
            for n in range(count)]


async def test_a_subscribers_preview_plans_them_alone_and_shows_what_a_send_gives_them(
    publisher: Publisher, rows_planned: PlannedRows
) -> None:
    ann = await add_subscriber(publisher.engine, "ann@example.org", name="Ann")  # before the articles: news to her
    await _readers(publisher, "free", 12)
    await _readers(publisher, "picky", 5, ("no-such-topic",))

    copy = await publisher.delivery.next_copy(subscriber="ann@example.org")
    assert rows_planned == [1]  # Ann's row alone, not the 18 a plan of everyone writes

    async with publisher.delivery.rehearse(Cadence.INSTANT) as everyone:  # what `publisher send` would plan
        assert sum(d.recipients for d in everyone.planned) == 13 == rows_planned[-1]
        theirs = await planned_for(everyone.conn, ann.id, everyone.planned)
        assert theirs is not None
        sent = await article_store.by_seq(everyone.conn, theirs.article_seqs)
    assert [a.id for a in copy.articles] == [a.id for a in sent] and copy.article_count == 3
    assert copy.recipient == "ann@example.org"


async def test_a_cadences_preview_plans_a_sample_and_finds_the_biggest_digest(
    publisher: Publisher, rows_planned: PlannedRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_service, "PREVIEW_SAMPLE", 4)
    await publisher.intake.scan()  # the three sample articles stored: new readers start after them
    caught_up = await _readers(publisher, "free", 10)
    nothing_new = await _readers(publisher, "picky", 2, ("no-such-topic",))
    behind = await _readers(publisher, "behind", 3)
    async with publisher.engine.begin() as conn:  # some readers are behind, by one article or by all three
        await conn.execute(update(subscribers).where(subscribers.c.id.in_(caught_up[:6])).values(article_cursor=2))
        await conn.execute(update(subscribers).where(subscribers.c.id.in_(nothing_new)).values(article_cursor=0))
        await conn.execute(update(subscribers).where(subscribers.c.id == behind[0]).values(article_cursor=0))

    copy = await publisher.delivery.next_copy(Cadence.INSTANT)
    # The sample, oldest cursors first: the two picky readers (nothing new for their topic),
    # behind[0] (three articles) and one of the six a article behind: two rows, not seven.
    assert rows_planned == [2]
    async with publisher.delivery.rehearse(Cadence.INSTANT) as everyone:
        assert sum(d.recipients for d in everyone.planned) == 7 == rows_planned[-1]
        biggest = max(everyone.planned, key=lambda d: (len(d.article_seqs), d.recipients))
        shown = await article_store.by_seq(everyone.conn, biggest.article_seqs)
    assert len(everyone.planned) == 2 and biggest.recipients == 1  # 3 articles for one; 1 article for six
    assert [a.id for a in copy.articles] == [a.id for a in shown] and copy.article_count == 3
    assert copy.recipient == "reader@example.com"


async def test_nothing_due_in_a_cadence_says_why_as_before(publisher: Publisher, rows_planned: PlannedRows) -> None:
    await publisher.intake.scan()
    await _readers(publisher, "free", 3)  # every article is old news to them
    with pytest.raises(delivery_service.NothingToPreview, match="every published article"):
        await publisher.delivery.next_copy(Cadence.INSTANT)
    assert rows_planned == [0]


async def test_a_daily_preview_samples_the_subscribers_due_now_not_those_furthest_behind(
    publisher: Publisher, rows_planned: PlannedRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 10:00 UTC the Paris wave (10:00 local, 09:00 UTC) is due; New York's (9:00
    local) is not.  New Yorkers come first in cursor and id order: a sample that ignored
    the waves would hold them alone and find nothing due."""
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: now)
    monkeypatch.setattr(delivery_service, "PREVIEW_SAMPLE", 2)
    joined = now - timedelta(days=2)
    new_york = [await subscribe(publisher.engine, f"ny{n}@example.org", Cadence.DAILY, "America/New_York", 9, joined)
                for n in range(3)]
    for n in range(2):
        await subscribe(publisher.engine, f"paris{n}@example.org", Cadence.DAILY, "Europe/Paris", 10, joined)

    copy = await publisher.delivery.next_copy(Cadence.DAILY)
    assert rows_planned == [2] and copy.article_count == 3
    with pytest.raises(delivery_service.NothingToPreview, match="ny0@example.org"):
        await publisher.delivery.next_copy(subscriber="ny0@example.org")
    assert (await publisher.delivery.next_copy(subscriber="paris1@example.org")).article_count == 3
    assert rows_planned[1:] == [0, 1]
    async with publisher.engine.connect() as conn:  # the rehearsals left nothing: cursors and slots as they were
        left = (await conn.execute(select(subscribers.c.article_cursor, subscribers.c.last_slot)
                                   .where(subscribers.c.id.in_(new_york)))).all()
    assert left == [(0, None)] * 3
