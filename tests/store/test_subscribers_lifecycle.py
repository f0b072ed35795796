"""The subscriber lifecycle rules, on the real store (SQLite and PostgreSQL), without the web."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from publisher import clock
from publisher.app import Publisher
from publisher.digest.plan import PlanOptions, plan
from publisher.store.ingest import ingest
from publisher.store.db import create_engine
from publisher.store.schema import deliveries, subscribers, suppressions
from subscribers import service
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Preferences, Source, Status
from subscribers.validation import (
    SubscriberError,
    check_send_hour,
    check_timezone,
    check_topics,
    email_hash,
    normalize_email,
    split_topics,
)
from tests.support.articles import seed_like
from tests.support.people import add_subscriber

PREFS = Preferences(cadence=Cadence.INSTANT)


async def suppression(publisher: Publisher, address: str) -> str | None:
    async with publisher.engine.connect() as conn:
        return await subscriber_store.suppression(conn, email_hash(address))


def test_addresses_are_normalized_and_case_insensitive() -> None:
    assert normalize_email("  Ann@Example.ORG ") == "ann@example.org"
    for bad in ("", "ann", "ann@", "a b@example.org", "ann@example..org", "x" * 300 + "@example.org"):
        with pytest.raises(SubscriberError) as error:
            normalize_email(bad)
        assert error.value.field == "email"


def test_field_checks_name_the_field_and_the_reason() -> None:
    assert check_topics(["North Korea", "russia", "RUSSIA"], ["north-korea", "russia"]) == ("north-korea", "russia")
    assert split_topics("a|b, c ;d") == ["a", "b", "c", "d"]
    with pytest.raises(SubscriberError, match="unknown topic 'sport'") as error:
        check_topics(["sport"], ["russia"])
    assert error.value.field == "topics"
    assert check_timezone("Asia/Seoul") == "Asia/Seoul"
    for zone in ("Mars/Base", "../etc/passwd", ""):
        with pytest.raises(SubscriberError, match="timezone"):
            check_timezone(zone)
    assert check_send_hour("") is None and check_send_hour("7") == 7
    for hour in ("24", "-1", "seven"):
        with pytest.raises(SubscriberError, match="send hour"):
            check_send_hour(hour)


async def test_sign_up_is_pending_until_confirmed_and_starts_at_the_newest_article(publisher: Publisher) -> None:
    await publisher.intake.scan()
    sub, needs_confirmation = await service.sign_up(
        publisher.engine, "Ann@Example.org", name="Ann", prefs=PREFS, source=Source.WEB, now=clock.now()
    )
    assert needs_confirmation and sub.status == Status.PENDING and sub.email == "ann@example.org"
    await ingest(publisher.engine, [seed_like(id="while-pending", slug="while-pending")], clock.now())
    assert await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5)) == []  # pending gets nothing

    active = await service.confirm(publisher.engine, sub.id, now=clock.now())
    assert active is not None and active.status == Status.ACTIVE and active.confirmed_source == Source.WEB
    assert await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5)) == []  # no back catalogue
    await ingest(publisher.engine, [seed_like(id="after", slug="after")], clock.now())
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
    assert digest.recipients == 1


async def test_signing_up_an_active_address_changes_nothing(publisher: Publisher) -> None:
    sub = await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.DAILY)
    again, needs_confirmation = await service.sign_up(
        publisher.engine, "ann@example.org", name="Mallory", prefs=Preferences(cadence=Cadence.INSTANT),
        source=Source.WEB, now=clock.now(),
    )
    assert not needs_confirmation
    assert again == sub


async def test_the_same_address_signed_up_twice_at_once_is_one_pending_subscriber(publisher: Publisher) -> None:
    # A double click: two requests at the same moment, each on its own connection.
    second = create_engine(publisher.engine.url.render_as_string(hide_password=False))
    prefs = Preferences(cadence=Cadence.DAILY)
    try:
        results = await asyncio.gather(*(
            service.sign_up(engine, "twice@example.org", name="", prefs=prefs, source=Source.WEB, now=clock.now())
            for engine in (publisher.engine, second, publisher.engine, second)
        ))
    finally:
        await second.dispose()
    assert {sub.id for sub, _ in results} == {results[0][0].id}
    assert all(due for _, due in results)  # each request's confirmation goes out
    async with publisher.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(subscribers)) == 1


async def test_leaving_suppresses_and_only_double_opt_in_lifts_it(publisher: Publisher) -> None:
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    left = await service.leave(publisher.engine, sub.id, now=clock.now())
    assert left is not None and left.status == Status.UNSUBSCRIBED
    assert await suppression(publisher, "ann@example.org") == "unsubscribed"
    for source in (Source.API, Source.IMPORT, Source.CLI):
        with pytest.raises(service.Suppressed, match="only its owner"):
            await service.create(
                publisher.engine, "ANN@example.org", prefs=PREFS, source=source, confirmed=True, now=clock.now()
            )
    pending, _ = await service.sign_up(
        publisher.engine, "ann@example.org", name="", prefs=PREFS, source=Source.WEB, now=clock.now()
    )
    assert pending.status == Status.PENDING
    assert await suppression(publisher, "ann@example.org") == "unsubscribed"  # until she confirms
    await service.confirm(publisher.engine, sub.id, now=clock.now())
    assert await suppression(publisher, "ann@example.org") is None


async def test_an_old_confirmation_does_not_bring_back_someone_who_left(publisher: Publisher) -> None:
    sub, _ = await service.sign_up(
        publisher.engine, "ann@example.org", name="", prefs=PREFS, source=Source.WEB, now=clock.now()
    )
    await service.leave(publisher.engine, sub.id, now=clock.now())
    after = await service.confirm(publisher.engine, sub.id, now=clock.now())
    assert after is not None and after.status == Status.UNSUBSCRIBED


@pytest.mark.parametrize("status", [Status.BOUNCED, Status.COMPLAINED])
async def test_bounces_and_complaints_suppress_with_their_reason(publisher: Publisher, status: Status) -> None:
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    marked = await service.leave(publisher.engine, sub.id, now=clock.now(), status=status)
    assert marked is not None and marked.status == status
    assert await suppression(publisher, "ann@example.org") == status.value
    with pytest.raises(ValueError):
        await service.leave(publisher.engine, sub.id, now=clock.now(), status=Status.ACTIVE)


async def test_suppressing_an_unknown_address_blocks_it_in_advance(publisher: Publisher) -> None:
    assert await service.suppress(publisher.engine, "Never@Example.org", now=clock.now()) is None
    with pytest.raises(service.Suppressed, match="manual"):
        await add_subscriber(publisher.engine, "never@example.org")


async def test_erasing_deletes_personal_data_and_keeps_only_a_hash(publisher: Publisher) -> None:
    await publisher.intake.scan()
    sub = await add_subscriber(publisher.engine, "ann@example.org", name="Ann")
    await ingest(publisher.engine, [seed_like(id="x", slug="x")], clock.now())
    await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
    assert await service.erase(publisher.engine, sub.id, now=clock.now())
    assert not await service.erase(publisher.engine, sub.id, now=clock.now())
    async with publisher.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(subscribers)) == 0
        assert await conn.scalar(select(func.count()).select_from(deliveries)) == 0
        rows = (await conn.execute(select(suppressions))).all()
    assert [(r.email_hash, r.reason) for r in rows] == [(email_hash("ann@example.org"), "erased")]
    assert "ann" not in repr(rows)


async def test_topics_pick_the_articles_of_a_digest(publisher: Publisher) -> None:
    await publisher.intake.scan()
    await add_subscriber(publisher.engine, "all@example.org")
    await add_subscriber(publisher.engine, "climate@example.org", topics=["climate"])
    await ingest(publisher.engine, [seed_like(id="war", slug="war", tags=("Russia",))], clock.now())
    await ingest(publisher.engine, [seed_like(id="heat", slug="heat", tags=("Climate",))], clock.now())
    digests = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
    by_size = sorted((len(d.article_seqs), d.recipients) for d in digests)
    assert by_size == [(1, 1), (2, 1)]  # the climate reader gets only the climate article


async def test_search_pages_by_id_and_filters(publisher: Publisher) -> None:
    for n in range(7):
        await add_subscriber(publisher.engine, f"reader{n}@example.org", name=f"Reader {n}")
    await add_subscriber(publisher.engine, "zed@other.example", name="Zed")
    seen, after = [], 0
    while page := await subscriber_store.search(publisher.engine, query="example.org", after=after, limit=3):
        seen += [s.email for s in page]
        after = page[-1].id
    assert seen == [f"reader{n}@example.org" for n in range(7)]
    assert [s.email for s in await subscriber_store.search(publisher.engine, query="ZED")] == ["zed@other.example"]
    assert await subscriber_store.count(publisher.engine, query="%") == 0  # LIKE wildcards are literal
    assert await subscriber_store.count(publisher.engine, status=Status.ACTIVE) == 8
