"""DKIM through the whole pipeline: what the publisher sends verifies with dkimpy, on both backends.

The signing itself, key by key and header by header, is tested without a store in
``tests/unit/test_dkim.py``; this test borrows its key and its check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from publisher.config import Settings
from publisher.mail import dkim_keys
from tests.unit.test_dkim import DOMAIN, SELECTOR, verifies


async def test_every_delivered_digest_and_confirmation_is_signed(
    make_settings: Callable[..., Settings], tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Through the whole pipeline: the messages the SMTP server receives verify with dkimpy."""
    from publisher.app import Publisher
    from subscribers.model import Cadence
    from tests.support.people import add_subscriber
    from tests.support.smtp_server import HOST, SmtpServer

    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(dkim_keys.private_key_pem(rsa_key))
    key_file.chmod(0o600)
    record = dkim_keys.dns_txt_value(rsa_key)
    with SmtpServer() as server:
        settings = make_settings(
            f'[smtp]\nhost = "{HOST}"\nport = {server.port}\n'
            f'[dkim]\nselector = "{SELECTOR}"\ndomain = "{DOMAIN}"\nkey_file = "{key_file}"\n'
        )
        settings.delivery.transport = "smtp"
        publisher = Publisher(settings)
        await publisher.start()
        try:
            for n in range(3):
                await add_subscriber(publisher.engine, f"r{n}@example.org", cadence=Cadence.INSTANT)
            await publisher.intake.scan()
            report = (await publisher.delivery.send([Cadence.INSTANT])).report
            subscriber = await add_subscriber(publisher.engine, "new@example.org")
            await publisher.notices.send_confirmation(subscriber)
        finally:
            await publisher.close()
    assert report is not None and report.sent == 3
    assert len(server.messages) == 4
    for received in server.messages:
        assert received.content.startswith(b"DKIM-Signature:")
        assert verifies(received.content, record)
