"""Frame one subscriber's copy of a digest as an RFC 5322 / MIME message.

This is the only place that builds MIME, so the per-message framing can later be
swapped for a faster hand-written one without touching callers.  Every header value
is checked here, whatever its origin (config, subscriber data, article titles): a
CR or LF in a header value would let its author add headers (``Bcc:``) or a body.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, Policy
from email.utils import make_msgid
from typing import Self
from urllib.parse import quote, urlsplit

from publisher.config import Settings
from publisher.mail.render import Personal, RenderedDigest

# Control characters (CR, LF, NUL and friends) and the Unicode line separators that
# str.splitlines(), and so the email package's folding, treats as line breaks.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# Message-ID left part: RFC 5322 dot-atom-text, narrowed to what our digest ids use.
_DIGEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# An http(s) URL without the characters RFC 2369 reserves in <URL> lists (',', '<', '>', space).
_LIST_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+;=%]+")
_LIST_LABEL = "newsletter"


def build_message(
    rendered: RenderedDigest,
    personal: Personal,
    *,
    settings: Settings,
    digest_id: str,
    subscriber_id: int,
    date: datetime,
) -> bytes:
    """The wire bytes (CRLF) of ``personal``'s copy of ``rendered``.

    multipart/alternative, text/plain first so clients prefer the HTML that follows,
    both UTF-8 quoted-printable (7-bit safe on any relay).  Raises ValueError for any
    unsafe header value, invalid address or URL, or a naive ``date``.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if not _DIGEST_ID.fullmatch(digest_id):
        raise ValueError(f"digest id {digest_id!r} is not usable in a Message-ID")
    unsubscribe_url = _list_url(personal.unsubscribe_url)
    html, text = rendered.personalize(personal)

    msg = EmailMessage(policy=SMTP)
    msg["Date"] = date
    msg["Message-ID"] = f"<{digest_id}.{subscriber_id:d}@{settings.sending_domain}>"
    msg["From"] = _address(settings.delivery.from_name, settings.delivery.from_address)
    msg["To"] = _address(personal.name, personal.email)
    msg["Subject"] = _checked("subject", rendered.subject)
    msg["MIME-Version"] = "1.0"
    msg["List-Id"] = _Preformatted("List-Id", *_phrase(settings.site.title), f"<{_list_id(settings.site.url)}>")
    mailto = f"mailto:{quote(settings.delivery.from_address, safe='@')}?subject=unsubscribe"
    msg["List-Unsubscribe"] = _Preformatted("List-Unsubscribe", f"<{unsubscribe_url}>,", f"<{mailto}>")
    if unsubscribe_url.startswith("https://"):
        # RFC 8058 one-click applies to an HTTPS URI only; receivers ignore it otherwise.
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.make_alternative()
    msg.set_payload([_text_part("plain", text), _text_part("html", html)])
    return msg.as_bytes()


def build_notice(
    *, settings: Settings, to_name: str, to_email: str, subject: str, html: str, text: str, date: datetime
) -> bytes:
    """The wire bytes of a one-to-one message (a confirmation, a link to preferences).

    Transactional, not bulk: it comes from ``[delivery] transactional_from`` when set
    and carries no List-* headers, so receivers don't offer to "unsubscribe" from a
    message the person just asked for.  Its Message-ID is random: it is never resent.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    delivery = settings.delivery
    msg = EmailMessage(policy=SMTP)
    msg["Date"] = date
    msg["Message-ID"] = make_msgid(domain=settings.sending_domain)
    msg["From"] = _address(delivery.from_name, delivery.transactional_from or delivery.from_address)
    msg["To"] = _address(to_name, to_email)
    msg["Subject"] = _checked("subject", subject)
    msg["MIME-Version"] = "1.0"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: autoresponders must not answer it
    msg.make_alternative()
    msg.set_payload([_text_part("plain", text), _text_part("html", html)])
    return msg.as_bytes()


def _text_part(subtype: str, body: str) -> MIMEPart:
    """A UTF-8 quoted-printable part: 7-bit clean for any relay, whatever the line lengths."""
    part = MIMEPart(policy=SMTP)
    part.set_content(body, subtype=subtype, charset="utf-8", cte="quoted-printable")
    return part


class _Preformatted(str):
    """A header value the email package must emit as given, folding only between ``words``.

    The email package RFC 2047-encodes any token longer than a line to fold it,
    which turns a long ``<https://…>`` in List-Unsubscribe into encoded-words that
    receivers do not decode (so one-click unsubscribe silently breaks).  Header
    objects, i.e. values with a ``name``, are stored and folded by their own
    ``fold`` (documented in ``email.policy.EmailPolicy``).
    """

    name: str
    words: tuple[str, ...]

    def __new__(cls, name: str, *words: str) -> Self:
        for word in words:
            if not word.isascii() or _UNSAFE.search(word):
                raise ValueError(f"{name}: unsafe header word {word!r}")
        self = super().__new__(cls, " ".join(words))
        self.name = name
        self.words = words
        return self

    def fold(self, *, policy: Policy) -> str:
        limit = policy.max_line_length or sys.maxsize  # None: never fold
        lines = [f"{self.name}:"]
        for word in self.words:
            if len(lines[-1]) + 1 + len(word) > limit and lines[-1] != f"{self.name}:":
                lines.append("")
            lines[-1] += f" {word}"
        return policy.linesep.join(lines) + policy.linesep


def _checked(what: str, value: str) -> str:
    if _UNSAFE.search(value):
        raise ValueError(f"{what} must not contain control characters or line breaks: {value!r}")
    return value


def _address(display_name: str, addr_spec: str) -> Address:
    """A validated, ASCII-only address (IDN domains as punycode; no SMTPUTF8 local parts).

    Whether the mailbox is real is the subscription's business (email-validator at
    sign-up); here the address only has to be safe and well-formed in a header.
    """
    _checked("display name", display_name)
    local, at, domain = _checked("address", addr_spec).rpartition("@")
    if not (local and at and domain):
        raise ValueError(f"not an email address: {addr_spec!r}")
    if not local.isascii():
        raise ValueError(f"{addr_spec!r}: a non-ASCII local part needs SMTPUTF8, which is not supported")
    try:
        return Address(display_name=display_name, addr_spec=f"{local}@{domain.encode('idna').decode('ascii')}")
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"not a valid email address: {addr_spec!r} ({exc})") from None


def _list_url(url: str) -> str:
    if not _LIST_URL.fullmatch(url):
        raise ValueError(f"unsubscribe URL must be an absolute http(s) URL without spaces or commas: {url!r}")
    return url


def _phrase(text: str) -> tuple[str, ...]:
    """``text`` as RFC 5322 phrase words: one quoted-string, or RFC 2047 encoded-words."""
    text = " ".join(_checked("site title", text).split())
    if text.isascii():
        return ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"',)
    return tuple(Header(text, "utf-8").encode().split())


def _list_id(site_url: str) -> str:
    """RFC 2919 list id: ``newsletter.<site host>``, or the unmanaged ``localhost`` namespace.

    A bare IP address or single-label host is no domain the owner controls, which is
    what RFC 2919 reserves ``localhost`` for.
    """
    host = urlsplit(site_url).hostname or ""
    try:
        ipaddress.ip_address(host)
        host = ""
    except ValueError:
        pass
    namespace = host.encode("idna").decode("ascii") if "." in host else "localhost"
    return f"{_LIST_LABEL}.{namespace}"
