"""DeliveryService.resume: only a paused digest is continued."""

from __future__ import annotations

from publisher.app import Publisher


async def test_resuming_a_digest_that_is_not_paused_delivers_nothing(publisher: Publisher) -> None:
    assert await publisher.delivery.resume("instant-20000101T000000-000000") is None
    assert (await publisher.delivery.remaining()).total == 0
