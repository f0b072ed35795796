"""Bounces and complaints: parsing real-world shaped reports, the rules, the API route and the CLI.

The fixtures in ``tests/fixtures/bounces/`` are shaped like what Gmail, Microsoft
365, Postfix, Exim, qmail, Yahoo and AOL send (their structure, headers and typical
wording), with made-up addresses and our own digests as the returned messages.
"""

from __future__ import annotations

import mailbox
from collections.abc import AsyncIterator
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from publisher import clock
from publisher.app import Publisher
from publisher.cli import main
from publisher.mail.bounces import is_redacted, our_message_id, parse_report
from publisher.mail.replies import Phase, ReplyAction, failure_kind, reply_action, status_code
from publisher.store.schema import deliveries, digests, subscribers
from publisher.web import api
from publisher.web.keys import PUBLISHER
from subscribers import service
from subscribers import store as subscriber_store
from subscribers.model import Preferences, Source, Status
from subscribers.validation import SubscriberError, email_hash
from tests.support.cli_output import summary
from tests.support.people import add_subscriber
from tests.support.running import with_publisher

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bounces"
DOMAIN = "news.example.org"  # the sending domain of the test config (brief@news.example.org)
DIGEST = "weekly-20260302T080000-3fa2c1"

# fixture → (verdict, [(recipient, kind, status, subscriber id from our Message-ID)])
EXPECTED: dict[str, tuple[str, list[tuple[str, str, str, int | None]]]] = {
    "gmail_hard_550_5_1_1.eml": ("bounce", [("nobody.here@gmail.com", "hard", "5.1.1", 17)]),
    "outlook_hard_550_5_1_10.eml": ("bounce", [("j.doe@contoso.example", "hard", "5.1.10", 21)]),
    "postfix_hard_user_unknown.eml": ("bounce", [("ann.reader@example.net", "hard", "5.1.1", 29)]),
    "postfix_soft_mailbox_full.eml": ("bounce", [("full.box@example.com", "soft", "5.2.2", 31)]),
    "postfix_soft_expired_4_4_1.eml": ("bounce", [("timeout.domain@fabrikam.example", "soft", "4.4.1", 37)]),
    "exim_hard_text.eml": ("bounce", [("old.user@example.co.uk", "hard", "5.1.1", 23)]),
    "qmail_hard_text.eml": ("bounce", [("gone@example.info", "hard", "5.1.1", 43)]),
    "yahoo_arf_complaint.eml": ("bounce", [("complainer.jane@yahoo.com", "complaint", "", 47)]),
    "aol_or_outlook_arf_redacted_with_message_id.eml": ("bounce", [("", "complaint", "", 58)]),
    "multi_recipient_dsn.eml": ("bounce", [
        ("first.gone@example.net", "hard", "5.1.1", None),
        ("second.slow@example.org", "soft", "4.4.2", None),
        # third.fine@example.org was relayed: not a failure
        ("fourth.blocked@example.com", "soft", "5.7.1", None),  # a blocklisted IP says nothing about the address
    ]),
    "delayed_4_4_7.eml": ("not-bounce", []),
    "out_of_office.eml": ("not-bounce", []),
    "vacation_autoreply.eml": ("not-bounce", []),
    "ordinary_reply.eml": ("not-bounce", []),
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- parsing -----------------------------------------------------------------------------


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_classified(name: str) -> None:
    verdict, events = EXPECTED[name]
    parsed = parse_report(fixture(name), source=name, sending_domain=DOMAIN)
    assert parsed.verdict == verdict, parsed.reason
    assert [(e.recipient, e.kind, e.status, e.subscriber_id) for e in parsed.events] == events
    assert all(e.source == name for e in parsed.events)
    if verdict == "not-bounce":
        assert parsed.reason
    for event in parsed.events:
        if event.subscriber_id is not None:
            assert event.digest_id and event.digest_id.startswith(("weekly-", "daily-"))
        assert "\n" not in event.diagnostic and len(event.diagnostic) <= 500


def test_diagnostics_are_the_remote_servers_words_on_one_line() -> None:
    gmail = parse_report(fixture("gmail_hard_550_5_1_1.eml")).events[0]
    # The multi-line reply's repeated "550-5.1.1" prefixes are gone; the words stay.
    assert gmail.diagnostic.startswith("550 5.1.1 The email account that you tried to reach does not exist")
    assert "550-5.1.1" not in gmail.diagnostic and "double-checking" in gmail.diagnostic
    outlook = parse_report(fixture("outlook_hard_550_5_1_10.eml")).events[0]
    assert outlook.diagnostic == (
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient j.doe@contoso.example not found by SMTP address lookup"
    )
    exim = parse_report(fixture("exim_hard_text.eml")).events[0]
    assert exim.diagnostic == "550 5.1.1 <old.user@example.co.uk>: No such user here"
    qmail = parse_report(fixture("qmail_hard_text.eml")).events[0]
    assert qmail.diagnostic == "Sorry, no mailbox here by that name. (#5.1.1)"
    yahoo = parse_report(fixture("yahoo_arf_complaint.eml")).events[0]
    assert yahoo.diagnostic == "feedback-type abuse"


def test_why_a_message_is_not_a_bounce() -> None:
    def reason(name: str) -> str:
        return parse_report(fixture(name)).reason

    assert "delay warning" in reason("delayed_4_4_7.eml")
    assert "auto-reply" in reason("out_of_office.eml")
    # Its body says "not being delivered", "Failed? Undeliverable?": headers decide, not words.
    assert "auto-reply (Auto-Submitted: auto-replied)" in reason("vacation_autoreply.eml")
    assert "not a delivery report" in reason("ordinary_reply.eml")


def test_subscriber_ids_come_only_from_our_own_message_ids() -> None:
    redacted = fixture("aol_or_outlook_arf_redacted_with_message_id.eml")
    event = parse_report(redacted, sending_domain=DOMAIN).events[0]
    assert (event.recipient, event.subscriber_id, event.digest_id) == ("", 58, "daily-20260303T070000-9be04d")
    # Without knowing our domain, or with another one, nothing identifies the reader.
    assert parse_report(redacted).verdict == "unparseable"
    other = parse_report(redacted, sending_domain="other.example")
    assert other.verdict == "unparseable" and "redacted" in other.reason
    assert parse_report(fixture("gmail_hard_550_5_1_1.eml")).events[0].subscriber_id is None

    assert our_message_id(f"<{DIGEST}.17@News.Example.org>", DOMAIN) == (DIGEST, 17)
    assert our_message_id(f"<{DIGEST}.17@news.example.org.evil.example>", DOMAIN) is None
    assert our_message_id(f"<{DIGEST}@{DOMAIN}>", DOMAIN) is None
    # A confirmation email's random Message-ID (digits and dots) is not a digest's.
    assert our_message_id(make_msgid(domain=DOMAIN), DOMAIN) is None


def test_redacted_addresses_are_recognised() -> None:
    for redacted in ("redacted@aol.com", "j***@example.com", "xxxxxxxx@example.com", "redacted", ""):
        assert is_redacted(redacted), redacted
    for real in ("jane@example.com", "x@example.com", "max@example.com"):
        assert not is_redacted(real), real


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind"),
    [
        ("5.1.1", "550 5.1.1 user unknown", "hard"),
        ("5.1.10", "", "hard"),
        ("5.2.1", "mailbox disabled", "hard"),
        ("5.2.2", "552 5.2.2 Mailbox full", "soft"),
        ("4.2.2", "452 4.2.2 over quota", "soft"),
        ("", "552 Requested mail action aborted: exceeded storage allocation", "soft"),
        ("5.0.0", "550 Mailbox is full", "soft"),
        ("4.4.7", "", "soft"),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", "soft"),
        ("5.7.1", "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org", "soft"),
        ("5.7.1", "550 5.7.1 <x@example.com>: Recipient address rejected: User unknown", "hard"),
        ("", "550 No such user here", "hard"),
        ("", "550-5.1.1 The email account that you tried to reach does not exist", "hard"),
        ("2.0.0", "250 2.0.0 Ok", None),
        ("", "connection refused", None),
    ],
)
def test_failure_kind(status: str, diagnostic: str, kind: str | None) -> None:
    assert failure_kind(status, diagnostic) == kind


@pytest.mark.parametrize(
    ("code", "phase", "reply", "action"),
    [
        # Gmail
        (550, Phase.RCPT, "5.1.1 The email account that you tried to reach does not exist. Please try\n"
         "5.1.1 double-checking the recipient's email address for typos", ReplyAction.HARD_BOUNCE),
        (550, Phase.RCPT, "5.2.1 The email account that you tried to reach is disabled.", ReplyAction.HARD_BOUNCE),
        (552, Phase.RCPT, "5.2.2 The email account that you tried to reach is over quota.", ReplyAction.SOFT_BOUNCE),
        (550, Phase.DATA, "5.7.26 This mail is unauthenticated, which poses a security risk to the sender "
         "and Gmail users", ReplyAction.MESSAGE_FAILED),
        (550, Phase.DATA, "5.7.1 [203.0.113.9] Our system has detected that this message is likely "
         "unsolicited mail.", ReplyAction.MESSAGE_FAILED),
        (552, Phase.DATA, "5.7.0 This message was blocked because its content presents a potential "
         "security issue.", ReplyAction.MESSAGE_FAILED),
        (421, Phase.DATA, "4.7.0 [203.0.113.9] Our system has detected an unusual rate of unsolicited mail",
         ReplyAction.THROTTLED),
        (450, Phase.RCPT, "4.2.1 The user you are trying to contact is receiving mail at a rate that "
         "prevents additional messages from being delivered.", ReplyAction.THROTTLED),
        (535, Phase.CONNECT, "5.7.8 Username and Password not accepted.", ReplyAction.RETRY),
        # Outlook / Exchange Online
        (550, Phase.RCPT, "5.5.0 Requested action not taken: mailbox unavailable (S2017062302)",
         ReplyAction.HARD_BOUNCE),
        (550, Phase.RCPT, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
         ReplyAction.HARD_BOUNCE),
        (550, Phase.DATA, "5.1.1 RESOLVER.ADR.RecipNotFound; not found", ReplyAction.HARD_BOUNCE),
        (550, Phase.RCPT, "5.7.1 Service unavailable, Client host [203.0.113.9] blocked using Spamhaus",
         ReplyAction.MESSAGE_FAILED),
        (550, Phase.DATA, "5.7.520 Access denied, Your organization does not allow external forwarding.",
         ReplyAction.MESSAGE_FAILED),
        (530, Phase.CONNECT, "5.7.0 Must issue a STARTTLS command first", ReplyAction.RETRY),
        # Amazon SES
        (554, Phase.DATA, "Message rejected: Email address is not verified. The following identities failed "
         "the check in region US-EAST-1: brief@news.example.org", ReplyAction.MESSAGE_FAILED),
        (554, Phase.MAIL, "Message rejected: Sending paused for this account.", ReplyAction.MESSAGE_FAILED),
        (454, Phase.DATA, "Throttling failure: Maximum sending rate exceeded.", ReplyAction.THROTTLED),
        (535, Phase.CONNECT, "Authentication Credentials Invalid", ReplyAction.RETRY),
        # Postfix
        (550, Phase.RCPT, "5.1.1 <ann@example.org>: Recipient address rejected: User unknown in local "
         "recipient table", ReplyAction.HARD_BOUNCE),
        (554, Phase.RCPT, "5.7.1 <ann@example.org>: Relay access denied", ReplyAction.MESSAGE_FAILED),
        (550, Phase.RCPT, "5.1.8 <brief@news.example.org>: Sender address rejected: Domain not found",
         ReplyAction.MESSAGE_FAILED),
        (553, Phase.MAIL, "5.7.1 <brief@news.example.org>: Sender address rejected: not owned by user",
         ReplyAction.MESSAGE_FAILED),
        (552, Phase.DATA, "5.3.4 Message size exceeds fixed limit", ReplyAction.MESSAGE_FAILED),
        (554, Phase.DATA, "5.6.0 content rejected", ReplyAction.MESSAGE_FAILED),
        (552, Phase.DATA, "5.0.0 Message rejected at end of data", ReplyAction.MESSAGE_FAILED),
        (451, Phase.RCPT, "4.7.1 <ann@example.org>: Recipient address rejected: Greylisted", ReplyAction.THROTTLED),
        # Exim
        (550, Phase.RCPT, "Unrouteable address", ReplyAction.HARD_BOUNCE),
        (551, Phase.RCPT, "User not local; please try <ann@example.net>", ReplyAction.HARD_BOUNCE),
        (553, Phase.RCPT, "sorry, that domain isn't in my list of allowed rcpthosts", ReplyAction.HARD_BOUNCE),
        (550, Phase.RCPT, "relay not permitted", ReplyAction.MESSAGE_FAILED),
        (550, Phase.RCPT, "Verification failed for <brief@news.example.org>\nSender verify failed",
         ReplyAction.MESSAGE_FAILED),
        (552, Phase.RCPT, "Mailbox is full", ReplyAction.SOFT_BOUNCE),
        (550, Phase.DATA, "Administrative prohibition", ReplyAction.MESSAGE_FAILED),
        (455, Phase.RCPT, "4.5.0 Server unable to accommodate parameters", ReplyAction.RETRY),
        # no reply at all
        (None, Phase.CONNECT, "Connection refused", ReplyAction.RETRY),
        (None, Phase.ENVELOPE, "'a@b>\\r\\nRCPT TO:<c@d' is not one envelope address", ReplyAction.MESSAGE_FAILED),
    ],
)
def test_a_relays_reply_bounces_only_for_the_recipient(
    code: int | None, phase: Phase, reply: str, action: ReplyAction
) -> None:
    assert reply_action(code, status_code(reply), phase, reply) is action


def test_enhanced_codes_are_not_read_out_of_ip_addresses() -> None:
    assert status_code("connect to mx[5.6.7.8]:25: timed out") == ""
    assert status_code("said: 550 5.1.1 unknown") == "5.1.1"
    assert status_code("no mailbox (#5.1.1).") == "5.1.1"


def report(body: str, ctype: str = "message/delivery-status", report_type: str = "") -> bytes:
    report_type = report_type or ("feedback-report" if "feedback" in ctype else "delivery-status")
    return (
        "From: MAILER-DAEMON@mail.example.net\nTo: brief@news.example.org\nSubject: report\n"
        f'MIME-Version: 1.0\nContent-Type: multipart/report; report-type={report_type}; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\nA report.\n\n--b\nContent-Type: {ctype}\n\n{body}\n--b--\n"
    ).encode()


def test_unusual_reports() -> None:
    delivered = report("Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@example.com\nAction: delivered\n"
                       "Status: 2.0.0\n")
    assert parse_report(delivered).verdict == "not-bounce"
    assert "without failures (delivered)" in parse_report(delivered).reason

    # No Action field: judged by the status; a "failed" without any code is a hard bounce.
    no_action = report("Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@example.com\nStatus: 5.1.1\n")
    assert [(e.recipient, e.kind) for e in parse_report(no_action).events] == [("a@example.com", "hard")]
    no_status = report("Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822;<B@Example.com>\nAction: failed\n")
    assert [(e.recipient, e.kind) for e in parse_report(no_status).events] == [("b@example.com", "hard")]
    only_original = report("Original-Recipient: rfc822; c@example.com\nAction: failed\nStatus: 4.0.0\n")
    assert [(e.recipient, e.kind) for e in parse_report(only_original).events] == [("c@example.com", "soft")]

    no_fields = report("Reporting-MTA: dns; x\n")
    assert parse_report(no_fields).verdict == "unparseable"
    nobody = report("Reporting-MTA: dns; x\n\nAction: failed\nStatus: 5.1.1\n")
    assert "not named" in parse_report(nobody).reason
    # ... unless X-Failed-Recipients names the one recipient.
    named = b"X-Failed-Recipients: d@example.com\n" + nobody
    assert [e.recipient for e in parse_report(named).events] == ["d@example.com"]

    for feedback, verdict in (("abuse", "bounce"), ("fraud", "bounce"), ("not-spam", "not-bounce"),
                              ("auth-failure", "not-bounce")):
        arf = report(f"Feedback-Type: {feedback}\nOriginal-Rcpt-To: e@example.com\n", "message/feedback-report")
        assert parse_report(arf).verdict == verdict, feedback
    anonymous = report("Feedback-Type: abuse\nOriginal-Rcpt-To: redacted@example.com\n", "message/feedback-report")
    assert parse_report(anonymous, sending_domain=DOMAIN).verdict == "unparseable"

    missing_part = report("hello", ctype="text/plain", report_type="delivery-status")
    assert "without its message/delivery-status part" in parse_report(missing_part).reason
    receipt = report("Final-Recipient: rfc822; f@example.com\nDisposition: manual-action/MDN-sent-manually; displayed",
                     ctype="message/disposition-notification", report_type="disposition-notification")
    assert "read receipt" in parse_report(receipt).reason


def test_text_bounces_and_their_look_alikes() -> None:
    exim_delay = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nTo: brief@news.example.org\n"
        b"Auto-Submitted: auto-replied\nSubject: Warning: message 1rgA2b-000Abc-7x delayed 24 hours\n\n"
        b"This message was created automatically by mail delivery software.\n"
        b"A message that you sent has not yet been delivered to one or more of its recipients after more than\n"
        b"24 hours on the queue on mx.example.net.\n\n  slow@example.net\n    Delay reason: mailbox is full\n"
    )
    assert "delay warning" in parse_report(exim_delay).reason
    nameless = (
        b"From: MAILER-DAEMON@mx.example.net\nTo: brief@news.example.org\nSubject: Undelivered Mail\n\n"
        b"Your message could not be delivered. Permanent error.\n"
    )
    assert "names no failed recipient" in parse_report(nameless).reason
    retry = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nX-Failed-Recipients: late@example.net\n"
        b"Subject: Mail delivery failed: returning message to sender\n\n"
        b"A message that you sent could not be delivered to one or more of its\n"
        b"recipients. This is a permanent error. The following address(es) failed:\n\n"
        b"  late@example.net\n    retry timeout exceeded\n"
    )
    [event] = parse_report(retry).events
    assert (event.recipient, event.kind) == ("late@example.net", "soft")
    # A person writing "undeliverable" is not a mail system.
    person = b"From: Dee <dee@example.net>\nSubject: Undeliverable package\n\nThe parcel could not be delivered.\n"
    assert parse_report(person).verdict == "not-bounce"


NASTY = [
    b"",
    b"\x00" * 64,
    b"hello world",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500,  # an Outlook .msg
    b"Content-Type: multipart/report; report-type=delivery-status\n\nno boundary at all",
    (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
     b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!notbase64\n--x--\n"),
    b"From: =?utf-8?b?////?= <\xff@\xfe>\nX-Failed-Recipients: ,,,<>,@,\nSubject: =?bogus?q?x?=\n\n\xff\xfe",
    b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\nContent-Type: multipart/mixed; boundary=a\n\n" * 500,
    b"Content-Type: message/rfc822\n\n" * 200 + b"Subject: deep\n\nbody",
]


@pytest.mark.parametrize("data", NASTY, ids=range(len(NASTY)))
def test_nasty_input_is_reported_never_raised(data: bytes) -> None:
    parsed = parse_report(data, source="nasty.eml", sending_domain=DOMAIN)
    assert parsed.verdict in ("unparseable", "not-bounce", "bounce")
    assert parsed.verdict != "bounce" or parsed.events
    if data.startswith(b"\xd0\xcf"):
        assert ".msg" in parsed.reason


def test_truncated_reports_never_raise() -> None:
    for name in ("gmail_hard_550_5_1_1.eml", "yahoo_arf_complaint.eml", "exim_hard_text.eml"):
        data = fixture(name)
        for cut in range(0, len(data), 61):
            parsed = parse_report(data[:cut], sending_domain=DOMAIN)
            assert parsed.verdict != "bounce" or parsed.events


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parsed = parse_report(data, sending_domain=DOMAIN)
    assert parsed.verdict in ("unparseable", "not-bounce", "bounce")
    assert parsed.verdict != "bounce" or parsed.events


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([
    "Final-Recipient: rfc822; a@example.com", "Action: failed", "Action: delayed", "Status: 5.1.1",
    "Status: 4.2.2", "Diagnostic-Code: smtp; 550 no", "Original-Recipient: b@example.com", "", " folded",
    "Final-Recipient: x400; /c=us/", "Status: 9.9.9", "Action:", ":",
]), max_size=20))
def test_arbitrary_delivery_status_fields_never_raise(lines: list[str]) -> None:
    parsed = parse_report(report("\n".join(lines)), sending_domain=DOMAIN)
    assert parsed.verdict in ("unparseable", "not-bounce", "bounce")
    for event in parsed.events:
        assert event.kind in ("hard", "soft") and (event.recipient or event.subscriber_id is not None)


# --- the rules ---------------------------------------------------------------------------


async def suppression(publisher: Publisher, address: str) -> str | None:
    async with publisher.engine.connect() as conn:
        return await subscriber_store.suppression(conn, email_hash(address))


async def soft_count(publisher: Publisher, subscriber_id: int) -> int:
    async with publisher.engine.connect() as conn:
        return (await conn.scalar(select(subscribers.c.soft_bounces).where(subscribers.c.id == subscriber_id))) or 0


async def record(publisher: Publisher, kind: Any, *, email: str | None = None, subscriber_id: int | None = None,
                 **kwargs: Any) -> service.BounceOutcome:
    return await service.record_bounce(
        publisher.engine, email=email, subscriber_id=subscriber_id, kind=kind, now=clock.now(), soft_limit=3, **kwargs
    )


async def readd(publisher: Publisher, address: str) -> None:
    await service.create(publisher.engine, address, prefs=Preferences(), source=Source.API, confirmed=True,
                         now=clock.now())


@pytest.mark.parametrize(("kind", "status"), [("hard", Status.BOUNCED), ("complaint", Status.COMPLAINED)])
async def test_hard_bounces_and_complaints_suppress_at_once(publisher: Publisher, kind: str, status: Status) -> None:
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    outcome = await record(publisher, kind, email="Ann@Example.org")
    assert outcome.subscriber is not None and outcome.subscriber.status == status
    assert outcome.suppressed and outcome.newly_suppressed and outcome.known
    assert await suppression(publisher, "ann@example.org") == status.value
    with pytest.raises(service.Suppressed, match=status.value):
        await readd(publisher, "ann@example.org")
    again = await record(publisher, kind, email="ann@example.org")  # idempotent
    assert again.suppressed and not again.newly_suppressed and again.subscriber is not None
    assert again.subscriber.id == sub.id and again.subscriber.status == status


async def test_soft_bounces_suppress_at_the_limit(publisher: Publisher) -> None:
    sub = await add_subscriber(publisher.engine, "full@example.org")
    for expected in (1, 2):
        outcome = await record(publisher, "soft", email="full@example.org")
        assert outcome.soft_bounces == expected and not outcome.suppressed
        assert outcome.subscriber is not None and outcome.subscriber.status == Status.ACTIVE
    assert await suppression(publisher, "full@example.org") is None

    dry = await record(publisher, "soft", email="full@example.org", dry_run=True)
    assert dry.newly_suppressed and dry.subscriber is not None and dry.subscriber.status == Status.BOUNCED
    assert await soft_count(publisher, sub.id) == 2  # the dry run was rolled back
    assert await suppression(publisher, "full@example.org") is None

    third = await record(publisher, "soft", email="full@example.org")
    assert third.soft_bounces == 3 and third.newly_suppressed
    assert third.subscriber is not None and third.subscriber.status == Status.BOUNCED
    assert await suppression(publisher, "full@example.org") == "bounced"
    with pytest.raises(service.Suppressed):
        await readd(publisher, "full@example.org")
    # Once gone, further soft bounces count nothing.
    assert (await record(publisher, "soft", email="full@example.org")).soft_bounces == 3


async def test_unknown_addresses(publisher: Publisher) -> None:
    hard = await record(publisher, "hard", email="stranger@example.org")
    assert not hard.known and hard.newly_suppressed
    assert await suppression(publisher, "stranger@example.org") == "bounced"
    with pytest.raises(service.Suppressed):  # protects the sender should it be added later
        await readd(publisher, "stranger@example.org")
    soft = await record(publisher, "soft", email="other@example.org")
    assert not soft.known and not soft.suppressed
    assert await suppression(publisher, "other@example.org") is None
    with pytest.raises(SubscriberError):
        await record(publisher, "hard", email="not an address")
    with pytest.raises(ValueError, match="kind"):
        await record(publisher, "bounced", email="x@example.org")
    with pytest.raises(ValueError, match="address or a subscriber id"):
        await record(publisher, "hard")


async def test_who_left_keeps_their_status(publisher: Publisher) -> None:
    sub = await add_subscriber(publisher.engine, "gone@example.org")
    await service.leave(publisher.engine, sub.id, now=clock.now())
    outcome = await record(publisher, "hard", email="gone@example.org")
    assert outcome.subscriber is not None and outcome.subscriber.status == Status.UNSUBSCRIBED
    assert outcome.suppressed and not outcome.newly_suppressed
    assert (await record(publisher, "soft", email="gone@example.org")).soft_bounces == 0


async def plan_digest(publisher: Publisher, digest_id: str, subscriber_id: int) -> None:
    now = clock.now()
    async with publisher.engine.begin() as conn:
        await conn.execute(insert(digests).values(id=digest_id, cadence="weekly", article_seqs="[]",
                                                  status="finished", created_at=now))
        await conn.execute(insert(deliveries).values(digest_id=digest_id, subscriber_id=subscriber_id,
                                                     state="sent", updated_at=now))


async def test_a_subscriber_id_counts_only_for_a_digest_they_were_sent(publisher: Publisher) -> None:
    ann = await add_subscriber(publisher.engine, "ann@example.org")
    bo = await add_subscriber(publisher.engine, "bo@example.org")
    await plan_digest(publisher, DIGEST, ann.id)
    forged = await record(publisher, "complaint", subscriber_id=bo.id, digest_id=DIGEST)
    assert not forged.known and not forged.suppressed
    assert await suppression(publisher, "bo@example.org") is None
    real = await record(publisher, "complaint", subscriber_id=ann.id, digest_id=DIGEST)
    assert real.subscriber is not None and real.subscriber.status == Status.COMPLAINED
    assert await suppression(publisher, "ann@example.org") == "complained"


# --- the API -----------------------------------------------------------------------------

TOKEN = "bounce-test-token-0c1d2e3f"


@pytest.fixture
async def client(publisher: Publisher, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("PUBLISHER_API_TOKEN", TOKEN)
    app = web.Application()
    app[PUBLISHER] = publisher
    api.add_api_routes(app)
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


async def test_api_needs_the_token(client: TestClient, publisher: Publisher) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(client.make_url("/api/bounces"), json={"email": "a@example.org", "type": "hard"})
        assert response.status == 401
    assert await suppression(publisher, "a@example.org") is None


async def test_api_records_one_bounce(client: TestClient, publisher: Publisher) -> None:
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    response = await client.post("/api/bounces", json={"email": "Ann@Example.org", "type": "complaint",
                                                       "reason": "abuse report from a webhook"})
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {
        "email": "ann@example.org", "type": "complaint", "subscriber_id": sub.id,
        "subscriber_status": "complained", "suppressed": True, "soft_bounces": 0,
    }
    soft = await client.post("/api/bounces", json={"email": "nobody@example.org", "type": "soft"})
    assert (await soft.json())["subscriber_id"] is None and (await soft.json())["suppressed"] is False


async def test_api_lists_every_problem_of_one_invalid_bounce(client: TestClient) -> None:
    response = await client.post("/api/bounces", json={"email": "nope", "type": "bounced", "extra": 1,
                                                       "reason": "x" * 1001})
    assert response.status == 422
    body = await response.json()
    assert {p["field"] for p in body["problems"]} == {"email", "type", "extra", "reason"}
    for bad, status in (([1] * 1001, 422), ("just text", 422)):
        assert (await client.post("/api/bounces", json=bad)).status == status
    assert (await client.post("/api/bounces", data=b"{}", headers={"Content-Type": "text/plain"})).status == 415
    too_big = b"[" + b'{"email": "a@example.org", "type": "hard"},' * 30000 + b"{}]"
    response = await client.post("/api/bounces", data=too_big, headers={"Content-Type": "application/json"})
    assert response.status == 413


async def test_api_applies_the_valid_items_of_a_list(client: TestClient, publisher: Publisher) -> None:
    await add_subscriber(publisher.engine, "soft@example.org")
    items: list[object] = [
        {"email": "hard@example.org", "type": "hard"},
        {"email": "soft@example.org", "type": "soft"},
        {"email": "soft@example.org", "type": "wrong"},
        "not an object",
        {"email": "soft@example.org", "type": "soft", "reason": "552 5.2.2 mailbox full"},
    ]
    response = await client.post("/api/bounces", json=items)
    assert response.status == 200
    body = await response.json()
    assert body["applied"] == 3
    assert [(r["index"], r["soft_bounces"], r["suppressed"]) for r in body["results"]] == [
        (0, 0, True), (1, 1, False), (4, 2, False)
    ]
    assert [(p["index"], p["field"]) for p in body["invalid"]] == [(2, "type"), (3, None)]
    async with publisher.engine.connect() as conn:
        assert await subscriber_store.suppression(conn, email_hash("hard@example.org")) == "bounced"
    assert (await client.post("/api/bounces", json=[])).status == 200


# --- the CLI -----------------------------------------------------------------------------


def invoke(site_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), *args], env={"COLUMNS": "200"})




def status_of(site_dir: Path, address: str) -> str:
    shown = invoke(site_dir, "subscribers", "show", address)
    assert shown.exit_code == 0, shown.output
    return next(line for line in shown.stdout.splitlines() if " status " in line).split("│")[2].strip()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def bounce_maildir(site_dir: Path) -> Path:
    """A Maildir holding every fixture in new/, one of them already read (cur/, Seen), and a broken file."""
    path = site_dir / "bounces"
    box = mailbox.Maildir(path, create=True)
    for name in sorted(EXPECTED):
        message = mailbox.MaildirMessage(fixture(name))
        if name == "out_of_office.eml":
            message.set_subdir("cur")
            message.add_flag("S")
        box.add(message)
    box.add(mailbox.MaildirMessage(b"\x00\x01 not mail at all"))
    box.close()
    return path


def subscribe_fixture_readers(site_dir: Path) -> None:
    for address in ("nobody.here@gmail.com", "full.box@example.com", "complainer.jane@yahoo.com",
                    "first.gone@example.net", "second.slow@example.org"):
        assert invoke(site_dir, "subscribers", "add", address).exit_code == 0


def test_cli_imports_a_maildir_read_only(site_dir: Path, bounce_maildir: Path) -> None:
    subscribe_fixture_readers(site_dir)
    before = snapshot(bounce_maildir)

    dry = invoke(site_dir, "bounces", "import", str(bounce_maildir), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "(dry run: nothing changed)" in dry.stdout
    assert status_of(site_dir, "nobody.here@gmail.com") == "active"

    result = invoke(site_dir, "bounces", "import", str(bounce_maildir))
    assert result.exit_code == 0, result.output
    expected = {
        "messages read": len(EXPECTED) + 1,
        "hard bounces": 6,  # gmail, outlook, postfix, exim, qmail, first.gone
        "soft bounces": 4,  # mailbox full, expired, second.slow, fourth.blocked
        "complaints": 2,  # yahoo; aol (redacted, subscriber 58 was never sent that digest: unknown)
        # the hard bounces of j.doe, ann.reader, old.user, gone (not subscribers), nobody.here and first.gone,
        # and jane's complaint
        "addresses suppressed now": 7,
        # j.doe, ann.reader, old.user, gone, timeout.domain, fourth.blocked, the redacted complaint
        "unknown addresses (not subscribers)": 7,
        "not bounces (auto-replies, delay warnings, other mail)": 4,
        "unparseable": 1,
    }
    assert summary(result.stdout) == expected
    assert summary(dry.stdout) == expected  # a dry run reports what the real run does
    broken = [line for line in result.stderr.splitlines() if "unparseable" in line]
    assert len(broken) == 1 and str(bounce_maildir / "new") in broken[0] and "no header fields" in broken[0]

    assert status_of(site_dir, "nobody.here@gmail.com") == "bounced"
    assert status_of(site_dir, "first.gone@example.net") == "bounced"
    assert status_of(site_dir, "complainer.jane@yahoo.com") == "complained"
    assert status_of(site_dir, "full.box@example.com") == "active"  # one soft bounce of three
    assert status_of(site_dir, "second.slow@example.org") == "active"
    assert "suppressed" in invoke(site_dir, "subscribers", "add", "ann.reader@example.net").stderr
    assert snapshot(bounce_maildir) == before  # read-only: nothing moved, nothing flagged


def test_cli_mark_seen_reads_each_message_once(site_dir: Path, bounce_maildir: Path) -> None:
    subscribe_fixture_readers(site_dir)
    first = invoke(site_dir, "bounces", "import", str(bounce_maildir), "--mark-seen", "-v")
    assert first.exit_code == 0, first.output
    counts = summary(first.stdout)
    assert counts["messages read"] == len(EXPECTED)  # the out-of-office was already Seen
    assert counts["skipped: already flagged Seen"] == 1
    assert "full.box@example.com: soft 5.2.2 → subscriber #" in first.stdout  # -v lists the events
    assert "active (1 soft)" in first.stdout
    assert "not a bounce: a delay warning" in first.stdout
    assert not list((bounce_maildir / "new").iterdir())
    assert all(name.endswith(":2,S") for name in (p.name for p in (bounce_maildir / "cur").iterdir()))

    for _ in range(3):  # cron, again and again: soft bounces are not counted twice
        again = invoke(site_dir, "bounces", "import", str(bounce_maildir), "--mark-seen")
        assert summary(again.stdout)["messages read"] == 0
    assert status_of(site_dir, "full.box@example.com") == "active"
    for _ in range(2):  # without --mark-seen, the same soft bounce counts again (the docs say so)
        invoke(site_dir, "bounces", "import", str(bounce_maildir))
    assert status_of(site_dir, "full.box@example.com") == "bounced"


def test_cli_reads_files_and_directories_of_eml(site_dir: Path, tmp_path: Path) -> None:
    subscribe_fixture_readers(site_dir)
    single = invoke(site_dir, "bounces", "import", str(FIXTURES / "gmail_hard_550_5_1_1.eml"))
    assert single.exit_code == 0, single.output
    assert summary(single.stdout)["hard bounces"] == 1
    assert status_of(site_dir, "nobody.here@gmail.com") == "bounced"

    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "yahoo.EML").write_bytes(fixture("yahoo_arf_complaint.eml"))
    (folder / "outlook.msg").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    (folder / "notes.txt").write_text("not a message", encoding="utf-8")
    result = invoke(site_dir, "bounces", "import", str(folder))
    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["messages read"] == 2 and summary(result.stdout)["complaints"] == 1
    assert f"{folder / 'outlook.msg'}: unparseable: an Outlook .msg file" in result.stderr
    assert status_of(site_dir, "complainer.jane@yahoo.com") == "complained"

    assert invoke(site_dir, "bounces", "import", str(tmp_path / "missing")).exit_code == 2
    not_maildir = invoke(site_dir, "bounces", "import", str(folder), "--mark-seen")
    assert not_maildir.exit_code == 2 and "needs a Maildir" in not_maildir.output


def test_cli_identifies_a_redacted_complaint_by_our_message_id(site_dir: Path, tmp_path: Path) -> None:
    """The AOL-style report names no address: our Message-ID and the ledger say who it was."""
    assert invoke(site_dir, "subscribers", "add", "aol.reader@aol.com").exit_code == 0
    digest_id = "daily-20260303T070000-9be04d"

    async def planned(publisher: Publisher) -> int:
        async with publisher.engine.connect() as conn:
            found = await subscriber_store.find(conn, "aol.reader@aol.com")
        assert found is not None
        await plan_digest(publisher, digest_id, found.id)
        return found.id

    subscriber_id = with_publisher(site_dir / "config.toml", planned)
    original = fixture("aol_or_outlook_arf_redacted_with_message_id.eml")
    report_file = tmp_path / "aol.eml"
    report_file.write_bytes(original.replace(b"9be04d.58@", f"9be04d.{subscriber_id}@".encode()))
    result = invoke(site_dir, "bounces", "import", str(report_file), "-v")
    assert result.exit_code == 0, result.output
    counts = summary(result.stdout)
    assert counts["complaints"] == 1 and counts["unknown addresses (not subscribers)"] == 0
    assert f"(redacted; subscriber #{subscriber_id} by Message-ID): complaint → subscriber #{subscriber_id}" \
        in result.stdout
    assert status_of(site_dir, "aol.reader@aol.com") == "complained"

    # The same report about a digest that subscriber never got identifies nobody.
    assert invoke(site_dir, "subscribers", "add", "other@aol.com").exit_code == 0
    report_file.write_bytes(original.replace(b"9be04d.58@", f"9be04d.{subscriber_id + 1}@".encode()))
    forged = invoke(site_dir, "bounces", "import", str(report_file))
    assert summary(forged.stdout)["unknown addresses (not subscribers)"] == 1
    assert status_of(site_dir, "other@aol.com") == "active"
