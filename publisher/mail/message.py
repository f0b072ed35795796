"""Frame one subscriber's copy of a digest as an RFC 5322 / MIME message.

This is the only place that builds MIME, so the per-message framing can later be
swapped for a faster hand-written one without touching callers.  Every header value
is checked here, whatever its origin (config, subscriber data, article titles): a
CR or LF in a header value would let its author add headers (``Bcc:``) or a body.

This module is long because framing and the header encodings it needs (RFC 2047 words,
folding, address checks) are one job: a value is checked where it is framed.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
import secrets
import sys
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, Policy
from email.utils import formataddr, make_msgid
from typing import AnyStr, Self
from urllib.parse import quote, urlsplit

from publisher import urls
from publisher.config import Settings
from publisher.mail.render import Personal, RenderedDigest
from publisher.mail.wire import END, WireMessage, quoted_printable, stuff

# Control characters (CR, LF, NUL and friends) and the Unicode line separators that
# str.splitlines(), and so the email package's folding, treats as line breaks.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# Bidi embeddings, overrides and isolates: in a Subject or a display name they make text
# read backwards ("Invoice \u202egpj.exe"), and a one-line header has no paragraph they
# could legitimately shape; they are dropped from header text.
_BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
# Message-ID left part: RFC 5322 dot-atom-text, narrowed to what our digest ids use.
_DIGEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# An http(s) URL without the characters RFC 2369 reserves in <URL> lists (',', '<', '>', space).
_LIST_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+;=%]+")
_LIST_LABEL = "newsletter"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
# RFC 2047 allows 75 characters per encoded-word and 76 per line; at 66 even the first
# one fits on the line of its field name ("Subject: ", "From: ", "To: ").
_ENCODED_WORD_MAX = 66
_ENCODED_WORD_FRAME = len("=?utf-8?q??=")
# What the "Q" encoding may leave as it is even in a phrase (RFC 2047 section 5 (3)).
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def build_message(
    rendered: RenderedDigest,
    personal: Personal,
    *,
    settings: Settings,
    digest_id: str,
    subscriber_id: int,
    date: datetime,
) -> bytes:
    """The wire bytes (CRLF) of ``personal``'s copy of ``rendered`` (see :class:`DigestMessages`)."""
    return DigestMessages(rendered, settings=settings, digest_id=digest_id, date=date).build(personal, subscriber_id)


class DigestMessages:
    """Frames every subscriber's copy of one rendered digest, at the speed of a join.

    Building an ``EmailMessage`` costs about 2 ms; a fan-out can afford microseconds.
    So everything that is the same for every subscriber (the constant headers, the
    MIME frame, the quoted-printable encoding of the constant stretches of both
    parts, and their dot-stuffing for SMTP) is done once here, and :meth:`wire` only
    encodes and stuffs the few personal values and joins bytes.  Separately encoded
    stretches are joined by QP soft line breaks (``=`` CRLF, which decoders remove),
    so no encoded line exceeds 76 characters, nothing is ever substituted inside
    encoded bytes, and every stretch starts a line (so it can be stuffed alone).

    The message: multipart/alternative, text/plain first so clients prefer the HTML
    that follows, both UTF-8 quoted-printable (7-bit safe on any relay).  The
    boundary starts with ``=_``, which quoted-printable output can never contain.
    Raises ValueError for any unsafe header value, invalid address or URL, or a naive
    ``date``.
    """

    def __init__(self, rendered: RenderedDigest, *, settings: Settings, digest_id: str, date: datetime) -> None:
        if date.tzinfo is None or date.utcoffset() is None:
            raise ValueError("date must be timezone-aware")
        if not _DIGEST_ID.fullmatch(digest_id):
            raise ValueError(f"digest id {digest_id!r} is not usable in a Message-ID")
        self._rendered = rendered
        self._digest_id = digest_id
        self._domain = settings.sending_domain
        sender = settings.delivery.from_address
        self._mailto = _unsubscribe_mailto(sender)
        self._one_click = urls.is_https(settings.site.url)
        boundary = "=_" + secrets.token_hex(16)
        constant = EmailMessage(policy=SMTP)
        constant["Date"] = date
        constant["From"] = _mailbox("From", settings.delivery.from_name, sender)
        constant["Subject"] = _Preformatted("Subject", *_text_words(_checked("subject", rendered.subject)))
        constant["MIME-Version"] = "1.0"
        constant["List-Id"] = _Preformatted(
            "List-Id", *_phrase("site title", settings.site.title), f"<{_list_id(settings.site.url)}>"
        )
        constant["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
        head = b"".join(SMTP.fold_binary(name, value) for name, value in constant.items())
        part_head = (
            "--{b}\r\nContent-Type: text/{t}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        text_head = part_head.format(b=boundary, t="plain").encode("ascii")
        html_head = b"\r\n" + part_head.format(b=boundary, t="html").encode("ascii")
        tail = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._frame_size = len(head) + len(text_head) + len(html_head) + len(tail)
        self._head, self._text_head, self._html_head, self._tail = map(stuff, (head, text_head, html_head, tail))
        self._tail += END
        self._text = _Encoded(rendered.segments("text"))
        self._html = _Encoded(rendered.segments("html"))

    def build(self, personal: Personal, subscriber_id: int) -> bytes:
        """``personal``'s copy as plain bytes (CRLF, not dot-stuffed): previews, tests, files."""
        return self.wire(personal, subscriber_id).plain()

    def wire(self, personal: Personal, subscriber_id: int) -> WireMessage:
        """``personal``'s copy as SMTP's DATA carries it, joined from stretches stuffed once per digest."""
        unsubscribe_url = _list_url(personal.unsubscribe_url)
        to_field = _to(personal.name, personal.email)
        html_values, text_values = self._rendered.values(personal)
        encoded: dict[str, tuple[bytes, int]] = {}  # a value the same in both parts (a link) is encoded once
        personal_head = [
            f"Message-ID: <{self._digest_id}.{subscriber_id:d}@{self._domain}>",
            to_field,
            f"List-Unsubscribe: <{unsubscribe_url}>,\r\n <{self._mailto}>",
        ]
        if self._one_click and unsubscribe_url.startswith("https://"):
            # RFC 8058 one-click applies to an HTTPS URI only; receivers ignore it otherwise.
            personal_head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        head = ("\r\n".join(personal_head) + "\r\n\r\n").encode("ascii")
        text, text_size = self._text.fill(text_values, encoded)
        html, html_size = self._html.fill(html_values, encoded)
        return WireMessage(
            b"".join((self._head, stuff(head), self._text_head, text, self._html_head, html, self._tail)),
            self._frame_size + len(head) + text_size + html_size,
        )


class _Encoded:
    """One part's segments, the constant ones quoted-printable encoded and dot-stuffed once.

    Every encoded segment ends in a soft line break, so the next one starts a line:
    each can be stuffed on its own (see :mod:`publisher.mail.wire`).
    """

    def __init__(self, segments: list[str]) -> None:
        self._parts: list[bytes | str] = list(segments)  # the sentinels (odd items) stay, for fill() to replace
        self._size = 0
        for index in range(0, len(segments), 2):
            self._parts[index], size = _wire_qp(segments[index])
            self._size += size
        self._sentinels = segments[1::2]

    def fill(self, values: dict[str, str], encoded: dict[str, tuple[bytes, int]]) -> tuple[bytes, int]:
        """The part with ``values`` (by sentinel) spliced in, and its size before stuffing;
        ``encoded`` caches :func:`_wire_qp` by value."""
        codes = [encoded.get(value) or encoded.setdefault(value, _wire_qp(value))
                 for value in map(values.__getitem__, self._sentinels)]
        parts = self._parts.copy()
        parts[1::2] = [code for code, _ in codes]
        return b"".join(parts), self._size + sum(size for _, size in codes)  # type: ignore[arg-type]


def _wire_qp(text: str) -> tuple[bytes, int]:
    """:func:`~publisher.mail.wire.quoted_printable` of ``text``, dot-stuffed, and its size before stuffing."""
    code = quoted_printable(text)
    return stuff(code), len(code)


def _to(name: str, email: str) -> str:
    """The whole To field on the wire (folded, no line end after it).

    A plain ASCII dot-atom address (nearly all of them) is checked by one regular
    expression; anything else goes through the full parse of :func:`_address`, which
    is 50 times slower.  A short ASCII name (nearly all of them again) fits on one
    line as ``formataddr`` writes it; any other is folded into RFC 2047 words.
    """
    _checked("display name", name)
    if not _PLAIN_ADDRESS.fullmatch(email):
        return _mailbox("To", name, email).fold(policy=SMTP).removesuffix("\r\n")
    if name.isascii() and len(name) + len(email) < 70 and "=?" not in name:
        return "To: " + formataddr((name, email))
    return _Preformatted("To", *_phrase("display name", name), f"<{email}>").fold(policy=SMTP).removesuffix("\r\n")


def build_notice(
    *, settings: Settings, to_name: str, to_email: str, subject: str, html: str, text: str, date: datetime,
    unsubscribe_url: str | None = None,
) -> bytes:
    """The wire bytes of a one-to-one message (a confirmation, a link to preferences, a welcome).

    Transactional, not bulk: it comes from ``[delivery] transactional_from`` when set
    and carries no List-* headers, so receivers don't offer to "unsubscribe" from a
    message the person just asked for.  Its Message-ID is random: it is never resent.
    A notice that is the list's first mail to a new subscriber (the welcome) passes
    ``unsubscribe_url``: it then carries List-Unsubscribe (and RFC 8058 one-click over
    HTTPS) as a digest does.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    delivery = settings.delivery
    msg = EmailMessage(policy=SMTP)
    msg["Date"] = date
    msg["Message-ID"] = make_msgid(domain=settings.sending_domain)
    msg["From"] = _mailbox("From", delivery.from_name, delivery.transactional_from or delivery.from_address)
    msg["To"] = _mailbox("To", to_name, to_email)
    msg["Subject"] = _Preformatted("Subject", *_text_words(_checked("subject", subject)))
    msg["MIME-Version"] = "1.0"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: autoresponders must not answer it
    if unsubscribe_url is not None:
        mailto = _unsubscribe_mailto(delivery.from_address)
        msg["List-Unsubscribe"] = _Preformatted("List-Unsubscribe", f"<{_list_url(unsubscribe_url)}>,", f"<{mailto}>")
        if urls.is_https(settings.site.url) and unsubscribe_url.startswith("https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
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


def _unsubscribe_mailto(sender: str) -> str:
    """The List-Unsubscribe mailto: URI, to the list's own address (the reply inbox reads it)."""
    return f"mailto:{quote(sender, safe='@')}?subject=unsubscribe"


def _list_url(url: str) -> str:
    if not _LIST_URL.fullmatch(url):
        raise ValueError(f"unsubscribe URL must be an absolute http(s) URL without spaces or commas: {url!r}")
    return url


def _mailbox(field: str, display_name: str, addr_spec: str) -> _Preformatted:
    """A From or To field of one validated address, its display name folded as RFC 2047 words."""
    address = _address(display_name, addr_spec)
    return _Preformatted(field, *_phrase("display name", display_name), f"<{address.addr_spec}>")


def _phrase(what: str, text: str) -> tuple[str, ...]:
    """``text`` as RFC 5322 phrase words: a quoted-string, or RFC 2047 encoded-words.

    Runs of whitespace become one space; bidi controls go (see ``_BIDI_CONTROLS``).
    The quoted-string is split at its spaces, where it may fold; an encoded-word may
    not stand inside quotes, so a non-ASCII phrase (or one with a word too long to
    fold) is encoded whole, and so is one holding "=?": inside quotes it is literal by
    RFC 2047, but clients that decode there anyway would show an "=??Q??=" as nothing.
    """
    text = _BIDI_CONTROLS.sub("", _checked(what, text))
    words = text.split()
    if not words:
        return ()
    if text.isascii() and "=?" not in text and max(map(len, words)) <= _ENCODED_WORD_MAX:
        quoted = " ".join(words).replace("\\", "\\\\").replace('"', '\\"')
        return tuple(f'"{quoted}"'.split(" "))
    return tuple(_encoded_words(" ".join(words)))


def _text_words(text: str) -> tuple[str, ...]:
    """Unstructured text (a Subject) as words to fold between, valid RFC 2047 whatever the text.

    CPython's own folder may write an empty encoded-word (``=?utf-8?q??=``) where a
    multi-byte character meets the fold, which some clients show literally; so we
    encode here.  Plain ASCII words stay readable; each run of other words becomes
    encoded-words together with the spaces inside the run (decoders drop the
    whitespace between two encoded-words, but keep it next to a plain word).  A word
    that looks like an encoded-word, or is too long to fold, is encoded too.  Runs
    of whitespace become one space; bidi controls go (see ``_BIDI_CONTROLS``).
    """
    words: list[str] = []
    run: list[str] = []
    for word in _BIDI_CONTROLS.sub("", text).split():
        if word.isascii() and len(word) <= _ENCODED_WORD_MAX and "=?" not in word:
            if run:
                words += _encoded_words(" ".join(run))
                run = []
            words.append(word)
        else:
            run.append(word)
    if run:
        words += _encoded_words(" ".join(run))
    return tuple(words)


def _encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 encoded-words of at most ``_ENCODED_WORD_MAX`` characters, none empty.

    Words end between characters, never inside a UTF-8 sequence, so each decodes
    on its own.  The "Q" encoding (readable for mostly Latin text) or "B" (shorter
    for CJK or emoji), whichever is shorter for the whole of ``text``; the Q form
    uses only characters safe in a phrase, so both serve display names too.
    """
    room = _ENCODED_WORD_MAX - _ENCODED_WORD_FRAME
    q_pieces = [c if c in _Q_SAFE else "_" if c == " " else "".join(f"={b:02X}" for b in c.encode()) for c in text]
    if sum(map(len, q_pieces)) <= 4 * -(-len(text.encode()) // 3):
        return [f"=?utf-8?q?{''.join(chunk)}?=" for chunk in _packed(q_pieces, room)]
    b_pieces = [c.encode() for c in text]  # base64: 4 characters per 3 bytes
    return [
        f"=?utf-8?b?{binascii.b2a_base64(b''.join(chunk), newline=False).decode('ascii')}?="
        for chunk in _packed(b_pieces, room // 4 * 3)
    ]


def _packed(pieces: list[AnyStr], room: int) -> list[list[AnyStr]]:
    """``pieces`` in order, in as few non-empty groups of at most ``room`` total length as may be."""
    groups: list[list[AnyStr]] = [[]]
    used = 0
    for piece in pieces:
        if used + len(piece) > room and groups[-1]:
            groups.append([])
            used = 0
        groups[-1].append(piece)
        used += len(piece)
    return [group for group in groups if group]


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
