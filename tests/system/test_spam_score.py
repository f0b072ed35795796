"""SpamAssassin's verdict on every kind of email the publisher sends, as it left the outbox.

A reader's filter judges the message as a whole: a rule such as HTML_FONT_LOW_CONTRAST (text in
the background's colour, the old trick of hiding words from readers) costs every digest points
at every recipient whose server runs SpamAssassin.  Each message is scored with the local rules
only (``-L``: no DNS or network tests, which depend on the sending host, not on the message).
"""

from __future__ import annotations

import asyncio
import email.message
import os
import re
import shutil
from collections.abc import Callable

import pytest

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from subscribers import service
from subscribers.model import Cadence, Preferences, Source
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber

# Locally a machine without it skips; CI sets PUBLISHER_REQUIRE_TOOLS so that a missing
# install step fails instead of hiding behind a skip.
pytestmark = [
    pytest.mark.skipif(
        shutil.which("spamassassin") is None and not os.environ.get("PUBLISHER_REQUIRE_TOOLS"),
        reason="needs SpamAssassin (apt-get install spamassassin)",
    ),
    pytest.mark.slow,
]

# No rule about the message itself may score: the informational ones (no Received header in
# a message that never crossed a relay) score 0.
MAX_SCORE = 0.0
_STATUS = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=(.*?) autolearn=", re.M | re.S)


async def spam_status(message: email.message.EmailMessage) -> tuple[float, list[str]]:
    """SpamAssassin's score and the rules that hit, for the message's bytes as sent."""
    process = await asyncio.create_subprocess_exec(
        "spamassassin", "-L", "-t", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    output, _ = await process.communicate(message.as_bytes())
    found = _STATUS.search(output.decode("utf-8", "replace"))
    assert found, output[:2000]
    return float(found.group(1)), [rule for rule in re.split(r"[\s,]+", found.group(2)) if rule]


async def test_every_email_kind_scores_nothing(make_settings: Callable[..., Settings]) -> None:
    publisher = Publisher(make_settings())
    await publisher.start()
    try:
        reader = await add_subscriber(publisher.engine, "reader@example.org", name="Sample Reader",
                                      cadence=Cadence.INSTANT)
        await publisher.intake.scan()  # the sample articles: new to the reader
        await publisher.delivery.send([Cadence.INSTANT])
        newcomer = await service.create(publisher.engine, "newcomer@example.org", name="New Reader",
                                        prefs=Preferences(), source=Source.API, confirmed=False, now=clock.now())
        await publisher.notices.send_confirmation(newcomer)
        await publisher.notices.send_welcome(reader)
        await publisher.notices.send_manage_link(reader)
        await publisher.notices.send_preferences_link(reader)
        messages = outbox_messages(publisher.settings)
    finally:
        await publisher.close()
    assert len(messages) == 5, [m["Subject"] for m in messages]
    verdicts = await asyncio.gather(*(spam_status(message) for message in messages))
    scored = {message["Subject"]: verdict for message, verdict in zip(messages, verdicts)}
    assert all(score <= MAX_SCORE for score, _ in scored.values()), scored
