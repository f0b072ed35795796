"""One SMTP mail transaction on an open session: MAIL, RCPT, DATA and the message.

With PIPELINING (RFC 2920) offered, MAIL FROM, RCPT TO and DATA go out in one write
and the replies are read back one per command, in order: one round trip instead of
three before the message.  Without it, the classic sequence waits for each reply.

aiosmtplib's protocol can't read pipelined replies: it parses one reply per burst
of received bytes and drops bytes that arrive while no command waits.  So for the
span of a transaction the connection's bytes go to a :class:`ReplyReader` (swapped
in with the transport's public ``set_protocol``), which splits them into replies
however they arrive: several in one read, one split across reads, multi-line ones.
aiosmtplib's protocol gets the connection back afterwards, and hears of its end
meanwhile, so connecting, logging in and QUIT stay aiosmtplib's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus

from publisher.mail.wire import WireMessage

_MAX_REPLY = 32 * 1024  # bytes of one reply, continuation lines and all (aiosmtplib's bound too)
_INVALID = -1  # aiosmtplib's code for a reply that is not one
# The session can't be trusted after these: part of a command or message may be on the wire unanswered.
_BROKEN = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError)


class ReplyReader(asyncio.Protocol):
    """The server's replies, one per :meth:`read`, in order, however the bytes arrive.

    ``owner`` (aiosmtplib's protocol for the connection) is told when the connection
    ends and is asked to pause or resume writing, so the session it keeps stays true.
    """

    def __init__(self, owner: asyncio.BaseProtocol | None = None) -> None:
        self._owner = owner
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._ended: str | None = None  # why the connection ended, once it has

    @property
    def pending(self) -> bool:
        """Whether bytes arrived that no :meth:`read` took (a reply to no command)."""
        return bool(self._buffer)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self._end("Unexpected EOF received")
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._end("Connection lost")
        if self._owner is not None:
            self._owner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._owner is not None:
            self._owner.pause_writing()

    def resume_writing(self) -> None:
        if self._owner is not None:
            self._owner.resume_writing()

    def _end(self, reason: str) -> None:
        if self._ended is None:
            self._ended = reason
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self, timeout: float | None) -> SMTPResponse:
        """The next whole reply; a reply already received comes first even after the connection
        ended (a 421 is followed by the close).  Raises aiosmtplib's errors: disconnected, read
        timeout (``timeout`` seconds without a byte), or a response exception (code -1) for
        bytes that are no reply.

        Pipelined replies mostly come together, so most reads find theirs received and
        never wait; a wait costs one timer, not an ``asyncio.timeout`` (a fifth of the
        transaction's CPU when it was one per read).
        """
        while (reply := self.next_reply()) is None:
            if self._ended is not None:
                raise aiosmtplib.SMTPServerDisconnected(self._ended)
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return reply

    def next_reply(self) -> SMTPResponse | None:
        """Take the first whole reply out of what was received; None until one is complete.

        A reply is lines of ``code-text`` ending with one of ``code text`` (or the code
        alone); the text of each line, stripped, joined by newlines, as aiosmtplib does.
        """
        if not self._buffer:
            return None
        lines: list[bytes] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end]).rstrip(b"\r")
            start = end + 1
            code = line[:3]
            if not (code.isdigit() and len(code) == 3 and line[3:4] in (b"", b" ", b"-")):
                del self._buffer[:]
                text = line.decode("utf-8", "replace")
                raise aiosmtplib.SMTPResponseException(_INVALID, f"Malformed SMTP response line: {text}")
            lines.append(line[4:].strip(b" \t"))
            if line[3:4] != b"-":
                del self._buffer[:start]
                text = b"\n".join(lines).decode("utf-8", "surrogateescape")
                return SMTPResponse(int(code), text)
        if len(self._buffer) > _MAX_REPLY:
            del self._buffer[:]
            raise aiosmtplib.SMTPResponseException(_INVALID, "Response too long")
        return None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"))


# What each command of the envelope must be answered with, and what a refusal of it raises.
_Refusal = Callable[[SMTPResponse], aiosmtplib.SMTPResponseException]
_Step = tuple[bytes, tuple[int, ...], _Refusal]


async def transaction(
    smtp: aiosmtplib.SMTP, mail_from: bytes, rcpt_to: bytes, message: WireMessage, timeout: float
) -> str:
    """Send ``message`` for one envelope over ``smtp``'s open session; the server's reply to it.

    Raises aiosmtplib's errors, as ``SMTP.sendmail`` would: SMTPSenderRefused,
    SMTPRecipientRefused or SMTPDataError with the first refusal (a refused RCPT is the
    message's answer, whatever DATA's 503 or 554 says after it), after which the
    transaction is reset (RSET) so the session stays usable; a 421 is raised as it
    comes, unread replies left (the server closes).  A session that ended or timed
    out mid-transaction is closed: its next reply would pair with the wrong command.
    """
    protocol = smtp.protocol
    # uvloop's transports are no subclasses of asyncio's, only alike: a cast, not a check.
    transport = cast(asyncio.Transport | None, smtp.transport)
    if protocol is None or transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    mail = b"MAIL FROM:" + mail_from
    if smtp.supports_extension("size"):
        mail += b" SIZE=%d" % message.size
    steps: list[_Step] = [
        (mail + b"\r\n", (SMTPStatus.completed,),
         lambda r: aiosmtplib.SMTPSenderRefused(r.code, r.message, mail_from.decode())),
        (b"RCPT TO:" + rcpt_to + b"\r\n", (SMTPStatus.completed, SMTPStatus.will_forward),
         lambda r: aiosmtplib.SMTPRecipientRefused(r.code, r.message, rcpt_to.decode())),
        (b"DATA\r\n", (SMTPStatus.start_input,), lambda r: aiosmtplib.SMTPDataError(r.code, r.message)),
    ]
    reader = ReplyReader(protocol)
    transport.set_protocol(reader)
    try:
        return await _exchange(reader, transport, steps, message, timeout, smtp.supports_extension("pipelining"))
    except (*_BROKEN, aiosmtplib.SMTPResponseException) as exc:
        if isinstance(exc, _BROKEN) or exc.code in (_INVALID, SMTPStatus.domain_unavailable):
            transport.close()
        raise
    finally:
        if not transport.is_closing():
            if reader.pending:  # a reply to no command: what follows could pair wrongly
                transport.close()
            else:
                transport.set_protocol(protocol)


async def _exchange(
    reader: ReplyReader,
    transport: asyncio.Transport,
    steps: list[_Step],
    message: WireMessage,
    timeout: float,
    pipelining: bool,
) -> str:
    if pipelining:  # RFC 2920: DATA may end a group; the message itself waits for the 354
        transport.write(b"".join(command for command, _, _ in steps))
    refusal: aiosmtplib.SMTPResponseException | None = None
    for command, accepted, refused in steps:
        if not pipelining:
            transport.write(command)
        reply = await reader.read(timeout)
        if refusal is None and reply.code not in accepted:
            refusal = refused(reply)
            if reply.code == SMTPStatus.domain_unavailable or not pipelining:
                break  # 421: the server is closing; classic: nothing more was sent
        elif refusal is not None and reply.code == SMTPStatus.start_input:
            # A server that takes DATA although the envelope failed: end it, empty.
            transport.write(b".\r\n")
            await reader.read(timeout)
    if refusal is None:
        transport.write(message.data)  # the end-of-data line included: no copy of the message here
        reply = await reader.read(timeout)
        if reply.code == SMTPStatus.completed:
            return reply.message
        refusal = aiosmtplib.SMTPDataError(reply.code, reply.message)
    if refusal.code != SMTPStatus.domain_unavailable:
        transport.write(b"RSET\r\n")
        try:
            await reader.read(timeout)
        except aiosmtplib.SMTPException:  # the refusal stands; the session does not
            transport.close()
    raise refusal
