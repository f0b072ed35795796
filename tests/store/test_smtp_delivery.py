"""Digests delivered end to end through a real SMTP server (aiosmtpd) over STARTTLS."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Callable
from pathlib import Path

import trustme
from sqlalchemy import select

from publisher.app import Publisher
from publisher.config import Settings
from publisher.store.schema import deliveries, subscribers
from subscribers.model import Cadence
from tests.support.people import add_subscriber
from tests.support.smtp_server import HOST, SmtpServer


async def test_digest_over_starttls_with_a_self_signed_certificate(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "localhost").configure_cert(server_context)
    with SmtpServer(starttls=server_context, replies={"gone@example.org": "550 5.1.1 No such user"}) as server:
        settings = make_settings(
            f'[smtp]\nhost = "{HOST}"\nport = {server.port}\ntls = "starttls"\nca_file = "{ca_file}"\n'
        )
        settings.delivery.transport = "smtp"
        settings.delivery.concurrency = 1  # so that the reuse of one connection shows
        publisher = Publisher(settings)
        await publisher.start()
        try:
            for address in ("ann@example.org", "gone@example.org", "bob@example.org"):
                await add_subscriber(publisher.engine, address)
            await publisher.intake.scan()
            first = await publisher.delivery.send([Cadence.INSTANT])
            second = await publisher.delivery.send([Cadence.INSTANT])
            async with publisher.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(subscribers.c.email, deliveries.c.state, deliveries.c.last_reply).join(
                            subscribers, subscribers.c.id == deliveries.c.subscriber_id
                        )
                    )
                ).all()
                gone = (await conn.execute(
                    select(subscribers.c.status).where(subscribers.c.email == "gone@example.org"))).scalar_one()
        finally:
            await publisher.close()

    assert first.report is not None and (first.report.sent, first.report.failed) == (2, 1)
    assert second.planned == [] and second.report is not None and second.report.sent == 0
    states = {row.email: (row.state, row.last_reply) for row in rows}
    assert states["ann@example.org"][0] == states["bob@example.org"][0] == "sent"
    assert states["gone@example.org"][0] == "failed" and "550" in states["gone@example.org"][1]
    assert gone == "bounced"  # "no such user": the address is suppressed

    assert sorted(r for m in server.messages for r in m.rcpt_tos) == ["ann@example.org", "bob@example.org"]
    assert all(m.tls for m in server.messages)
    assert server.connections == 1
    parsed = email.message_from_bytes(server.messages[0].content, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Message-ID"].endswith("@news.example.org>")
