"""SubscriberService.page: a page longer than one store query holds (the CLI's --limit has no ceiling)."""

from __future__ import annotations

import pytest

from publisher.app import Publisher
from subscribers import store as subscriber_store
from tests.support.people import add_subscriber


async def test_a_page_longer_than_the_store_answers_is_filled_from_the_last_id(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = [await add_subscriber(publisher.engine, f"reader{n}@example.org") for n in range(7)]
    monkeypatch.setattr(subscriber_store, "PAGE_LIMIT", 2)  # each store query answers at most 2 rows

    page = await publisher.subscribers.page(limit=5)
    assert [s.id for s in page.subscribers] == [s.id for s in added[:5]]
    assert page.next_after == added[4].id and page.total == 7

    rest = await publisher.subscribers.page(after=added[4].id, limit=5)
    assert [s.id for s in rest.subscribers] == [s.id for s in added[5:]]
    assert rest.next_after is None and rest.total == 7
