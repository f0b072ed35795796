"""Every header we write is valid RFC 2047 / RFC 5322, whatever its text.

CPython's own folder can write an empty encoded-word (``=?utf-8?q??=``) where a
non-ASCII character meets the fold; neomutt and K-9 show it literally, while
Python's parser hides it.  So these tests read the RAW header bytes: each field is
unfolded by hand, every encoded-word is checked on its own, the text is decoded
with ``email.header`` and the whole message is parsed again with the strict policy.
"""

from __future__ import annotations

import dataclasses
import email.policy
import email.utils
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from publisher.config import DeliverySettings, Settings, SiteSettings
from publisher.mail.message import build_message, build_notice
from publisher.mail.render import Personal, RenderedDigest, render_digest
from publisher.templating import make_environment
from tests.support.articles import seed_like

WHEN = datetime(2024, 6, 20, 8, 0, tzinfo=UTC)
DIGEST_ID = "daily-20240620T080000-3fa2c1"
REPORTED = "Community Solar Co-ops Doubled Their Output in a Year — Here's Why"

_ENCODED_WORD = re.compile(rb"=\?([^?\s]*)\?([qQbB])\?([^?\s]*)\?=")
_EMPTY_WORD = re.compile(rb"=\?[^?\s]*\?[qQbB]\?\?=")

# Text a person or an article may put in a header: anything printable, with the
# characters that tripped folders so far weighted in (dashes, emoji, CJK, marks).
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_TRICKY = "—–’“”…ÄöüßéèçñØå€😀👍🏽🇩🇪中文日本語한국어\u0301\u0308\u200dабвгд"
_texts = st.text(
    st.one_of(
        # Bidi overrides are left out of headers on purpose: see test_bidi_overrides_never_reach_a_header.
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=_BIDI),
        st.sampled_from(_TRICKY),
        st.sampled_from(" abcdefghij ,:.-'\"=?"),
    ),
    min_size=1,
    max_size=400,
).filter(lambda text: bool(text.split()))


def one_line(text: str) -> str:
    return " ".join(text.split())


def site_settings(from_name: str = "Solar Weekly", title: str = "Solar Weekly") -> Settings:
    return Settings(
        site=SiteSettings(title=title, url="https://news.example.org/"),
        delivery=DeliverySettings(from_address="newsletter@news.example.org", from_name=from_name),
    )


@pytest.fixture(scope="module")
def rendered() -> RenderedDigest:
    return render_digest([seed_like()], site_settings(), make_environment(), DIGEST_ID, "daily")


def raw_field(raw: bytes, name: str) -> list[bytes]:
    """The lines of header field ``name`` exactly as sent (first line, then continuations)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.lower().startswith(name.lower().encode() + b":"))
    lines = [head[start]]
    for line in head[start + 1 :]:
        if not line[:1].isspace():
            break
        lines.append(line)
    return lines


def check_field(raw: bytes, name: str) -> str:
    """Check ``name``'s raw lines and return its text as a reader's client decodes it."""
    lines = raw_field(raw, name)
    assert all(line.isascii() for line in lines)
    assert all(len(line) <= 78 for line in lines), lines
    value = b"".join(lines).split(b":", 1)[1]  # unfolding: CRLF removed, the whitespace kept
    assert not _EMPTY_WORD.search(value), value
    for word in _ENCODED_WORD.finditer(value):
        assert len(word.group(0)) <= 75, word.group(0)
        assert word.group(1).lower() == b"utf-8"
        assert word.group(3), word.group(0)
        # Each encoded-word holds whole characters: it decodes on its own.
        make_header(decode_header(word.group(0).decode()))
    return str(make_header(decode_header(value.decode().strip())))


def strict(raw: bytes) -> email.message.EmailMessage:
    """The message as a strict parser reads it; any defect in a header we check fails the test."""
    message = BytesParser(policy=email.policy.strict).parsebytes(raw)
    assert isinstance(message, email.message.EmailMessage)
    return message


def check_mailbox(raw: bytes, field: str, name: str, address: str) -> None:
    """The field decodes to ``name`` and ``address``, and the strict parser finds no defect.

    The name is compared as RFC 2047 (section 6.2) decodes it: whitespace between two
    encoded-words is dropped.  CPython's address parser keeps it (it does not read
    its own long display names back either), so its reading is compared without spaces.
    """
    decoded = check_field(raw, field)
    assert decoded == f"{name} <{address}>" or email.utils.parseaddr(decoded) == (name, address), decoded
    header = strict(raw)[field]
    assert not header.defects
    (parsed,) = header.addresses
    assert parsed.addr_spec == address
    assert parsed.display_name.replace(" ", "") == name.replace(" ", "")


def check_digest_subject(rendered: RenderedDigest, subject: str) -> None:
    copy = dataclasses.replace(rendered, subject=subject)
    who = Personal("Zoë", "zoe@example.com", "https://news.example.org/u/t", "https://news.example.org/p/t")
    raw = build_message(copy, who, settings=site_settings(), digest_id=DIGEST_ID, subscriber_id=1, date=WHEN)
    assert check_field(raw, "Subject") == subject
    parsed = strict(raw)["Subject"]
    assert not parsed.defects
    assert str(parsed) == subject


def test_the_reported_title_has_no_empty_encoded_word() -> None:
    """The title from the report, rendered and framed the way a digest is."""
    digest = render_digest([seed_like(title=REPORTED)], site_settings(), make_environment(), DIGEST_ID, "instant")
    who = Personal("Zoë", "zoe@example.com", "https://news.example.org/u/t", "https://news.example.org/p/t")
    raw = build_message(digest, who, settings=site_settings(), digest_id=DIGEST_ID, subscriber_id=1, date=WHEN)
    assert check_field(raw, "Subject") == REPORTED


@pytest.mark.parametrize("position", range(0, len(REPORTED) + 1, 1))
@pytest.mark.parametrize("prefix", ["", "Größe: "])
def test_an_em_dash_anywhere_survives_the_fold(rendered: RenderedDigest, prefix: str, position: int) -> None:
    check_digest_subject(rendered, one_line(prefix + REPORTED[:position] + "—" + REPORTED[position:]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=_texts)
@example(title="=?utf-8?q?not_encoded?= plain")
@example(title="x" * 120)
@example(title="中" * 200)
@example(title="e\u0301" * 80)
def test_any_subject_decodes_back_to_its_text(rendered: RenderedDigest, title: str) -> None:
    check_digest_subject(rendered, one_line(title))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_texts, sender=_texts)
@example(name="Zoë " * 30, sender="Größe News — Solar " * 5)
@example(name="x", sender="=??Q??=")  # looks like an empty encoded-word: encoded, never quoted as it is
def test_any_display_name_decodes_back(rendered: RenderedDigest, name: str, sender: str) -> None:
    name, sender = one_line(name), one_line(sender)
    who = Personal(name, "zoe@example.com", "https://news.example.org/u/t", "https://news.example.org/p/t")
    raw = build_message(
        rendered, who, settings=site_settings(from_name=sender, title=sender),
        digest_id=DIGEST_ID, subscriber_id=1, date=WHEN,
    )
    check_mailbox(raw, "To", name, "zoe@example.com")
    check_mailbox(raw, "From", sender, "newsletter@news.example.org")
    assert not strict(raw)["List-Id"].defects
    list_id = check_field(raw, "List-Id")
    assert email.utils.parseaddr(list_id) == (sender, "newsletter.news.example.org") or list_id == (
        f"{sender} <newsletter.news.example.org>"
    )


@settings(max_examples=60, deadline=None)
@given(subject=_texts, name=_texts)
@example(subject=REPORTED, name="Zoë")
def test_notice_headers_decode_back(subject: str, name: str) -> None:
    subject, name = one_line(subject), one_line(name)
    raw = build_notice(
        settings=site_settings(), to_name=name, to_email="zoe@example.com",
        subject=subject, html="<p>Hi</p>", text="Hi", date=WHEN,
    )
    assert check_field(raw, "Subject") == subject
    check_mailbox(raw, "To", name, "zoe@example.com")
    message = strict(raw)
    assert str(message["Subject"]) == subject
    assert not message["Subject"].defects


@pytest.mark.parametrize("bidi", list(_BIDI))
def test_bidi_overrides_never_reach_a_header(rendered: RenderedDigest, bidi: str) -> None:
    """An override makes "Invoice \u202egpj.exe" read as "Invoice exe.jpg": gone from the
    Subject and from both display names (a sign-up name, the configured sender)."""
    subject = f"Invoice {bidi}gpj.exe ready"
    copy = dataclasses.replace(rendered, subject=subject)
    who = Personal(f"Zoë {bidi}Admin", "zoe@example.com", "https://news.example.org/u/t", "https://news.example.org/p/t")
    raw = build_message(copy, who, settings=site_settings(from_name=f"Bank{bidi} Support"), digest_id=DIGEST_ID,
                        subscriber_id=1, date=WHEN)
    assert check_field(raw, "Subject") == "Invoice gpj.exe ready"
    check_mailbox(raw, "To", "Zoë Admin", "zoe@example.com")
    check_mailbox(raw, "From", "Bank Support", "newsletter@news.example.org")
    notice = build_notice(settings=site_settings(), to_name=f"{bidi}Zoë", to_email="zoe@example.com",
                          subject=f"Confirm {bidi}now", html="<p>Hi</p>", text="Hi", date=WHEN)
    assert check_field(notice, "Subject") == "Confirm now"
    check_mailbox(notice, "To", "Zoë", "zoe@example.com")


def test_a_long_subject_is_cut_at_a_word() -> None:
    """A 1 MB title made a 1.2 MB header block: the Subject stops at [digest] max_subject_length."""
    title = "Quarterly " * 100_000
    digest = render_digest([seed_like(title=title)], site_settings(), make_environment(), DIGEST_ID, "instant")
    who = Personal("Zoë", "zoe@example.com", "https://news.example.org/u/t", "https://news.example.org/p/t")
    raw = build_message(digest, who, settings=site_settings(), digest_id=DIGEST_ID, subscriber_id=1, date=WHEN)
    subject = check_field(raw, "Subject")
    assert len(subject) <= 200 and subject.endswith("Quarterly…") and subject.startswith("Quarterly Quarterly")
    assert len(raw.split(b"\r\n\r\n", 1)[0]) < 4000
