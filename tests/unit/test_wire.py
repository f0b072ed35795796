"""A message in SMTP's wire form: CRLF, dot-stuffed, its size before stuffing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.mail.wire import WireMessage, stuff

# Lines made of the characters that matter here: dots, line-end pieces, a letter.
_LINE = st.text(alphabet=".\ra", max_size=6).map(lambda text: text.replace("\r", "").encode())


@given(st.lists(st.lists(_LINE, max_size=5), max_size=5))
def test_stuffing_stretches_that_start_lines_equals_stuffing_the_whole(chunks: list[list[bytes]]) -> None:
    stretches = [b"".join(line + b"\r\n" for line in lines) for lines in chunks]
    assert b"".join(map(stuff, stretches)) == stuff(b"".join(stretches))


@given(st.binary(max_size=60).map(lambda data: data.replace(b"\x00", b".")))
def test_of_then_plain_gives_the_message_with_crlf_line_ends(message: bytes) -> None:
    wire = WireMessage.of(message)
    normalized = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    assert wire.plain() == normalized
    assert wire.size == len(normalized)
    body, end = wire.data[:-3], wire.data[-3:]
    assert end == b".\r\n" and body.endswith(b"\r\n")
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in body.split(b"\r\n"))
    assert b"\r\n.\r\n" not in b"\r\n" + body, "no line of the message can end DATA"


def test_of_stuffs_a_leading_dot_on_any_line() -> None:
    wire = WireMessage.of(b".first\n..second\r\nthird.\r\n.")
    assert wire.data == b"..first\r\n...second\r\nthird.\r\n..\r\n.\r\n"
    assert wire.size == len(b".first\r\n..second\r\nthird.\r\n.\r\n")


def test_prepend_adds_whole_header_lines_and_their_size() -> None:
    wire = WireMessage.of(b"Subject: x\r\n\r\n.body\r\n")
    signed = wire.prepend(b"DKIM-Signature: v=1;\r\n b=abc\r\n")
    assert signed.plain() == b"DKIM-Signature: v=1;\r\n b=abc\r\nSubject: x\r\n\r\n.body\r\n"
    assert signed.size == len(signed.plain())
    with pytest.raises(ValueError):
        wire.prepend(b"X-No-Line-End: 1")
