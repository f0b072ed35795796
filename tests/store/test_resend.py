"""A resent article (``publisher resend``) tells each reader it is an update, in their own cadence's words."""

from __future__ import annotations

from publisher.app import Publisher
from publisher.config import Settings
from subscribers.model import Cadence
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber
from tests.system.test_daemon import NEW_ARTICLE


async def test_a_resent_article_says_it_is_an_update_in_each_readers_cadence(
    publisher: Publisher, settings: Settings
) -> None:
    for cadence in (Cadence.INSTANT, Cadence.DAILY, Cadence.WEEKLY):
        await add_subscriber(publisher.engine, f"{cadence}@example.org", cadence=cadence)
    (settings.content.dir / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
    await publisher.intake.scan()
    result = await publisher.delivery.resend("harbour-bridge-reopens")
    assert result.report is not None and result.report.sent == 3
    resent = {m["To"].addresses[0].addr_spec: m for m in outbox_messages(settings) if "<resend-" in m["Message-ID"]}
    assert len(resent) == 3
    for cadence in (Cadence.INSTANT, Cadence.DAILY, Cadence.WEEKLY):
        message = resent[f"{cadence}@example.org"]
        assert message["Subject"] == "Updated: The harbour bridge reopens early"
        for kind in ("plain", "html"):
            body = message.get_body((kind,))
            assert body is not None
            text = " ".join(body.get_content().split())
            assert f"An update to an article from your {cadence} digest" in text, (cadence, kind)
            assert "new article" not in text
            others = {c for c in Cadence if c != cadence}
            assert not any(f"{other} digest" in text for other in others), (cadence, kind)
