"""An in-process SMTP server for tests: aiosmtpd on 127.0.0.1, on a free port.

    with SmtpServer(replies={"bad@example.org": "550 5.1.1 No such user"}) as server:
        ...deliver to 127.0.0.1:server.port...
        assert server.messages[0].rcpt_tos == ["reader@example.org"]

The server runs in its own thread and event loop (aiosmtpd's ``Controller``), so it
serves sync and async tests alike and nothing the client does can stall it. Options
cover what delivery code must cope with: STARTTLS, implicit TLS, AUTH, per-recipient
refusals, and connections cut by the server. :func:`tls_contexts` makes a matching
server/client certificate pair with trustme.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted transaction, as the server saw it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # the DATA bytes exactly as received (after dot-unstuffing)
    login: str | None  # the AUTH user name; None when the client did not log in
    tls: bool  # whether the session was encrypted (STARTTLS or implicit TLS)
    mail_options: list[str]  # the MAIL FROM parameters, e.g. ["SIZE=1234"]


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """``(server, client)``: a certificate for 127.0.0.1/localhost from a fresh trustme CA,
    and a client context that trusts that CA (and nothing else)."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "localhost").configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    return server, client


class SmtpServer:
    """A recording SMTP server; use as a context manager, or ``start()``/``stop()``.

    - ``messages``: every accepted transaction, in order (:class:`Received`).
    - ``connections``: how many sessions clients opened (to check connection reuse).
    - ``starttls=ctx``: offer STARTTLS and refuse mail until the client uses it (or, with
      ``require_starttls=False``, only offer it).
    - ``implicit_tls=ctx``: TLS from the first byte (SMTPS, port 465 style).
    - ``auth=(user, password)``: offer AUTH PLAIN/LOGIN with these credentials. Logging
      in stays optional (check ``Received.login``), and AUTH is also offered without TLS:
      aiosmtpd doesn't count implicit TLS as encrypted (aio-libs/aiosmtpd#281).
    - ``replies={address: "550 ..."}``: answer RCPT for that address with this reply.
    - ``port``: 0 picks a free one; pass an old ``server.port`` to "restart" a server.
    - ``pipelining=True``: announce PIPELINING (RFC 2920) in the EHLO reply, as Postfix does;
      aiosmtpd reads commands one line at a time from its buffer either way, so only what
      the client sends changes.

    For any other behaviour, subclass and override a ``handle_*`` hook (aiosmtpd's handler
    API): the server is its own handler. Behaviour below the handler API (the greeting,
    the connection, the DATA stream) goes in a subclass of aiosmtpd's ``SMTP`` named by
    ``session_class``: one is made per connection (see ``tests/smtp_faults.py``).
    """

    session_class: type[SMTP] = SMTP

    def __init__(
        self,
        *,
        port: int = 0,
        starttls: ssl.SSLContext | None = None,
        require_starttls: bool = True,
        implicit_tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        replies: dict[str, str] | None = None,
        pipelining: bool = False,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("choose STARTTLS or implicit TLS, not both")
        self.messages: list[Received] = []
        self.replies = dict(replies or {})
        self.pipelining = pipelining
        self._credentials = LoginPassword(auth[0].encode(), auth[1].encode()) if auth else None
        self._sessions: list[SMTP] = []
        options: dict[str, Any] = {}
        if starttls:
            options.update(tls_context=starttls, require_starttls=require_starttls)
        if auth:
            options.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _Controller(
            self,
            self._sessions,
            hostname=HOST,
            port=port,
            ssl_context=implicit_tls,
            server_hostname="localhost",  # else every session does a getfqdn() DNS lookup
            **options,
        )

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def connections(self) -> int:
        return len(self._sessions)

    def start(self) -> None:
        self._controller.start()
        self._sessions.clear()  # forget the Controller's own start-up probe connection

    def stop(self) -> None:
        """Cut the open sessions (aiosmtpd would leave them half open), then stop."""
        self.drop_connections()
        self._controller.stop()

    def drop_connections(self) -> None:
        """Abort every open session from the server side, as a crash or restart does.

        Returns once the server has stopped reading them: no command sent on them from
        now on gets an answer.
        """
        asyncio.run_coroutine_threadsafe(self._abort_sessions(), self._controller.loop).result(timeout=5)

    async def _abort_sessions(self) -> None:
        for session in self._sessions:
            if isinstance(session.transport, asyncio.Transport):  # None once closed
                session.transport.abort()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # aiosmtpd handler hooks (they run in the server's thread)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when no handler has this hook
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")  # before the last line, "250 HELP"
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.mail_from is not None and envelope.original_content is not None
        assert server.transport is not None
        self.messages.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.original_content,
                login=session.auth_data,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                mail_options=list(envelope.mail_options),
            )
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if auth_data == self._credentials:  # a LoginPassword for PLAIN and LOGIN
            return AuthResult(success=True, auth_data=auth_data.login.decode())
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535


class _Controller(Controller):
    """aiosmtpd's Controller, recording each session, and working with port 0."""

    def __init__(self, handler: SmtpServer, sessions: list[SMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions

    def factory(self) -> SMTP:
        session = self.handler.session_class(self.handler, **self.SMTP_kwargs)
        self._sessions.append(session)
        return session

    def _trigger_server(self) -> None:
        # start() probes self.port, which with port 0 is the requested, not the bound,
        # port (aio-libs/aiosmtpd#388): learn the real one first.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
