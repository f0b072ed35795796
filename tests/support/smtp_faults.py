"""A fault-injecting SMTP server for delivery tests: :class:`SmtpServer` that misbehaves on cue.

    with FaultServer() as server:
        server.fail("gone@example.org", "550 5.1.1 No such user")             # every RCPT
        server.fail("busy@example.org", "451 4.3.0 Try later", times=2)       # then accept
        server.fail("full@example.org", "552 5.2.2 Mailbox full", at="data")  # after the content
        server.drop("cut@example.org")    # cut the connection in the middle of DATA, once
        server.stall("slow@example.org")  # never answer the end of DATA, once
        server.throttle_every(10)         # every 10th message: 421, and the connection closes
        server.throttle_domain("gmail.com", 20, window=1.0)  # past 20 RCPTs a second to it: 421
        server.limit_sessions(2)          # a 3rd concurrent connection is greeted with 421
        server.refuse_connections(3)      # the next 3 connections are reset before the greeting
        server.refuse_for(1.0)            # every connection in the next second gets a 421 greeting
        server.fail_all("554 Message rejected", at="data")  # every recipient, until repair()
        FaultServer(pipelining=True)      # announce PIPELINING; counters.pipelined says it was used
        ...deliver...
        assert server.count("busy@example.org") == 1

Every accepted message is recorded as an :class:`Accepted` (its Message-ID and envelope;
the content too with ``keep_content=True``, as :attr:`SmtpServer.messages`). A message is
recorded only when the server answered 250 to its end of DATA: one the server cut, stalled
or refused was not received, as with a real MTA that discards a transaction it did not
acknowledge. Any reply beginning with 421 closes the connection after it is written, as
RFC 5321 (3.8, 4.2.3) says a server does.

Rules keyed by address count *attempts* at that address (an RCPT command, or an end of
DATA for ``at="data"``), so "the first N attempts fail" lets a retry succeed. Rules and
counters live in the server's thread; read the results once the client is done, or wait
for a number of messages with :meth:`FaultServer.wait_for` from another thread.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from tests.support.smtp_server import Received, SmtpServer

Stage = Literal["rcpt", "data"]

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)
# Our digests' Message-ID: <digest-id.subscriber-id@sending-domain>.
_DIGEST_MESSAGE_ID = re.compile(r"^(?P<digest>[^.@]+)\.(?P<subscriber>\d+)@")

_EVERYONE = "*"  # the rules of fail_all()
_ABORT = "abort"  # a session verdict: reset the connection before the greeting


@dataclass(frozen=True)
class Accepted:
    """One message the server acknowledged with 250 at the end of DATA."""

    message_id: str | None  # between the angle brackets; None when the message had none
    mail_from: str
    rcpt_tos: tuple[str, ...]
    session: int  # which connection (1, 2, ... in the order they were opened)
    at: float = 0.0  # when (time.monotonic())


def digest_recipient(message_id: str | None) -> tuple[str, int] | None:
    """``(digest_id, subscriber_id)`` from a digest's Message-ID; None for any other."""
    if message_id is None:
        return None
    match = _DIGEST_MESSAGE_ID.match(message_id)
    return (match["digest"], int(match["subscriber"])) if match else None


@dataclass
class _Rule:
    action: Literal["reply", "drop", "stall"]
    stage: Stage
    reply: str = ""
    times: int | None = None  # attempts it still applies to; None: every attempt
    fired: int = 0

    def take(self) -> bool:
        if self.times is not None:
            if self.times <= 0:
                return False
            self.times -= 1
        self.fired += 1
        return True


@dataclass
class Stall:
    """One end of DATA left unanswered: how long until the client hung up."""

    recipient: str
    seconds: float
    client_hung_up: bool  # False: the server gave up first (``stall_limit``) and answered 451


@dataclass
class _Counters:
    sessions_opened: int = 0  # connections that got past admission
    sessions_refused: int = 0  # reset or 421-greeted by refuse_connections / refuse_for
    sessions_over_limit: int = 0  # 421-greeted by limit_sessions
    most_concurrent: int = 0  # the most admitted sessions open at once
    data_ends: int = 0  # ends of DATA seen (every transaction that sent its content)
    throttled: int = 0  # 421s from throttle_every
    domain_throttled: int = 0  # 421s from throttle_domain
    dropped: int = 0  # connections cut in the middle of DATA
    pipelined: int = 0  # RCPTs read with the client's DATA already behind them (PIPELINING used)
    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    data_attempts: Counter[str] = field(default_factory=Counter)


class FaultSession(SMTP):
    """aiosmtpd's SMTP protocol (one per connection), with the faults below the handler API."""

    event_handler: FaultServer

    def __init__(self, handler: FaultServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.number = 0
        self.verdict: str | None = None  # None: admitted; else _ABORT or a greeting reply
        self.hung_up = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and self.transport is None:  # not the STARTTLS re-entry
            self.event_handler._admit(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.hung_up.set()
        self.event_handler._release(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self.verdict == _ABORT:
            assert isinstance(self.transport, asyncio.Transport)
            self.transport.abort()
            return
        if self.verdict is not None:
            await self.push(self.verdict)  # a 421 greeting; push() closes the connection
            return
        await super()._handle_client()

    async def push(self, status: Any) -> None:
        await super().push(status)
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
        if text.startswith("421") and self.transport is not None:
            self.transport.close()  # writes what is buffered (the 421), then closes

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA, read in blocks rather than aiosmtpd's line at a time (≈ 1 ms per 20 KB
        message, which capped the crash test's rate), with the same result: the content
        dot-unstuffed, lines over ``line_length_limit`` refused."""
        envelope = self.envelope
        if (
            envelope is None or not envelope.rcpt_tos or arg
            or await self.check_helo_needed() or await self.check_auth_needed("DATA")
        ):
            await super().smtp_DATA(arg)  # its error replies
            return
        drop = self.event_handler._take_drop(envelope)
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # A leading CRLF makes the terminator one pattern even for an empty message.
        data = bytearray(b"\r\n")
        end = -1
        while end < 0:
            chunk = await self._reader.read(1 << 16)
            if not chunk:
                return  # the client hung up in the middle: nothing was received
            searched = max(0, len(data) - 4)
            data += chunk
            end = data.find(b"\r\n.\r\n", searched)
            if drop and (end >= 0 or data.find(b"\r\n\r\n", 2) >= 0):
                # In the middle of DATA (the header block read, the rest maybe not), or
                # at its very end: cut, before any reply.
                if isinstance(self.transport, asyncio.Transport):
                    self.transport.abort()
                return
        rest = data[end + 5:]
        if rest:  # the client's next command, sent without waiting for our reply
            self._reader._buffer[:0] = rest  # type: ignore[attr-defined]
        content = bytes(data[2:end + 2])
        # aiosmtpd refuses a line whose length with its CRLF is over line_length_limit.
        if re.search(rb"[^\n]{%d}" % self.line_length_limit, content):
            self._set_post_data_state()
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            return
        # RFC 5321 4.5.2 transparency, as aiosmtpd undoes it: a line's leading dot goes.
        content = content.replace(b"\r\n.", b"\r\n")
        if content.startswith(b"."):
            content = content[1:]
        envelope.content = envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


class FaultServer(SmtpServer):
    """A recording SMTP server with scriptable faults; see the module docstring.

    ``keep_content=False`` keeps only Message-IDs and envelopes (for tens of thousands
    of messages). ``stall_limit`` bounds a stall whose client never hangs up: the server
    then answers 451 and :attr:`stalls` says so.
    """

    session_class = FaultSession

    def __init__(self, *, keep_content: bool = True, stall_limit: float = 30.0, **options: Any) -> None:
        super().__init__(**options)
        self.keep_content = keep_content
        self.stall_limit = stall_limit
        self.accepted: list[Accepted] = []
        self.stalls: list[Stall] = []
        self.counters = _Counters()
        self._rules: dict[str, list[_Rule]] = {}
        self._every: tuple[int, str] | None = None
        self._domain_limits: dict[str, tuple[int, float, str]] = {}
        self._domain_windows: Counter[tuple[str, int]] = Counter()  # RCPTs let through per (domain, window)
        self._session_limit: tuple[int, str] | None = None
        self._refuse_count = 0
        self._refuse_until = 0.0
        self._refuse_reply = ""
        self._active: set[FaultSession] = set()
        self._changed = threading.Condition()

    # --- scripting faults (call before the client starts, or from any thread) ------------

    def fail(self, address: str, reply: str, *, at: Stage = "rcpt", times: int | None = None) -> None:
        """Answer ``reply`` to ``address``'s RCPT (or its end of DATA): the first ``times``
        attempts, or every one when ``times`` is None."""
        self._add(address, _Rule("reply", at, reply=reply, times=times))

    def fail_all(self, reply: str, *, at: Stage = "rcpt") -> None:
        """Answer ``reply`` to every address's RCPT (or end of DATA), as a relay misconfigured
        for the sender does, until :meth:`repair`."""
        self._add(_EVERYONE, _Rule("reply", at, reply=reply))

    def repair(self) -> None:
        """Forget every scripted fault: the relay was fixed."""
        self._rules.clear()

    def drop(self, address: str, *, times: int | None = 1) -> None:
        """Cut the connection in the middle of DATA for ``address`` (after the 354 and the
        message's header block). Nothing is recorded: the server never acknowledged it."""
        self._add(address, _Rule("drop", "data", times=times))

    def stall(self, address: str, *, times: int | None = 1) -> None:
        """Leave the end of DATA for ``address`` unanswered until the client hangs up; the
        message is then discarded (it was never acknowledged)."""
        self._add(address, _Rule("stall", "data", times=times))

    def throttle_every(self, n: int, reply: str = "421 4.7.0 Too many messages, slow down and try again later") -> None:
        """Every ``n``-th end of DATA (counted over all connections) gets ``reply``."""
        self._every = (n, reply)

    def throttle_domain(
        self, domain: str, per_window: int, *, window: float = 60.0,
        reply: str = "421 4.7.28 Our system has detected an unusual rate of mail, rate limited; try again later",
    ) -> None:
        """A provider's limit: past ``per_window`` RCPTs to ``domain`` in a fixed window of
        ``window`` seconds (a short one in a test, in place of a real provider's minute),
        each RCPT to it gets ``reply`` (a 421 closes the connection); others are untouched."""
        self._domain_limits[domain.lower()] = (per_window, window, reply)

    def limit_sessions(self, k: int, reply: str = "421 4.7.0 Too many concurrent connections from your IP") -> None:
        """A connection while ``k`` are open is greeted with ``reply`` (and closed)."""
        self._session_limit = (k, reply)

    def refuse_connections(self, n: int) -> None:
        """Reset the next ``n`` connections at once, before any greeting."""
        self._refuse_count = n

    def refuse_for(self, seconds: float, reply: str = "421 4.3.2 System not accepting network messages") -> None:
        """From now on, for ``seconds``, greet every new connection with ``reply`` (and close)."""
        self._refuse_reply = reply
        self._refuse_until = time.monotonic() + seconds

    def _add(self, address: str, rule: _Rule) -> None:
        self._rules.setdefault(address.lower(), []).append(rule)

    # --- results -------------------------------------------------------------------------

    def count(self, address: str) -> int:
        """How many messages addressed to ``address`` were accepted."""
        wanted = address.lower()
        return sum(1 for a in self.accepted for r in a.rcpt_tos if r.lower() == wanted)

    def per_recipient(self) -> Counter[str]:
        return Counter(r.lower() for a in self.accepted for r in a.rcpt_tos)

    def per_message_id(self) -> Counter[str | None]:
        return Counter(a.message_id for a in self.accepted)

    def fired(self, address: str) -> int:
        """How many times the rules for ``address`` applied."""
        return sum(rule.fired for rule in self._rules.get(address.lower(), []))

    def snapshot(self) -> list[Accepted]:
        """A copy of :attr:`accepted`, safe to take while the server is running."""
        with self._changed:
            return list(self.accepted)

    def wait_for(self, total: int, timeout: float) -> bool:
        """Block (another thread than the server's) until ``total`` messages were accepted,
        or ``timeout`` seconds passed; returns whether they were."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.accepted) >= total, timeout)

    def start(self) -> None:
        super().start()
        # Forget the Controller's start-up probe, as SmtpServer does for ``connections``.
        self.counters = _Counters()
        self._active.clear()

    # --- what the sessions call (in the server's thread) ---------------------------------

    def _admit(self, session: FaultSession) -> None:
        counters = self.counters
        if self._refuse_count > 0:
            self._refuse_count -= 1
            counters.sessions_refused += 1
            session.verdict = _ABORT
        elif time.monotonic() < self._refuse_until:
            counters.sessions_refused += 1
            session.verdict = self._refuse_reply
        elif self._session_limit is not None and len(self._active) >= self._session_limit[0]:
            counters.sessions_over_limit += 1
            session.verdict = self._session_limit[1]
        else:
            counters.sessions_opened += 1
            session.number = counters.sessions_opened
            self._active.add(session)
            counters.most_concurrent = max(counters.most_concurrent, len(self._active))

    def _release(self, session: FaultSession) -> None:
        self._active.discard(session)

    def _rule(self, address: str, stage: Stage, actions: tuple[str, ...]) -> _Rule | None:
        for rule in [*self._rules.get(address.lower(), []), *self._rules.get(_EVERYONE, [])]:
            if rule.stage == stage and rule.action in actions and rule.take():
                return rule
        return None

    def _over_domain_limit(self, address: str) -> str | None:
        domain = address.rpartition("@")[2].lower()
        limit = self._domain_limits.get(domain)
        if limit is None:
            return None
        per_window, window, reply = limit
        key = (domain, int(time.monotonic() / window))
        if self._domain_windows[key] >= per_window:
            self.counters.domain_throttled += 1
            return reply
        self._domain_windows[key] += 1
        return None

    def _take_drop(self, envelope: Envelope) -> bool:
        for address in envelope.rcpt_tos:
            if self._rule(address, "data", ("drop",)) is not None:
                self.counters.data_attempts[address.lower()] += 1
                self.counters.dropped += 1
                return True
        return False

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        self.counters.rcpt_attempts[address.lower()] += 1
        assert isinstance(server, FaultSession)
        if b"DATA" in server._reader._buffer:  # type: ignore[attr-defined]
            self.counters.pipelined += 1
        rule = self._rule(address, "rcpt", ("reply",))
        if rule is not None:
            return rule.reply
        if (limited := self._over_domain_limit(address)) is not None:
            return limited
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, FaultSession)
        assert envelope.mail_from is not None and envelope.original_content is not None
        self.counters.data_ends += 1
        for address in envelope.rcpt_tos:
            self.counters.data_attempts[address.lower()] += 1
        for address in envelope.rcpt_tos:
            rule = self._rule(address, "data", ("reply", "stall"))
            if rule is not None and rule.action == "reply":
                return rule.reply
            if rule is not None:
                return await self._stall(server, address)
        if self._every is not None and self.counters.data_ends % self._every[0] == 0:
            self.counters.throttled += 1
            return self._every[1]
        return self._accept(server, session, envelope)

    async def _stall(self, server: FaultSession, address: str) -> str:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await asyncio.wait_for(server.hung_up.wait(), self.stall_limit)
        except asyncio.CancelledError:  # the connection was lost: aiosmtpd cancels the session
            self.stalls.append(Stall(address, loop.time() - started, client_hung_up=True))
            raise
        except TimeoutError:
            self.stalls.append(Stall(address, loop.time() - started, client_hung_up=False))
            return "451 4.4.2 Timed out waiting for the client to give up"
        self.stalls.append(Stall(address, loop.time() - started, client_hung_up=True))
        return "421 4.4.2 Connection lost"  # never read: the client is gone

    def _accept(self, server: FaultSession, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert content is not None and envelope.mail_from is not None
        end = content.find(b"\r\n\r\n")
        match = _MESSAGE_ID.search(content, 0, end if end >= 0 else len(content))
        record = Accepted(
            message_id=match[1].decode("ascii", "replace") if match else None,
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            session=server.number,
            at=time.monotonic(),
        )
        if self.keep_content:
            assert server.transport is not None
            self.messages.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=content,
                    login=session.auth_data,
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    mail_options=list(envelope.mail_options),
                )
            )
        with self._changed:
            self.accepted.append(record)
            self._changed.notify_all()
        return f"250 2.0.0 Ok: queued as Q{len(self.accepted)}"
