"""A message in the form SMTP's DATA carries it: CRLF line ends, dot-stuffed.

Normalizing line ends and dot-stuffing (RFC 5321 4.5.2) walk the whole message; for
a digest of 28 KB sent to thousands of readers that walk, repeated per recipient,
cost more than everything else a message needs.  So the digest framer
(:class:`publisher.mail.message.DigestMessages`) stuffs the constant stretches of a
digest once and hands the transport a :class:`WireMessage`; only a message made
elsewhere (a notice, a test) goes through :meth:`WireMessage.of`.

Dot-stuffing is local to lines: stuffing stretches that each start at the beginning
of a line and joining them equals stuffing the joined message, which is what lets
the framer stuff the constant stretches once and the personal ones per message.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
END = b".\r\n"  # the line that ends DATA (RFC 5321 4.1.1.4)
_QP_LINE = 76  # RFC 2045's limit for an encoded line, the soft-break "=" included
_QP_LITERAL = re.compile(r"[!-<>-~]*")  # what quoted-printable leaves as it is, anywhere in a line


def stuff(chunk: bytes) -> bytes:
    """``chunk`` (CRLF line ends, starting at the beginning of a line) dot-stuffed: a line's leading "." doubled."""
    if b"\r\n." in chunk:
        chunk = chunk.replace(b"\r\n.", b"\r\n..")
    return b"." + chunk if chunk.startswith(b".") else chunk


@dataclass(frozen=True, slots=True)
class WireMessage:
    """``data``: what DATA sends after the 354: the message with CRLF line ends,
    dot-stuffed, ending in CRLF, then the ``.`` CRLF that ends the data (so the transport
    writes it as it is, without a copy); ``size``: the message before dot-stuffing, which
    RFC 1870 has MAIL FROM declare.

    Build one with :meth:`of`, or, knowing the stretches are already in that form,
    directly (the digest framer).
    """

    data: bytes
    size: int

    @classmethod
    def of(cls, message: bytes) -> WireMessage:
        """Any message (any line ends, a last line with or without one) in wire form.

        A message built here has CRLF line ends already: counting them is cheaper than
        normalizing, which runs only on a message with a bare CR or LF.
        """
        newlines = message.count(b"\n")
        if newlines != message.count(b"\r") or newlines != message.count(b"\r\n"):
            message = _LINE_END.sub(b"\r\n", message)
        if not message.endswith(b"\r\n"):
            message += b"\r\n"
        return cls(stuff(message) + END, len(message))

    def plain(self) -> bytes:
        """The message itself (CRLF line ends, not dot-stuffed): for a Maildir file, or to sign."""
        data = self.data[:-len(END)]
        data = data.replace(b"\r\n..", b"\r\n.") if b"\r\n.." in data else data
        return data[1:] if data.startswith(b"..") else data

    def prepend(self, head: bytes) -> WireMessage:
        """This message with ``head`` (whole CRLF-ended header lines, e.g. a DKIM-Signature) in front."""
        if not head.endswith(b"\r\n"):
            raise ValueError("a prepended header block must end with CRLF")
        return WireMessage(stuff(head) + self.data, len(head) + self.size)


def quoted_printable(text: str) -> bytes:
    """``text`` (CRLF line ends) quoted-printable encoded, ending in a soft line break.

    How both parts of every message travel; the renderer measures a digest's HTML in
    this form too (:mod:`publisher.mail.render`), since that is the size Gmail clips at.

    The soft break lets the next separately encoded stretch start a fresh line; the
    last line is kept under 76 characters so that the ``=`` fits.
    """
    if _QP_LITERAL.fullmatch(text):
        # Printable ASCII without "=" or spaces (links, addresses) encodes as itself:
        # only the soft line breaks are needed.  Most personal values take this path.
        return b"".join(text[i:i + _QP_LINE - 1].encode("ascii") + b"=\r\n" for i in range(0, len(text) or 1, _QP_LINE - 1))
    data = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
    # b2a_qp ends its soft line breaks like the data's lines, LF when it has none: make
    # every break CRLF (the output holds no other CR: a lone one would be =0D).
    encoded = binascii.b2a_qp(data, istext=True).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head, crlf, last = encoded.rpartition(b"\r\n")
    if len(last) >= _QP_LINE:
        unit = 3 if last[-3:-2] == b"=" else 1  # never split an =XX escape
        last = last[:-unit] + b"=\r\n" + last[-unit:]
    return head + crlf + last + b"=\r\n"
