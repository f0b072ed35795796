"""Daily and weekly digests at each subscriber's hour in their own timezone, with a frozen clock."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.app import Publisher
from publisher.digest.cadence import Schedule
from publisher.digest.plan import PlannedDigest, PlanOptions, plan
from publisher.store import ingest as article_ingest
from publisher.store.schema import deliveries, digests
from subscribers import service
from subscribers.model import Cadence, Preferences, Source
from tests.support.articles import seed_like

SCHEDULE = Schedule(time(8, 0), "fri", "UTC")
GRACE = timedelta(hours=6)
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")

# Zones with whole, half and quarter hour offsets, both hemispheres, with and without DST.
ZONES = (
    "UTC", "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "America/Sao_Paulo",
    "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tokyo", "Australia/Adelaide", "Australia/Lord_Howe",
    "Pacific/Chatham", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Africa/Nairobi", "America/St_Johns",
)  # fmt: skip


# --- the slot arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "slot"),
    [
        # Spring forward (29 March 2026, 02:00 → 03:00): 02:30 does not exist, the slot
        # is the instant 02:30 would have had under the old offset: 03:30 CEST.
        (datetime(2026, 3, 29, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 3, 30, tzinfo=PARIS)),
        # Fall back (25 October 2026, 03:00 → 02:00): 02:30 happens twice; the first counts.
        (datetime(2026, 10, 25, 12, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # Before today's slot: yesterday's.
        (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), datetime(2026, 10, 24, 2, 30, tzinfo=PARIS)),
    ],
)
def test_a_slot_per_local_day_across_dst_changes(now: datetime, slot: datetime) -> None:
    # 02:30 on the Paris wall clock: the subscriber's hour 2, the site's minute 30.
    assert Schedule(time(8, 30), "fri", "UTC").slot(Cadence.DAILY, "Europe/Paris", 2, now) == slot


def test_the_local_hour_holds_across_a_dst_change() -> None:
    before = SCHEDULE.slot(Cadence.DAILY, "America/New_York", 7, datetime(2026, 3, 7, 18, tzinfo=UTC))
    after = SCHEDULE.slot(Cadence.DAILY, "America/New_York", 7, datetime(2026, 3, 9, 18, tzinfo=UTC))
    assert before.astimezone(NEW_YORK).time() == after.astimezone(NEW_YORK).time() == time(7, 0)
    assert (before.hour, after.hour) == (12, 11)  # UTC-5, then UTC-4


@pytest.mark.parametrize("zone", ZONES)
def test_slots_in_every_zone(zone: str) -> None:
    now = datetime(2026, 11, 25, 10, 7, tzinfo=UTC)
    slot = SCHEDULE.slot(Cadence.DAILY, zone, 9, now)
    following = SCHEDULE.next_slot(Cadence.DAILY, zone, 9, now)
    assert slot <= now < following
    assert slot.astimezone(ZoneInfo(zone)).time() == following.astimezone(ZoneInfo(zone)).time() == time(9, 0)
    assert timedelta(hours=23) <= following - slot <= timedelta(hours=25)
    weekly = SCHEDULE.slot(Cadence.WEEKLY, zone, None, now)
    assert weekly.astimezone(ZoneInfo(zone)).strftime("%a %H:%M") == "Fri 08:00"
    assert timedelta(0) <= now - weekly < timedelta(days=7)


# --- planning waves against the store -----------------------------------------------------


async def subscribe(
    engine: AsyncEngine, address: str, cadence: Cadence, zone: str, hour: int | None, now: datetime,
    weekday: str | None = None,
) -> int:
    subscriber = await service.create(
        engine, address, name="",
        prefs=Preferences(cadence=cadence, timezone=zone, send_hour=hour, send_weekday=weekday),
        source=Source.CLI, confirmed=True, now=now,
    )
    return subscriber.id


async def publish(engine: AsyncEngine, number: int, now: datetime) -> None:
    article = seed_like(id=f"urn:test:{number}", slug=f"piece-{number}", published=now, updated=now)
    await article_ingest.ingest(engine, [article], now)


async def plan_at(engine: AsyncEngine, cadence: Cadence, now: datetime) -> list[PlannedDigest]:
    return await plan(engine, cadence, now, PlanOptions(max_articles=20, schedule=SCHEDULE, grace=GRACE))


async def recipients(engine: AsyncEngine, digest_id: str) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(deliveries.c.subscriber_id).where(deliveries.c.digest_id == digest_id))
        return sorted(rows.scalars())


async def test_a_day_in_24_zones_sends_each_subscriber_once_at_their_local_hour(publisher: Publisher) -> None:
    engine = publisher.engine
    start = datetime(2026, 3, 28, 0, 0, tzinfo=UTC)  # Europe moves its clocks the next night
    people: dict[int, tuple[str, int]] = {}
    for n, zone in enumerate(ZONES * 2):
        hour = (7 + n) % 24
        people[await subscribe(engine, f"p{n}@example.org", Cadence.DAILY, zone, hour, start)] = (zone, hour)
    received: Counter[int] = Counter()
    now = start + timedelta(minutes=1)
    day = 0
    while now < start + timedelta(days=3):
        if now.hour == 0 and now.minute < 15:  # something new every day
            day += 1
            await publish(engine, day, now)
        for digest in await plan_at(engine, Cadence.DAILY, now):
            for sid in await recipients(engine, digest.id):
                received[sid] += 1
                zone, hour = people[sid]
                local = now.astimezone(ZoneInfo(zone))
                # Woken every quarter hour: each wave goes within 15 minutes of its slot.
                slot = SCHEDULE.slot(Cadence.DAILY, zone, hour, now)
                assert timedelta(0) <= now - slot < timedelta(minutes=15), (zone, hour, local)
        now += timedelta(minutes=15)
    # Three days, the first slot of each subscriber at or after their sign-up at midnight UTC;
    # a digest only when something is new since the previous one.
    assert set(received) == set(people)
    assert all(2 <= count <= 3 for count in received.values()), received


async def test_a_second_trigger_for_the_same_slot_plans_nothing(publisher: Publisher) -> None:
    engine = publisher.engine
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    await subscribe(engine, "a@example.org", Cadence.DAILY, "Europe/Paris", 8, start)
    await subscribe(engine, "b@example.org", Cadence.DAILY, "Asia/Tokyo", 14, start)
    await publish(engine, 1, start)
    due = datetime(2026, 11, 26, 7, 5, tzinfo=UTC)  # after both slots: 07:00 and 05:00 UTC
    first, second = await asyncio.gather(plan_at(engine, Cadence.DAILY, due), plan_at(engine, Cadence.DAILY, due))
    assert sorted(len(p) for p in (first, second)) == [0, 1]
    [digest] = first or second
    assert digest.recipients == 2
    assert await plan_at(engine, Cadence.DAILY, due + timedelta(minutes=15)) == []


async def test_a_slot_missed_while_down_is_sent_once_within_the_grace_period(publisher: Publisher) -> None:
    engine = publisher.engine
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    sid = await subscribe(engine, "late@example.org", Cadence.DAILY, "UTC", 8, start)
    await publish(engine, 1, start)
    # Down from 07:00 to 13:00: the 08:00 slot is 5 hours late at start, within 6 hours.
    [digest] = await plan_at(engine, Cadence.DAILY, datetime(2026, 11, 20, 13, 0, tzinfo=UTC))
    assert await recipients(engine, digest.id) == [sid]
    assert await plan_at(engine, Cadence.DAILY, datetime(2026, 11, 20, 13, 15, tzinfo=UTC)) == []


async def test_a_slot_older_than_the_grace_period_is_skipped_and_its_articles_wait(
    publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    engine = publisher.engine
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    sid = await subscribe(engine, "away@example.org", Cadence.DAILY, "UTC", 8, start)
    await publish(engine, 1, start)
    with caplog.at_level(logging.WARNING, logger="publisher.digest"):
        assert await plan_at(engine, Cadence.DAILY, datetime(2026, 11, 20, 15, 0, tzinfo=UTC)) == []
    assert "skipped for 1 subscriber(s)" in caplog.text and "past the grace period" in caplog.text
    await publish(engine, 2, datetime(2026, 11, 20, 16, 0, tzinfo=UTC))
    [digest] = await plan_at(engine, Cadence.DAILY, datetime(2026, 11, 21, 8, 0, tzinfo=UTC))
    assert await recipients(engine, digest.id) == [sid]
    assert len(digest.article_seqs) == 2  # the skipped day's article is in the next digest


async def test_no_new_article_no_email_and_newcomers_wait_for_their_first_slot(publisher: Publisher) -> None:
    engine = publisher.engine
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    await subscribe(engine, "old@example.org", Cadence.DAILY, "UTC", 8, start)
    assert await plan_at(engine, Cadence.DAILY, datetime(2026, 11, 20, 8, 0, tzinfo=UTC)) == []  # nothing new
    await publish(engine, 1, datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    newcomer = await subscribe(
        engine, "new@example.org", Cadence.DAILY, "UTC", 8, datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    )
    # The newcomer's cursor starts at the newest article, and 08:00 came before they did.
    await publish(engine, 2, datetime(2026, 11, 20, 10, 0, tzinfo=UTC))
    assert await plan_at(engine, Cadence.DAILY, datetime(2026, 11, 20, 10, 15, tzinfo=UTC)) == []
    planned = await plan_at(engine, Cadence.DAILY, datetime(2026, 11, 21, 8, 0, tzinfo=UTC))
    # The old subscriber gets both articles; the newcomer only the one after they came.
    by_articles = {len(d.article_seqs): await recipients(engine, d.id) for d in planned}
    assert by_articles[1] == [newcomer] and len(by_articles[2]) == 1 and by_articles[2] != [newcomer]


async def test_weekly_goes_on_the_configured_weekday_at_the_local_hour(publisher: Publisher) -> None:
    engine = publisher.engine
    start = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday
    sid = await subscribe(engine, "week@example.org", Cadence.WEEKLY, "Asia/Kolkata", 9, start)
    await publish(engine, 1, start)
    sent_at = []
    now = start
    while now < start + timedelta(days=7):
        if await plan_at(engine, Cadence.WEEKLY, now):
            sent_at.append(now)
        now += timedelta(minutes=15)
    # Friday 20 November, 09:00 in Kolkata is 03:30 UTC.
    assert sent_at == [datetime(2026, 11, 20, 3, 30, tzinfo=UTC)]
    async with engine.connect() as conn:
        [digest_id] = (await conn.execute(select(digests.c.id).where(digests.c.cadence == "weekly"))).scalars()
    assert await recipients(engine, digest_id) == [sid]


async def test_weekly_readers_get_it_on_their_own_weekday(publisher: Publisher) -> None:
    engine = publisher.engine
    start = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday
    usual = await subscribe(engine, "usual@example.org", Cadence.WEEKLY, "Asia/Kolkata", 9, start)
    tuesday = await subscribe(engine, "tue@example.org", Cadence.WEEKLY, "Asia/Kolkata", 9, start, weekday="tue")
    sunday = await subscribe(engine, "sun@example.org", Cadence.WEEKLY, "UTC", None, start, weekday="sun")
    await publish(engine, 1, start)
    sent: dict[int, list[datetime]] = {}
    now = start
    while now < start + timedelta(days=7):
        for digest in await plan_at(engine, Cadence.WEEKLY, now):
            for sid in await recipients(engine, digest.id):
                sent.setdefault(sid, []).append(now)
        now += timedelta(minutes=15)
    assert sent == {
        tuesday: [datetime(2026, 11, 17, 3, 30, tzinfo=UTC)],  # Tuesday, 09:00 in Kolkata
        usual: [datetime(2026, 11, 20, 3, 30, tzinfo=UTC)],  # the site's Friday
        sunday: [datetime(2026, 11, 22, 8, 0, tzinfo=UTC)],  # Sunday at the site's hour
    }
    assert SCHEDULE.slot(Cadence.WEEKLY, "UTC", None, now, weekday="sun") == datetime(2026, 11, 22, 8, tzinfo=UTC)
