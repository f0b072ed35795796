"""The two in-process reference senders of bench/delivery.py, and the event loop they run on.

* :func:`send_raw`: aiosmtplib's ceiling.  One pre-built message (bytes) handed to
  ``SMTP.sendmail`` over and over, over ``connections`` reused sessions: no rendering,
  no personalization, no ledger.  No sender built on aiosmtplib can go faster.
* :func:`send_transport`: the same pre-built message through publisher's own
  ``SmtpTransport``, which sends the transaction itself (pipelined where the relay
  offers it) without ``sendmail``'s passes over the body.  Given bytes, it puts them in
  wire form (line ends, dot-stuffing) per message, as any sender of arbitrary bytes
  must; given a :class:`~publisher.mail.wire.WireMessage`, it sends it as it is, as
  ``send`` does a digest: the ceiling of publisher's sending, and what ``send``
  achieves beside it is the cost of everything else (personalization, ledger, rate
  control, start-up).
* :class:`NaiveDigest` with :func:`send_naive`: what a straightforward implementation
  does for each subscriber: sign the two personal links, render the Jinja2 HTML and
  text templates, inline the CSS (css-inline, the project's options), build an
  ``email.message.EmailMessage`` with ``set_content`` / ``add_alternative`` and
  ``await smtp.send_message(msg)``.  The CPU work runs on the event loop, between the
  sends, as it does in such code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from typing import Any, TypeVar
from urllib.parse import quote

import aiosmtplib
import css_inline
import jinja2

from publisher.config import Settings, SmtpSettings
from publisher.content.model import Article
from publisher.mail import render
from publisher.mail.transport import SmtpTransport
from publisher.mail.wire import WireMessage
from subscribers.tokens import Purpose, Tokens

T = TypeVar("T")
LOOPS = ("asyncio", "uvloop")


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run_on(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop of kind ``loop`` (``asyncio`` or ``uvloop``)."""
    if loop == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


async def _pool(
    port: int, connections: int, count: int, send: Callable[[aiosmtplib.SMTP, int], Awaitable[None]]
) -> int:
    """Call ``send(smtp, index)`` for index 0..count-1 over ``connections`` sessions; the number sent."""
    next_index = 0
    sent = 0

    async def worker() -> None:
        nonlocal next_index, sent
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        await smtp.connect()
        try:
            while next_index < count:
                index = next_index
                next_index += 1
                await send(smtp, index)
                sent += 1
        finally:
            await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return sent


async def send_raw(port: int, connections: int, count: int, message: bytes, sender: str, recipient: str) -> int:
    """``count`` copies of the pre-built ``message`` (CRLF bytes) through ``SMTP.sendmail``."""

    async def send(smtp: aiosmtplib.SMTP, _index: int) -> None:
        await smtp.sendmail(sender, [recipient], message)

    return await _pool(port, connections, count, send)


async def send_transport(
    port: int, connections: int, count: int, message: bytes | WireMessage, sender: str, recipient: str
) -> int:
    """``count`` copies of the pre-built ``message`` through publisher's ``SmtpTransport``."""
    settings = SmtpSettings.model_validate({"host": "127.0.0.1", "port": port, "timeout": 60, "tls": "none",
                                            "max_messages_per_connection": count})
    next_index = 0

    async def worker() -> int:
        nonlocal next_index
        sent = 0
        async with SmtpTransport(settings) as transport:
            while next_index < count:
                next_index += 1
                await transport.send(sender, recipient, message)
                sent += 1
        return sent

    return sum(await asyncio.gather(*(worker() for _ in range(connections))))


@dataclass(frozen=True)
class Reader:
    """What the digest templates read as ``personal``."""

    name: str
    email: str
    unsubscribe_url: str
    preferences_url: str


def subscriber(index: int) -> tuple[int, str, str]:
    """``(id, email, name)`` of the benchmark's subscriber number ``index`` (ids start at 1)."""
    sid = index + 1
    return sid, f"user{sid}@example.org", f"Reader {sid}"


class NaiveDigest:
    """Builds one subscriber's digest from scratch, the straightforward way."""

    def __init__(
        self, settings: Settings, articles: Sequence[Article], env: jinja2.Environment, tokens: Tokens
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.html_template = env.get_template("email/digest.html")
        self.text_template = env.get_template("email/digest.txt")
        self.inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        site = settings.site
        first = articles[0]
        subject = first.title if len(articles) == 1 else f"{site.title}: {first.title} and {len(articles) - 1} more"
        self.subject = subject
        self.context: dict[str, object] = {
            "articles": articles,
            "site": site,
            "cadence": "instant",
            "digest": render.digest_name("instant", site.language),
            "from_name": settings.delivery.from_name,
            "resend": False,
            "headlines": set(),  # the whole digest fits [digest] max_message_bytes: every article in full
            "unlisted": 0,
            "toc": len(articles) > render.TOC_MIN_ARTICLES,
            "toc_anchors": False,
            "subject": subject,
            "preheader": first.summary or (first.takeaways[0] if first.takeaways else first.title),
            "view_url": f"{site.url}digests/{quote('instant-bench', safe='')}",
            "heading": render.heading,
            "text_table": render.text_table,
        }
        self.sender = Address(settings.delivery.from_name, addr_spec=settings.delivery.from_address)
        self.mailto = f"mailto:{settings.delivery.from_address}?subject=unsubscribe"

    def personal(self, index: int) -> Reader:
        sid, email, name = subscriber(index)
        site_url = self.settings.site.url
        return Reader(
            name=name,
            email=email,
            unsubscribe_url=self.tokens.link(site_url, Purpose.UNSUBSCRIBE, sid, email),
            preferences_url=self.tokens.link(site_url, Purpose.PREFERENCES, sid, email),
        )

    def render(self, personal: Reader) -> tuple[str, str]:
        context = self.context | {"personal": personal}
        return self.inliner.inline(self.html_template.render(context)), self.text_template.render(context)

    def build(self, personal: Reader, html: str, text: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = self.subject
        msg["From"] = self.sender
        msg["To"] = Address(personal.name, addr_spec=personal.email)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain=self.settings.sending_domain)
        msg["List-Unsubscribe"] = f"<{personal.unsubscribe_url}>, <{self.mailto}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return msg

    def message(self, index: int) -> EmailMessage:
        personal = self.personal(index)
        html, text = self.render(personal)
        return self.build(personal, html, text)

    def breakdown(self, samples: int = 300) -> dict[str, float]:
        """Mean milliseconds per message of each step alone (no network), then of all in a row.

        Each step runs ``samples`` times in its own loop; "all steps" builds whole
        messages, and costs more than the sum: the garbage collector and the caches
        then see one message's worth of objects at a time.
        """
        personal = self.personal(0)
        context = self.context | {"personal": personal}
        raw_html = self.html_template.render(context)
        html = self.inliner.inline(raw_html)
        text = self.text_template.render(context)
        msg = self.build(personal, html, text)
        steps: dict[str, Callable[[int], object]] = {
            "sign 2 links": self.personal,
            "render HTML": lambda _i: self.html_template.render(context),
            "inline CSS": lambda _i: self.inliner.inline(raw_html),
            "render text": lambda _i: self.text_template.render(context),
            "build EmailMessage": lambda _i: self.build(personal, html, text),
            "serialize (as_bytes)": lambda _i: msg.as_bytes(policy=SMTP_POLICY),
            "all steps": lambda i: self.message(i).as_bytes(policy=SMTP_POLICY),
        }
        result = {}
        for name, step in steps.items():
            for i in range(samples // 10):  # warm up
                step(i)
            started = time.perf_counter()
            for i in range(samples):
                step(i)
            result[name] = (time.perf_counter() - started) / samples * 1000
        result["message bytes"] = float(len(msg.as_bytes(policy=SMTP_POLICY)))
        return result


async def send_naive(port: int, connections: int, count: int, digest: NaiveDigest) -> int:
    """``count`` subscribers' digests, each built from scratch and sent with ``send_message``."""

    async def send(smtp: aiosmtplib.SMTP, index: int) -> None:
        await smtp.send_message(digest.message(index))

    return await _pool(port, connections, count, send)
