"""Transports against real peers: an aiosmtpd server in-process, a Maildir on disk."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import mailbox
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtplib import SMTPConnectError

from publisher.config import DeliverySettings, SmtpSettings
from publisher.mail.replies import Phase
from publisher.mail.transport import (
    DeliveryError,
    MaildirTransport,
    SmtpTransport,
    make_transport,
)
from publisher.mail.wire import WireMessage
from tests.support.smtp_faults import FaultServer
from tests.support.smtp_server import HOST, SmtpServer, tls_contexts

SENDER = "newsletter@example.org"
READER = "reader@example.org"

# CRLF as on the wire, a line starting with "." (dot-stuffed in transit) and 8-bit text.
MESSAGE = (
    "From: News <newsletter@example.org>\r\n"
    "To: reader@example.org\r\n"
    "Subject: Weekly digest\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hello, Zoë.\r\n"
    ".hidden line that must survive dot-stuffing\r\n"
    "..two dots\r\n"
    "Bye.\r\n"
).encode()


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts()


@pytest.fixture(params=[False, True], ids=["classic", "pipelined"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Whether the server offers PIPELINING (RFC 2920): each exchange both ways."""
    return bool(request.param)


@pytest.fixture
def server(pipelining: bool) -> Iterator[SmtpServer]:
    replies = {"gone@example.org": "550 5.1.1 No such user", "full@example.org": "451 4.2.0 Try later"}
    with SmtpServer(replies=replies, pipelining=pipelining) as srv:
        yield srv


def smtp_settings(port: int, **overrides: object) -> SmtpSettings:
    return SmtpSettings.model_validate({"host": HOST, "port": port, "timeout": 5.0, **overrides})


# SMTP: delivery and connection reuse


async def test_delivers_message_byte_for_byte(server: SmtpServer) -> None:
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        reply = await transport.send(SENDER, READER, MESSAGE)

    assert reply == "2.0.0 Ok: queued as Q1"
    [received] = server.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, [READER])
    assert received.content == MESSAGE
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    assert parsed["Subject"] == "Weekly digest"
    assert parsed.get_content().splitlines()[1] == ".hidden line that must survive dot-stuffing"


async def test_reuses_one_connection_for_many_messages(server: SmtpServer) -> None:
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        for n in range(3):
            await transport.send(SENDER, f"reader{n}@example.org", MESSAGE)

    assert [m.rcpt_tos for m in server.messages] == [[f"reader{n}@example.org"] for n in range(3)]
    assert server.connections == 1


async def test_connects_on_first_send_without_open(server: SmtpServer) -> None:
    transport = SmtpTransport(smtp_settings(server.port))
    try:
        await transport.send(SENDER, READER, MESSAGE)
    finally:
        await transport.close()
    assert len(server.messages) == 1


async def test_any_line_ends_go_out_as_crlf_dot_stuffed_with_the_declared_size(server: SmtpServer) -> None:
    # Bare LF and bare CR line ends, a first line starting with "." and no final line end.
    message = b"Subject: odd\n\n.first\rsecond\n..third\r\nlast"
    wire = b"Subject: odd\r\n\r\n.first\r\nsecond\r\n..third\r\nlast\r\n"
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        await transport.send(SENDER, READER, message)
        await transport.send(SENDER, READER, MESSAGE)

    assert [m.content for m in server.messages] == [wire, MESSAGE]
    # RFC 1870: SIZE counts the message as transmitted, before dot-stuffing.
    assert [m.mail_options for m in server.messages] == [[f"SIZE={len(wire)}"], [f"SIZE={len(MESSAGE)}"]]


@pytest.mark.parametrize(
    ("recipient", "envelope"),
    [
        ("reader@bücher.example", "reader@xn--bcher-kva.example"),  # IDN domain: punycode
        ('"john doe"@example.org', '"john doe"@example.org'),  # a quoted local part stays quoted
        ("o'neil+news@example.org", "o'neil+news@example.org"),
    ],
)
async def test_envelope_addresses(server: SmtpServer, recipient: str, envelope: str) -> None:
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        await transport.send(SENDER, recipient, MESSAGE)
    assert [m.rcpt_tos for m in server.messages] == [[envelope]]


@pytest.mark.parametrize("recipient", ["zoë@example.org", "reader@example.org>\r\nRCPT TO:<x@example.org"])
async def test_an_address_no_envelope_can_carry_is_permanent_and_sends_nothing(
    server: SmtpServer, recipient: str
) -> None:
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        with pytest.raises(DeliveryError) as caught:
            await transport.send(SENDER, recipient, MESSAGE)
        await transport.send(SENDER, READER, MESSAGE)

    assert caught.value.permanent and caught.value.code is None
    assert [m.rcpt_tos for m in server.messages] == [[READER]]


# SMTP: TLS


async def test_tls_none_stays_plain_even_when_starttls_is_offered(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    # A server offering (not requiring) STARTTLS: aiosmtplib's default would upgrade.
    server_ctx, client_ctx = tls
    with SmtpServer(starttls=server_ctx, require_starttls=False) as server:
        async with SmtpTransport(smtp_settings(server.port, tls="none"), tls_context=client_ctx) as transport:
            await transport.send(SENDER, READER, MESSAGE)
    assert [m.tls for m in server.messages] == [False]


async def test_starttls_with_trusted_certificate(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with SmtpServer(starttls=server_ctx) as server:
        async with SmtpTransport(smtp_settings(server.port, tls="starttls"), tls_context=client_ctx) as transport:
            await transport.send(SENDER, READER, MESSAGE)
    assert [(m.tls, m.content) for m in server.messages] == [(True, MESSAGE)]


@pytest.mark.parametrize("validate_certs", [True, False])
async def test_starttls_certificate_validation(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], validate_certs: bool
) -> None:
    # No tls_context: the system trust store, which doesn't know the test CA.
    server_ctx, _ = tls
    with SmtpServer(starttls=server_ctx) as server:
        transport = SmtpTransport(smtp_settings(server.port, tls="starttls", validate_certs=validate_certs))
        if validate_certs:
            with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED") as caught:
                await transport.open()
            assert not caught.value.permanent
        else:
            async with transport:
                await transport.send(SENDER, READER, MESSAGE)
    assert [m.tls for m in server.messages] == ([] if validate_certs else [True])


async def test_starttls_required_but_not_offered_fails(server: SmtpServer) -> None:
    transport = SmtpTransport(smtp_settings(server.port, tls="starttls"))
    with pytest.raises(DeliveryError, match="STARTTLS") as caught:
        await transport.open()
    assert (caught.value.permanent, caught.value.code) == (False, None)
    with pytest.raises(DeliveryError, match="STARTTLS"):
        await transport.send(SENDER, READER, MESSAGE)
    await transport.close()
    assert server.messages == []


async def test_implicit_tls(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with SmtpServer(implicit_tls=server_ctx) as server:
        async with SmtpTransport(smtp_settings(server.port, tls="implicit"), tls_context=client_ctx) as transport:
            await transport.send(SENDER, READER, MESSAGE)
    assert [(m.tls, m.content) for m in server.messages] == [(True, MESSAGE)]


# SMTP: AUTH


async def test_logs_in_with_password_from_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret-Pa55")
    caplog.set_level(logging.DEBUG)
    with SmtpServer(auth=("mailer", "s3cret-Pa55")) as server:
        settings = smtp_settings(server.port, username="mailer", password_env="TEST_SMTP_PASSWORD")
        async with SmtpTransport(settings) as transport:
            await transport.send(SENDER, READER, MESSAGE)
    assert [m.login for m in server.messages] == ["mailer"]
    assert "s3cret-Pa55" not in caplog.text


async def test_wrong_password_is_a_temporary_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # 535 is about our credentials, not the recipient: it must not bounce the address.
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    with SmtpServer(auth=("mailer", "right")) as server:
        transport = SmtpTransport(smtp_settings(server.port, username="mailer", password_env="TEST_SMTP_PASSWORD"))
        with pytest.raises(DeliveryError) as caught:
            await transport.send(SENDER, READER, MESSAGE)
        await transport.close()
    assert (caught.value.permanent, caught.value.code) == (False, 535)
    assert server.messages == []


# SMTP: refusals and failures


async def test_550_is_permanent_and_the_connection_stays_usable(server: SmtpServer) -> None:
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        with pytest.raises(DeliveryError) as caught:
            await transport.send(SENDER, "gone@example.org", MESSAGE)
        await transport.send(SENDER, READER, MESSAGE)

    error = caught.value
    assert (error.permanent, error.code, error.reply) == (True, 550, "5.1.1 No such user")
    assert "550 5.1.1 No such user" in str(error)
    assert [m.rcpt_tos for m in server.messages] == [[READER]]
    assert server.connections == 1


async def test_451_is_temporary(server: SmtpServer) -> None:
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        with pytest.raises(DeliveryError) as caught:
            await transport.send(SENDER, "full@example.org", MESSAGE)
    assert (caught.value.permanent, caught.value.code) == (False, 451)
    assert server.connections == 1  # a 4xx is an answer, not a reason to reconnect


async def test_421_retries_once_on_a_fresh_connection_then_fails(pipelining: bool) -> None:
    with SmtpServer(replies={READER: "421 4.3.2 Service shutting down"}, pipelining=pipelining) as server:
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            with pytest.raises(DeliveryError) as caught:
                await transport.send(SENDER, READER, MESSAGE)
    assert (caught.value.permanent, caught.value.code) == (False, 421)
    assert server.connections == 2


class _ClosingAfterData(SmtpServer):
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "421 4.3.0 Closing after DATA"


async def test_421_after_data_also_retries_on_a_fresh_connection(pipelining: bool) -> None:
    with _ClosingAfterData(pipelining=pipelining) as server:
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            with pytest.raises(DeliveryError) as caught:
                await transport.send(SENDER, READER, MESSAGE)
    assert (caught.value.permanent, caught.value.code) == (False, 421)
    assert server.connections == 2


class _HeldData(SmtpServer):
    """Holds each DATA reply until ``release`` is set (``entered`` says DATA arrived);
    the reply names the recipient, so a reply paired with the wrong message shows."""

    def __init__(self, *, pipelining: bool) -> None:
        super().__init__(pipelining=pipelining)
        self.entered = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.entered.set()
        await asyncio.to_thread(self.release.wait)
        await super().handle_DATA(server, session, envelope)
        return f"250 2.0.0 Ok: queued for {envelope.rcpt_tos[0]}"


async def test_a_send_cancelled_mid_transaction_does_not_desync_the_next(pipelining: bool) -> None:
    with _HeldData(pipelining=pipelining) as server:
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            cancelled = asyncio.create_task(transport.send(SENDER, "first@example.org", MESSAGE))
            await asyncio.to_thread(server.entered.wait)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            server.release.set()  # the server now answers the abandoned DATA
            reply = await transport.send(SENDER, "second@example.org", MESSAGE)
    assert reply == "2.0.0 Ok: queued for second@example.org"
    assert server.connections == 2


async def test_connection_refused_is_temporary() -> None:
    # A bound but not listening socket: connecting is refused, and no one else can take the port.
    with socket.socket() as placeholder:
        placeholder.bind((HOST, 0))
        port = placeholder.getsockname()[1]
        transport = SmtpTransport(smtp_settings(port))
        with pytest.raises(DeliveryError) as caught:
            await transport.open()
        with pytest.raises(DeliveryError):
            await transport.send(SENDER, READER, MESSAGE)
        await transport.close()
    assert (caught.value.permanent, caught.value.code) == (False, None)
    assert f"port {port}" in caught.value.reply  # says where, for the operator's log
    assert isinstance(caught.value.__cause__, SMTPConnectError)
    assert isinstance(caught.value.__cause__.__cause__, ConnectionRefusedError)


async def test_silent_server_times_out_as_temporary() -> None:
    # Accepted by the kernel's backlog, but no greeting ever comes.
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen()
        transport = SmtpTransport(smtp_settings(silent.getsockname()[1], timeout=0.2))
        with pytest.raises(DeliveryError, match="[Tt]imed out") as caught:
            await transport.open()
        await transport.close()
    assert (caught.value.permanent, caught.value.code) == (False, None)


async def test_reconnects_when_the_server_drops_the_connection(server: SmtpServer) -> None:
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        await transport.send(SENDER, "first@example.org", MESSAGE)
        server.drop_connections()
        await transport.send(SENDER, "second@example.org", MESSAGE)
    assert [m.rcpt_tos for m in server.messages] == [["first@example.org"], ["second@example.org"]]
    assert server.connections == 2


async def test_reconnects_after_a_server_restart(pipelining: bool) -> None:
    first = SmtpServer(pipelining=pipelining)
    first.start()
    try:
        transport = SmtpTransport(smtp_settings(first.port))
        await transport.open()
        await transport.send(SENDER, "first@example.org", MESSAGE)
    finally:
        first.stop()
    with SmtpServer(port=first.port, pipelining=pipelining) as second:
        await transport.send(SENDER, "second@example.org", MESSAGE)
        await transport.close()
    assert [m.rcpt_tos for m in first.messages] == [["first@example.org"]]
    assert [m.rcpt_tos for m in second.messages] == [["second@example.org"]]


# SMTP: PIPELINING (RFC 2920)


async def test_commands_are_pipelined_exactly_when_the_server_offers_it(pipelining: bool) -> None:
    with FaultServer(pipelining=pipelining) as server:
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            for n in range(3):
                await transport.send(SENDER, f"reader{n}@example.org", MESSAGE)
    assert server.counters.pipelined == (3 if pipelining else 0)
    assert [m.content for m in server.messages] == [MESSAGE] * 3


async def test_a_refused_recipient_in_a_pipelined_group_is_the_answer_and_no_content_goes() -> None:
    # DATA went out behind the refused RCPT and was answered 503: the message's outcome is
    # the RCPT's reply, the content is never sent, and RSET leaves the session usable.
    with FaultServer(pipelining=True) as server:
        server.fail("gone@example.org", "550 5.1.1 No such user")
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            with pytest.raises(DeliveryError) as caught:
                await transport.send(SENDER, "gone@example.org", MESSAGE)
            await transport.send(SENDER, READER, MESSAGE)
    assert (caught.value.code, caught.value.phase, caught.value.reply) == (550, Phase.RCPT, "5.1.1 No such user")
    assert caught.value.permanent
    assert server.counters.data_ends == 1 and [m.rcpt_tos for m in server.messages] == [[READER]]
    assert server.counters.sessions_opened == 1


class _RefusingSender(SmtpServer):
    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        return "553 5.7.1 Sender address rejected: not owned by user"


async def test_a_refused_sender_in_a_pipelined_group_is_the_answer() -> None:
    with _RefusingSender(pipelining=True) as server:
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            for _ in range(2):  # the session survives the refusal (RSET)
                with pytest.raises(DeliveryError) as caught:
                    await transport.send(SENDER, READER, MESSAGE)
                assert (caught.value.code, caught.value.phase) == (553, Phase.MAIL)
    assert server.messages == [] and server.connections == 1


async def test_a_421_mid_pipeline_retries_once_on_a_fresh_connection() -> None:
    # The server answers RCPT with 421 and closes, the DATA behind it unanswered.
    with FaultServer(pipelining=True) as server:
        server.fail(READER, "421 4.7.0 Too many connections, closing", times=1)
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            reply = await transport.send(SENDER, READER, MESSAGE)
            await transport.send(SENDER, "second@example.org", MESSAGE)
    assert reply.startswith("2.0.0")
    assert [m.rcpt_tos for m in server.messages] == [[READER], ["second@example.org"]]
    assert server.counters.sessions_opened == 2


class _CutAtRcpt(SmtpServer):
    """Cuts the first connection as it reads the first RCPT: the pipelined group is unanswered."""

    def __init__(self) -> None:
        super().__init__(pipelining=True)
        self.cut = False

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.cut:
            self.cut = True
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


async def test_a_connection_dropped_mid_pipeline_retries_once_on_a_fresh_connection() -> None:
    with _CutAtRcpt() as server:
        async with SmtpTransport(smtp_settings(server.port)) as transport:
            await transport.send(SENDER, READER, MESSAGE)
    assert [m.rcpt_tos for m in server.messages] == [[READER]]
    assert server.connections == 2


async def test_a_pre_built_wire_message_goes_out_as_given(server: SmtpServer) -> None:
    wire = WireMessage.of(MESSAGE)
    async with SmtpTransport(smtp_settings(server.port)) as transport:
        await transport.send(SENDER, READER, wire)
    assert [(m.content, m.mail_options) for m in server.messages] == [(MESSAGE, [f"SIZE={len(MESSAGE)}"])]


# Maildir


async def test_maildir_stores_exact_bytes_after_envelope_lines(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    async with MaildirTransport(outbox) as transport:
        name = await transport.send(SENDER, READER, MESSAGE)

    stored = (outbox / "new" / name).read_bytes()
    header = f"Return-Path: <{SENDER}>\r\nX-Original-To: {READER}\r\n".encode()
    assert stored == header + MESSAGE
    parsed = mailbox.Maildir(outbox, create=False)[name]
    assert (parsed["X-Original-To"], parsed["Return-Path"]) == (READER, f"<{SENDER}>")
    assert parsed["Subject"] == "Weekly digest"
    assert list((outbox / "tmp").iterdir()) == []


async def test_maildir_stores_a_wire_message_as_the_plain_message(tmp_path: Path) -> None:
    async with MaildirTransport(tmp_path) as transport:
        name = await transport.send(SENDER, READER, WireMessage.of(MESSAGE))
    header = f"Return-Path: <{SENDER}>\r\nX-Original-To: {READER}\r\n".encode()
    assert (tmp_path / "new" / name).read_bytes() == header + MESSAGE  # not dot-stuffed


async def test_maildir_matches_lf_line_endings(tmp_path: Path) -> None:
    message = MESSAGE.replace(b"\r\n", b"\n")
    async with MaildirTransport(tmp_path) as transport:
        name = await transport.send(SENDER, READER, message)
    assert (tmp_path / "new" / name).read_bytes() == (
        f"Return-Path: <{SENDER}>\nX-Original-To: {READER}\n".encode() + message
    )


async def test_maildir_uses_an_existing_empty_directory_and_unique_names(tmp_path: Path) -> None:
    # tmp_path exists already: mailbox.Maildir(create=True) alone would not add tmp/new/cur.
    async with MaildirTransport(tmp_path) as transport:
        names = {await transport.send(SENDER, f"r{n}@example.org", MESSAGE) for n in range(5)}
    assert len(names) == 5
    assert {p.name for p in (tmp_path / "new").iterdir()} == names
    assert sorted(m["X-Original-To"] for m in mailbox.Maildir(tmp_path, create=False)) == [
        f"r{n}@example.org" for n in range(5)
    ]


async def test_maildir_refuses_line_breaks_in_addresses(tmp_path: Path) -> None:
    async with MaildirTransport(tmp_path) as transport:
        with pytest.raises(ValueError):
            await transport.send(SENDER, "reader@example.org\r\nBcc: victim@example.org", MESSAGE)
    assert list((tmp_path / "new").iterdir()) == []


# Factory


def test_make_transport_follows_the_delivery_setting(tmp_path: Path) -> None:
    smtp = SmtpSettings()
    assert isinstance(make_transport(DeliverySettings(transport="smtp"), smtp), SmtpTransport)
    maildir = make_transport(DeliverySettings(transport="maildir", outbox=tmp_path), smtp)
    assert isinstance(maildir, MaildirTransport)
