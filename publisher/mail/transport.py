"""Transports: the last step of delivery, handing one finished message to one recipient.

``[delivery] transport`` picks one of two implementations of :class:`Transport`: a Maildir
outbox (no server needed; development, tests, or a local MDA or relay script picks the
files up) and an SMTP relay reached over one reused aiosmtplib connection.

Both report failure as :class:`DeliveryError`, with the reply and the phase of the session
it came at; :func:`publisher.mail.replies.reply_action` says what the delivery engine does
about it.  :class:`TransportPool` holds one delivery run's connections.

This module is long because it has one job, handing finished messages over, whose SMTP
session handling (connecting, TLS, login, reconnects, envelope quoting) is most of it; the
mail transaction itself, pipelined where the relay offers it, is :mod:`publisher.mail.session`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mailbox
import re
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

import aiosmtplib
from aiosmtplib.email import quote_address

from publisher.config import SmtpSettings
from publisher.mail.replies import Phase, ReplyAction, reply_action, status_code
from publisher.mail.session import transaction
from publisher.mail.wire import WireMessage

log = logging.getLogger(__name__)

# Everything aiosmtplib and the network raise for a failed session; ValueError for an
# address that can't be sent is a caller's bug and is deliberately not caught.
_FAILURES = (aiosmtplib.SMTPException, OSError)
# An envelope address that needs no quoting: an RFC 5321 dot-string local part, a domain.
_PLAIN_MAILBOX = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9.-]+")


class DeliveryError(Exception):
    """A message was not delivered: the server's reply ``code`` (None when there was no
    reply: network, TLS, disk), its ``reply`` text and the ``phase`` of the session.

    :attr:`action` classifies it (:func:`~publisher.mail.replies.reply_action`): a 5xx
    reply while connecting or logging in, or to MAIL FROM, says nothing about the
    recipient, so only a refusal about the recipient ever bounces one.
    """

    def __init__(self, reply: str, *, code: int | None = None, phase: Phase = Phase.CONNECT) -> None:
        self.code = code
        self.reply = reply
        self.phase = phase
        self.action = reply_action(code, status_code(reply), phase, reply)
        kind = "permanent" if self.permanent else "temporary"
        status = f"{code} " if code is not None else ""
        super().__init__(f"{kind} delivery failure: {status}{reply}")

    @property
    def permanent(self) -> bool:
        """Whether retrying can't help."""
        return self.action not in (ReplyAction.RETRY, ReplyAction.THROTTLED)


class Transport(Protocol):
    """Hands finished messages to recipients: open once, send many, close once.

    Implementations subclass this to inherit ``async with`` support (open on enter, close
    on exit).
    """

    async def open(self) -> None:
        """Prepare to send (create directories, connect); raises :class:`DeliveryError`."""
        ...

    async def send(self, sender: str, recipient: str, message: bytes | WireMessage) -> str:
        """Deliver ``message`` (the complete RFC 5322 bytes, or already in SMTP's wire form) for one envelope.

        Returns the server's reply (often carrying its queue id) or the Maildir file
        name; raises :class:`DeliveryError`.
        """
        ...

    async def close(self) -> None:
        """Release the connection or files; safe to call after a failure."""
        ...

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class MaildirTransport(Transport):
    """Delivers into the Maildir ``outbox``: each message becomes one file in ``new/``.

    A Maildir has no place for the envelope, so each file starts with ``Return-Path`` and
    ``X-Original-To`` lines, as an MTA's local delivery writes them; the message follows
    byte for byte. Files are written in ``tmp/`` and then moved to ``new/`` (by
    :class:`mailbox.Maildir`), so a reader never sees half a message.
    """

    def __init__(self, outbox: Path) -> None:
        self._outbox = outbox
        self._maildir: mailbox.Maildir | None = None

    async def open(self) -> None:
        """Create the outbox, and prove a message can be written into it.

        A read-only or full disk then shows here, as an unreachable relay does, before
        any message is tried: nothing is counted against any subscriber.
        """
        if self._maildir is not None:
            return
        try:
            self._maildir = await asyncio.to_thread(self._create_maildir)
        except OSError as exc:
            raise DeliveryError(f"cannot write to outbox {self._outbox}: {exc}") from exc

    def _create_maildir(self) -> mailbox.Maildir:
        # Maildir(create=True) makes tmp/, new/ and cur/ only when the outbox itself is new;
        # an existing empty directory (made by a deploy script, say) would fail on first add.
        for sub in ("tmp", "new", "cur"):
            (self._outbox / sub).mkdir(parents=True, exist_ok=True)
        maildir = mailbox.Maildir(self._outbox, create=False)
        # The probe goes into a folder of its own (a Maildir++ subfolder), never into the
        # new/ that whatever picks the outbox up reads, and is removed at once.
        probe = maildir.add_folder(_PROBE_FOLDER)
        probe.remove(_add(probe, _PROBE))
        return maildir

    async def send(self, sender: str, recipient: str, message: bytes | WireMessage) -> str:
        if self._maildir is None:
            raise RuntimeError("MaildirTransport.send() before open()")
        if isinstance(message, WireMessage):
            message = message.plain()
        data = _envelope_header(sender, recipient, message) + message
        try:
            return await asyncio.to_thread(_add, self._maildir, data)
        except OSError as exc:
            raise DeliveryError(f"cannot write to outbox {self._outbox}: {exc}") from exc

    async def close(self) -> None:
        self._maildir = None


_PROBE_FOLDER = "publisher-write-test"
_PROBE = b"Subject: outbox write test\r\n\r\nRemoved as soon as written.\r\n"

# mailbox.Maildir names files from the time, the pid and a class-wide counter that two
# threads can read at once; one file at a time per process keeps the names unique, however
# many transports (delivery connections) write into outboxes concurrently.
_MAILDIR_WRITES = threading.Lock()


def _add(maildir: mailbox.Maildir, data: bytes) -> str:
    with _MAILDIR_WRITES:
        return maildir.add(data)


def _envelope_header(sender: str, recipient: str, message: bytes) -> bytes:
    """``Return-Path`` and ``X-Original-To`` lines, in the message's own line-ending style."""
    if any(char in address for address in (sender, recipient) for char in "\r\n"):
        raise ValueError(f"line break in envelope address {sender!r} or {recipient!r}")
    first_line = message[: message.find(b"\n") + 1]  # empty when there is no line break
    eol = b"\r\n" if first_line.endswith(b"\r\n") else b"\n"
    return f"Return-Path: <{sender}>".encode() + eol + f"X-Original-To: {recipient}".encode() + eol


class SmtpTransport(Transport):
    """Sends through one SMTP relay over one connection, reused for every message.

    Reusing the connection saves a TCP and TLS handshake (and a login) per message. A
    connection the relay dropped, or a 421 ("closing the channel"), gets one retry on a
    fresh connection before the message fails as temporary. One transaction runs at a
    time (SMTP can't interleave them on one connection); for parallel sending, open
    several transports.

    ``tls_context`` overrides the default certificate checks, e.g. to trust a private CA;
    when given, ``settings.validate_certs`` no longer applies.
    """

    def __init__(self, settings: SmtpSettings, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._smtp = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            timeout=settings.timeout,
            use_tls=settings.tls == "implicit",
            # Never None: aiosmtplib's default upgrades whenever the server offers STARTTLS,
            # and True fails when it doesn't, instead of silently sending in the clear.
            start_tls=settings.tls == "starttls",
            validate_certs=settings.validate_certs,
            tls_context=tls_context,
        )
        self._lock = asyncio.Lock()
        self._sent_on_connection = 0

    @property
    def _address(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    async def open(self) -> None:
        """Connect (and log in); a no-op on a transport that is already connected."""
        if self._smtp.is_connected:  # the delivery engine asks before every message: no lock for that
            return
        async with self._lock:
            if self._smtp.is_connected:
                return
            try:
                await self._connect()
            except _FAILURES as exc:
                raise _delivery_error(exc) from exc

    async def _connect(self) -> None:
        """A fresh session: connect, TLS as configured, then log in if a username is set."""
        # close() first also releases aiosmtplib's connect lock left by a broken session,
        # without which connect() can hang (cole/aiosmtplib#38, #243).
        self._smtp.close()
        try:
            await self._smtp.connect()
            if self._smtp.is_ehlo_or_helo_needed:  # connect() says hello only for STARTTLS
                try:
                    await self._smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await self._smtp.helo()
            if self._settings.username:
                # Read at each login, never stored or logged, so a rotated secret applies on
                # the next connection.
                await self._smtp.login(self._settings.username, self._settings.password())
        except BaseException:
            self._smtp.close()  # never keep a connected but unauthenticated session around
            raise
        self._sent_on_connection = 0
        log.debug("SMTP session open to %s (tls=%s)", self._address, self._settings.tls)

    async def send(self, sender: str, recipient: str, message: bytes | WireMessage) -> str:
        try:
            envelope = (_mailbox(sender), _mailbox(recipient))
        except ValueError as exc:  # no relay could take it: retrying can't help
            raise DeliveryError(str(exc), phase=Phase.ENVELOPE) from exc
        wire = message if isinstance(message, WireMessage) else WireMessage.of(message)
        async with self._lock:
            retried = False
            while True:
                try:
                    if self._sent_on_connection >= self._settings.max_messages_per_connection:
                        await self._quit()  # many relays cap the messages of one session
                    if not self._smtp.is_connected:
                        await self._connect()
                    reply = await transaction(self._smtp, *envelope, wire, self._settings.timeout)
                    self._sent_on_connection += 1
                    return reply
                except asyncio.CancelledError:
                    # Cancelled mid-transaction, the server's next reply would be paired with
                    # our next command: the session can't be trusted any more.
                    self._smtp.close()
                    raise
                except _FAILURES as exc:
                    error = _delivery_error(exc)
                    dropped = isinstance(exc, aiosmtplib.SMTPServerDisconnected) or error.code == 421
                    if retried or not dropped:
                        raise error from exc
                    log.info("SMTP session with %s ended (%s); retrying, newly connected", self._address, error.reply)
                    self._smtp.close()  # a 421 closes it from the server's side too; never wait for that
                    retried = True

    async def close(self) -> None:
        async with self._lock:
            await self._quit()

    async def _quit(self) -> None:
        if self._smtp.is_connected:
            with contextlib.suppress(*_FAILURES):  # QUIT is a courtesy; we close below anyway
                await self._smtp.quit()
        self._smtp.close()


def _mailbox(address: str) -> bytes:
    """``<address>`` for MAIL FROM and RCPT TO; an internationalized domain as punycode.

    A plain ASCII address (nearly all) is checked by one regular expression;
    anything else, e.g. a quoted local part, goes through aiosmtplib's parser.
    ValueError for what no envelope can carry, or what that parser would quietly
    turn into another address (it takes ``a@b>\\r\\nRCPT TO:<c@d`` for ``a@b``).
    """
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        address = f"{local}@{domain.encode('idna').decode('ascii')}"
    if _PLAIN_MAILBOX.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    if not address.isascii():
        raise ValueError(f"{address!r}: a non-ASCII local part needs SMTPUTF8, which is not supported")
    quoted = quote_address(address)
    if quoted != f"<{address}>":  # the parser found some other address inside this one
        raise ValueError(f"{address!r} is not one envelope address")
    return quoted.encode("ascii")


# Which command a refusal answered, by the exception aiosmtplib (or the session's transaction) raises
# for it; any other reply (greeting, EHLO, STARTTLS, AUTH) came while connecting.
_PHASES: tuple[tuple[type[aiosmtplib.SMTPResponseException], Phase], ...] = (
    (aiosmtplib.SMTPSenderRefused, Phase.MAIL),
    (aiosmtplib.SMTPRecipientRefused, Phase.RCPT),
    (aiosmtplib.SMTPDataError, Phase.DATA),
)


def _delivery_error(exc: Exception) -> DeliveryError:
    """What aiosmtplib or the network raised, in the delivery engine's terms."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        exc = exc.recipients[0]  # one recipient per transaction, so exactly one refusal
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code if exc.code > 0 else None  # aiosmtplib uses -1 for a malformed reply
        phase = next((phase for kind, phase in _PHASES if isinstance(exc, kind)), Phase.CONNECT)
        return DeliveryError(exc.message, code=code, phase=phase)
    return DeliveryError(str(exc) or type(exc).__name__)


class TransportChoice(Protocol):
    """What :func:`make_transport` reads: ``[delivery]`` settings, or a run's ``DeliveryConfig``."""

    @property
    def transport(self) -> Literal["maildir", "smtp"]: ...

    @property
    def outbox(self) -> Path: ...


def make_transport(delivery: TransportChoice, smtp: SmtpSettings) -> Transport:
    """The transport ``[delivery] transport`` names, not yet opened."""
    if delivery.transport == "smtp":
        context = ssl.create_default_context(cafile=str(smtp.ca_file)) if smtp.ca_file else None
        return SmtpTransport(smtp, tls_context=context)
    return MaildirTransport(delivery.outbox)


class TransportPool:
    """The connections of one delivery run: at most ``size`` open at once, all closed at the end.

    :meth:`open` makes the first connection, which proves the relay (or the outbox) is
    reachable before any row is touched: a relay that is down or misconfigured leaves
    every row pending, and no attempt is counted against any subscriber.  That
    connection is the first one :meth:`take` hands out; the others connect when first
    used.  A sender gives its connection back with :meth:`release` (closed: the run
    may then wait hours for a deferral, longer than a relay keeps a session).
    """

    def __init__(self, make: Callable[[], Transport], size: int, *, name: str) -> None:
        self._make = make
        self.size = size
        self.name = name  # where messages go, for the operator (e.g. "SMTP relay at host:25")
        self._spare: list[Transport] = []
        self._out: set[Transport] = set()

    async def open(self, stop: asyncio.Event, pauses: Callable[[], float] | None = None) -> bool:
        """Connect the first transport; False if ``stop`` was set while waiting for the relay.

        Without ``pauses``, a relay that can't be reached raises :class:`DeliveryError`;
        with it, the relay is tried again after each ``pauses()`` seconds until it answers
        or ``stop`` is set.
        """
        while True:
            probe = self._make()
            try:
                await probe.open()
            except DeliveryError as exc:
                log.error("delivery postponed: cannot reach the %s: %s", self.name, exc)
                if pauses is None:
                    raise
            else:
                self._spare.append(probe)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pauses())
            if stop.is_set():
                return False

    def take(self) -> Transport:
        """A transport for one sender: the opened one first, then new ones (not yet connected)."""
        if len(self._out) >= self.size:
            raise RuntimeError(f"more than {self.size} transports taken from the pool at once")
        transport = self._spare.pop() if self._spare else self._make()
        self._out.add(transport)
        return transport

    async def release(self, transport: Transport) -> None:
        """A sender is done with ``transport``: close it (a failure to close changes nothing)."""
        self._out.discard(transport)
        with contextlib.suppress(Exception):
            await transport.close()

    async def close(self) -> None:
        """Close every transport still open: the probe if no sender took it, and any not released."""
        left, self._spare, self._out = [*self._spare, *self._out], [], set()
        for transport in left:
            with contextlib.suppress(Exception):
                await transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
