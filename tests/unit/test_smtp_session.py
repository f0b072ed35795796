"""The pipelined transaction's reply reader, fed bytes directly: no server, no socket.

Pipelining (RFC 2920) sends several commands in one write, so their replies can come
several in one read, or one split over several reads; each :meth:`ReplyReader.read`
must return exactly the next whole reply.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from aiosmtplib import SMTPResponse

from publisher.mail.session import ReplyReader

GROUP = (
    b"250-mail.example.org at your service\r\n"
    b"250-  second line, padded  \r\n"
    b"250 2.1.0 Ok\r\n"
    b"550 5.1.1 No such user\r\n"
    b"503\r\n"
    b"354 End data with <CR><LF>.<CR><LF>\r\n"
)
EXPECTED = [
    SMTPResponse(250, "mail.example.org at your service\nsecond line, padded\n2.1.0 Ok"),
    SMTPResponse(550, "5.1.1 No such user"),
    SMTPResponse(503, ""),
    SMTPResponse(354, "End data with <CR><LF>.<CR><LF>"),
]


def drain(reader: ReplyReader) -> list[SMTPResponse]:
    replies = []
    while (reply := reader.next_reply()) is not None:
        replies.append(reply)
    return replies


def test_several_replies_in_one_read_come_out_one_per_command() -> None:
    reader = ReplyReader()
    reader.data_received(GROUP)
    assert drain(reader) == EXPECTED
    assert not reader.pending


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 40])
def test_a_reply_split_across_reads_comes_out_whole_once_complete(size: int) -> None:
    reader = ReplyReader()
    replies = []
    for start in range(0, len(GROUP), size):
        reader.data_received(GROUP[start:start + size])
        replies += drain(reader)
    assert replies == EXPECTED
    assert not reader.pending


def test_bare_lf_line_ends_are_read_too() -> None:
    reader = ReplyReader()
    reader.data_received(b"250-one\n250 two\n")
    assert drain(reader) == [SMTPResponse(250, "one\ntwo")]


async def test_read_waits_for_the_rest_of_a_reply() -> None:
    reader = ReplyReader()
    reader.data_received(b"250-first\r\n250 sec")
    waiting = asyncio.create_task(reader.read(timeout=5))
    await asyncio.sleep(0)  # let it find the reply incomplete and wait
    assert not waiting.done()
    reader.data_received(b"ond\r\n")
    assert await waiting == SMTPResponse(250, "first\nsecond")


async def test_a_reply_received_before_the_connection_ended_is_still_read() -> None:
    # A 421 mid-pipeline: the server answers, then closes; the replies after it never come.
    reader = ReplyReader()
    reader.data_received(b"250 2.1.0 Ok\r\n421 4.7.0 Closing\r\n")
    assert reader.eof_received() is False  # the transport closes
    reader.connection_lost(None)
    assert await reader.read(timeout=5) == SMTPResponse(250, "2.1.0 Ok")
    assert await reader.read(timeout=5) == SMTPResponse(421, "4.7.0 Closing")
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await reader.read(timeout=5)


async def test_a_connection_lost_while_waiting_ends_the_read_and_tells_the_owner() -> None:
    lost: list[Exception | None] = []

    class Owner(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(exc)

    reader = ReplyReader(Owner())
    waiting = asyncio.create_task(reader.read(timeout=5))
    await asyncio.sleep(0)
    error = ConnectionResetError("reset by peer")
    reader.connection_lost(error)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await waiting
    assert lost == [error]


async def test_no_reply_in_time_is_a_read_timeout() -> None:
    reader = ReplyReader()
    reader.data_received(b"250-partial\r\n")
    with pytest.raises(aiosmtplib.SMTPReadTimeoutError):
        await reader.read(timeout=0.01)


@pytest.mark.parametrize("data", [b"hello\r\n", b"25 short\r\n", b"2500 long code\r\n", b"250_odd separator\r\n"])
def test_bytes_that_are_no_reply_are_refused(data: bytes) -> None:
    reader = ReplyReader()
    reader.data_received(data)
    with pytest.raises(aiosmtplib.SMTPResponseException) as caught:
        reader.next_reply()
    assert caught.value.code == -1


def test_an_endless_reply_is_refused_instead_of_kept() -> None:
    reader = ReplyReader()
    reader.data_received(b"250-" + b"x" * 40_000)
    with pytest.raises(aiosmtplib.SMTPResponseException, match="too long"):
        reader.next_reply()
    assert not reader.pending
