"""Read bounces and complaints: bytes of one email in, what it reports out.

Pure functions, no I/O: :func:`parse_report` is given the raw bytes of a message
that arrived in the bounce mailbox and says whether it is

* a delivery status notification (RFC 3464 ``multipart/report;
  report-type=delivery-status``, what Postfix, Gmail, Microsoft 365/Exchange and
  most MTAs send), one :class:`BounceEvent` per recipient that failed;
* a feedback report (RFC 5965 ARF, ``report-type=feedback-report``, what Yahoo,
  AOL, Microsoft's JMRP and others send when a reader clicks "this is spam"), a
  ``complaint`` event;
* a classic text bounce (Exim's "This message was created automatically by mail
  delivery software", qmail's "Hi. This is the qmail-send program"), read from
  ``X-Failed-Recipients`` and the SMTP codes in the text;
* or not a bounce at all: out-of-office and other auto-replies, delay warnings,
  read receipts, ordinary mail.  Those are never counted as bounces.

The module is long because it is one reader of many dialects: the formats above and
the quirks of each large provider's reports share the MIME walk, the address rules
and the not-a-bounce checks, and a module per format would pass all of them around.

Whether a failure is hard or soft is :func:`publisher.mail.replies.failure_kind`'s
call, next to the rules for a relay's live replies, so both read a reply's text alike.
Besides:

* ``Action: delayed`` is **not** a bounce.  It is a warning that the MTA is still
  retrying; the final outcome (delivered, or a ``failed`` DSN) follows.  Counting it
  would count one message's trouble twice (the warning and then the failure) and
  suppress readers whose provider was slow for a day.
* ``delivered``, ``relayed`` and ``expanded`` report success and are ignored.

Identifying the reader: the report's recipient address (``Final-Recipient``, else
``Original-Recipient``; ``Original-Rcpt-To`` or the returned message's ``To`` for
complaints).  Providers often redact it in complaints; then the returned message's
``Message-ID``, which is ours and deterministic (``<digest-id.subscriber-id@domain>``,
see :mod:`publisher.mail.message`), gives :attr:`BounceEvent.subscriber_id` and
:attr:`BounceEvent.digest_id`.  The caller should use them only when there is no
address, and check that the digest was really sent to that subscriber (the service
does): subscriber ids are small integers anyone could write into a forged report.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from typing import Literal

from publisher.mail.replies import MAILBOX_FULL, SMTP_CODE, failure_kind, status_code

Kind = Literal["hard", "soft", "complaint"]
Verdict = Literal["bounce", "not-bounce", "unparseable"]

# A bounce carries the returned message, so it can be as large as the largest digest
# plus its images; anything far beyond that is not worth holding in memory.
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_DIAGNOSTIC = 500  # characters kept of a remote server's reply
_MAX_DEPTH = 12  # MIME nesting followed when looking for the report parts

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Outlook's binary .msg (a compound document)
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ARF_TYPES = ("message/feedback-report",)
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")

_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:@]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

_GAVE_UP_TEMPORARY = re.compile(r"retry timeout exceeded|temporar(?:y|ily)|try again later", re.IGNORECASE)

# Text bounces: who sends them, what they are titled, where the returned copy starts.
_DAEMON_LOCAL = re.compile(r"^(?:mailer-daemon|mailer_daemon|mailerdaemon|mail-daemon|postmaster)$", re.IGNORECASE)
_DAEMON_NAME = re.compile(r"mail delivery|mailer.daemon|postmaster|delivery status", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status notification|failure|has failed|failed)|mail delivery fail|returned mail|"
    r"returned to sender|failure notice|could not be delivered|non.?delivery|not delivered|delivery problem",
    re.IGNORECASE,
)
_BOUNCE_TEXT = re.compile(
    r"could not be delivered|couldn't be delivered|wasn't able to deliver|was not able to deliver|"
    r"permanent error|delivery (?:has )?failed|undeliverable|following address(?:es)? failed|"
    r"unable to deliver|delivery to the following recipient",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"delay|warning: message .* delayed|not yet been delivered", re.IGNORECASE)
_COPY_DIVIDER = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:this is a copy of|below this line is a copy|original message|"
    r"the original message|undelivered message|returned message|message headers? follow)"
    r"|^[ \t]*original message follows",
    re.IGNORECASE | re.MULTILINE,
)
# qmail and Postfix-style text: "<user@example.net>:" at the start of a line.
_ANGLED_RECIPIENT_LINE = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:", re.MULTILINE)
# Exim: the failed addresses, indented, after "The following address(es) failed:".
_EXIM_FAILED = re.compile(r"following address(?:\(es\)|es)? failed:\s*\n((?:[ \t]*\n|[ \t]+.*\n?)+)", re.IGNORECASE)

_AUTO_REPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto(?:matic)?[ -]?(?:reply|response|antwort)|^\s*auto:|"
    r"autoreply|on vacation|vacation reply|away from (?:the |my )?office|abwesenheit|"
    r"r[ée]ponse automatique|absence|respuesta autom[aá]tica|risposta automatica",
    re.IGNORECASE,
)
_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply")
# Feedback types that are not a reader's complaint (RFC 6591 auth-failure is a DMARC
# or SPF failure report, not-spam says the reader wants the mail).
_NOT_COMPLAINTS = {"not-spam": "a not-spam report", "auth-failure": "an authentication failure report"}
_OUR_LOCAL_PART = re.compile(r"(?P<digest>[A-Za-z0-9][A-Za-z0-9._-]{0,127})\.(?P<sid>[0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class BounceEvent:
    """One reader's failed delivery or complaint, as a report tells it.

    ``recipient`` is the address as reported (lower-cased), ``""`` when the report
    redacts it or gives none; ``status`` the enhanced status code (``"5.1.1"``,
    ``""`` for complaints); ``diagnostic`` the remote server's reply (or the feedback
    type), on one line; ``source`` where the report was read (a file name).
    ``subscriber_id`` and ``digest_id`` come from our own Message-ID in the returned
    message, when it carries one.
    """

    recipient: str
    kind: Kind
    status: str
    diagnostic: str
    source: str = ""
    subscriber_id: int | None = None
    digest_id: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """What one message turned out to be.

    ``verdict`` is ``bounce`` (``events`` holds at least one event), ``not-bounce``
    (an auto-reply, a delay warning, ordinary mail: ``reason`` says which) or
    ``unparseable`` (``reason`` says why, for the operator to look at the message).
    """

    verdict: Verdict
    events: tuple[BounceEvent, ...] = ()
    reason: str = ""
    source: str = ""


def parse_report(data: bytes, *, source: str = "", sending_domain: str | None = None) -> ParsedReport:
    """Classify one raw message (see the module's docstring); never raises on bad input.

    ``sending_domain`` is the domain of our Message-IDs; without it, events carry
    no subscriber ids.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        return _unparseable(source, f"larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB")
    if data.startswith(_OLE_MAGIC):
        return _unparseable(source, "an Outlook .msg file (binary), not an RFC 5322 message: save it as .eml")
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        if not msg.keys():
            return _unparseable(source, "not an email message: no header fields")
        return _Reader(msg, source, (sending_domain or "").lower()).read()
    # Untrusted input: whatever the email package (or this reader) chokes on is reported as
    # this message's problem, with its file name, and the import goes on with the next one.
    except Exception as exc:  # noqa: BLE001
        return _unparseable(source, f"could not be read as an email message ({type(exc).__name__}: {exc})")


def our_message_id(value: str, sending_domain: str) -> tuple[str, int] | None:
    """``(digest_id, subscriber_id)`` from a Message-ID of ours, else None."""
    if not sending_domain:
        return None
    match = re.search(r"<([^<>@\s]+)@([^<>@\s]+)>", value)
    if match is None or match.group(2).lower() != sending_domain:
        return None
    local = _OUR_LOCAL_PART.fullmatch(match.group(1))
    # make_msgid() (the random ids of confirmation emails) is all digits and dots.
    if local is None or not re.search(r"[A-Za-z]", local.group("digest")):
        return None
    return local.group("digest"), int(local.group("sid"))


def is_redacted(address: str) -> bool:
    """Whether a complaint's recipient address was blanked out by the provider."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return True
    lowered = local.lower()
    return "redacted" in lowered or "*" in local or re.fullmatch(r"x{3,}", lowered) is not None


# --- the reader ---------------------------------------------------------------------


def _unparseable(source: str, reason: str) -> ParsedReport:
    return ParsedReport("unparseable", reason=reason, source=source)


def _not_bounce(source: str, reason: str) -> ParsedReport:
    return ParsedReport("not-bounce", reason=reason, source=source)


def _one_line(text: str, limit: int = MAX_DIAGNOSTIC) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _diagnostic(raw: str) -> str:
    """A reply on one line, without its ``smtp;`` type and the repeated codes of a multi-line reply."""
    text = _one_line(re.sub(r"^\s*[A-Za-z][A-Za-z0-9-]*\s*;\s*", "", raw), limit=4 * MAX_DIAGNOSTIC)
    lead = re.match(r"(\d{3})[- ]((?:\d\.\d{1,3}\.\d{1,3})?)\s*", text)
    if lead:
        repeated = re.escape(lead.group(1)) + r"[- ]" + (re.escape(lead.group(2)) if lead.group(2) else "")
        rest = re.sub(r"\s" + repeated + r"\s+", " ", text[lead.end():])
        text = " ".join(filter(None, (lead.group(1), lead.group(2), rest)))
    return _one_line(text)


def _address(raw: str) -> str:
    """An address from a DSN field (``rfc822; Ann@Example.net``) or a header, lower-cased; "" if none."""
    kind, semicolon, value = raw.partition(";")
    if semicolon and kind.strip().lower() not in ("rfc822", "utf-8", "x-rfc822"):
        return ""
    value = (value if semicolon else raw).strip().strip("<>").strip()
    if not value or any(c.isspace() for c in value) or value.count("@") != 1:
        found = _ADDRESS.search(value)
        return found.group(0).lower() if found else ""
    return value.lower()


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return "" if value is None else str(value)


def _parse_blocks(text: str) -> list[dict[str, str]]:
    """``Name: value`` groups separated by blank lines (continuation lines unfolded)."""
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        fields: dict[str, str] = {}
        last = ""
        for line in chunk.split("\n"):
            if line[:1] in (" ", "\t") and last:
                fields[last] += " " + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                last = name.strip().lower()
                fields.setdefault(last, value.strip())
        if fields:
            blocks.append(fields)
    return blocks


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The field groups of a delivery-status or feedback-report part, however the parser left them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks: list[dict[str, str]] = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            fields: dict[str, str] = {}
            for name, value in sub.items():
                fields.setdefault(name.lower(), _one_line(str(value), limit=4 * MAX_DIAGNOSTIC))
            if fields:
                blocks.append(fields)
            rest = sub.get_payload()
            if isinstance(rest, str) and rest.strip():
                blocks.extend(_parse_blocks(rest))
        return blocks
    raw = part.get_payload(decode=True)
    if isinstance(raw, bytes):
        return _parse_blocks(raw.decode("utf-8", "replace"))
    return _parse_blocks(str(payload))


def _text_of(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _own_parts(msg: Message, depth: int = 0) -> Iterator[Message]:
    """Every MIME part of ``msg``, not descending into attached messages (the returned original)."""
    yield msg
    if depth < _MAX_DEPTH and msg.get_content_maintype() == "multipart":
        payload = msg.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _own_parts(sub, depth + 1)


class _Reader:
    def __init__(self, msg: Message, source: str, sending_domain: str) -> None:
        self.msg = msg
        self.source = source
        self.domain = sending_domain
        self.parts = list(_own_parts(msg))

    def read(self) -> ParsedReport:
        types = {p.get_content_type() for p in self.parts}
        report_types = {str(p.get_param("report-type", "")).lower() for p in self.parts
                        if p.get_content_type() == "multipart/report"}
        if types.intersection(_DSN_TYPES):
            return self.delivery_status()
        if types.intersection(_ARF_TYPES):
            return self.feedback_report()
        if "delivery-status" in report_types:
            return _unparseable(self.source, "a delivery report without its message/delivery-status part")
        if "feedback-report" in report_types:
            return _unparseable(self.source, "a feedback report without its message/feedback-report part")
        if "disposition-notification" in report_types:
            return _not_bounce(self.source, "a read receipt (disposition notification)")
        if report_types - {""}:
            return _not_bounce(self.source, f"a {'/'.join(sorted(report_types - {''}))} report")
        if self.msg.get_all("X-Failed-Recipients"):
            return self.text_bounce()
        from_daemon = self.from_daemon()
        if not from_daemon and (auto := self.auto_reply()):
            return _not_bounce(self.source, auto)
        if from_daemon:
            subject = _header(self.msg, "Subject")
            if _DELAY_SUBJECT.search(subject) and not _BOUNCE_SUBJECT.search(subject):
                return _not_bounce(self.source, "a delay warning: the mail system is still trying")
            if _BOUNCE_SUBJECT.search(subject) or _BOUNCE_TEXT.search(self.notice()[0]):
                return self.text_bounce()
        return _not_bounce(self.source, "not a delivery report or a feedback report")

    # -- who sent it -------------------------------------------------------------------

    def from_daemon(self) -> bool:
        for name, address in getaddresses([_header(self.msg, "From")]):
            local = address.rpartition("@")[0] or address
            if _DAEMON_LOCAL.match(local) or _DAEMON_NAME.search(name):
                return True
        return False

    def auto_reply(self) -> str:
        auto = _header(self.msg, "Auto-Submitted").strip().lower()
        if auto.startswith("auto-replied"):
            return "an auto-reply (Auto-Submitted: auto-replied)"
        for name in _AUTO_REPLY_HEADERS:
            if name in self.msg:
                return f"an auto-reply ({name})"
        if _header(self.msg, "Precedence").strip().lower() == "auto_reply":
            return "an auto-reply (Precedence: auto_reply)"
        if _AUTO_REPLY_SUBJECT.search(_header(self.msg, "Subject")):
            return "an auto-reply (out of office or vacation)"
        return ""

    # -- the returned original -----------------------------------------------------------

    def original(self) -> Message | None:
        for part in self.parts:
            ctype = part.get_content_type()
            if ctype not in _ORIGINAL_TYPES:
                continue
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            text = _text_of(part) if not isinstance(payload, list) else ""
            if text.strip():
                return email.message_from_string(text, policy=email.policy.default)
        return None

    def ours(self, original: Message | None, text: str = "") -> tuple[str, int] | None:
        candidates = [_header(original, "Message-ID")] if original is not None else []
        candidates += re.findall(r"^Message-ID:[ \t]*(<[^>\n]*>)", text, re.IGNORECASE | re.MULTILINE)
        for value in candidates:
            found = our_message_id(value, self.domain)
            if found:
                return found
        return None

    def identified(self, events: list[BounceEvent], ids: tuple[str, int] | None) -> tuple[BounceEvent, ...]:
        """Our Message-ID names one subscriber: it can only identify a report about one recipient."""
        if ids is None or len(events) != 1:
            return tuple(events)
        digest_id, subscriber_id = ids
        only = events[0]
        return (BounceEvent(only.recipient, only.kind, only.status, only.diagnostic, only.source,
                            subscriber_id, digest_id),)

    # -- RFC 3464 ----------------------------------------------------------------------

    def delivery_status(self) -> ParsedReport:
        blocks = [b for p in self.parts if p.get_content_type() in _DSN_TYPES for b in _field_blocks(p)]
        recipients = [b for b in blocks if {"final-recipient", "original-recipient", "action"} & b.keys()]
        if not recipients:
            return _unparseable(self.source, "a delivery report without any recipient fields")
        events: list[BounceEvent] = []
        actions: set[str] = set()
        for block in recipients:
            action = block.get("action", "").split(";")[0].strip().lower()
            diagnostic = _diagnostic(block.get("diagnostic-code", ""))
            status = status_code(block.get("status", "")) or status_code(diagnostic)
            if not action:  # required by RFC 3464; judge by the status when a server left it out
                action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[:1], "failed")
            actions.add(action)
            if action != "failed":
                continue
            kind = failure_kind(status, diagnostic) or "hard"  # "failed" is final even without a code
            recipient = _address(block.get("final-recipient", "")) or _address(block.get("original-recipient", ""))
            events.append(BounceEvent(recipient, kind, status, diagnostic, self.source))
        if not events:
            if "delayed" in actions:
                return _not_bounce(self.source, "a delay warning: the mail system is still trying")
            return _not_bounce(self.source, f"a delivery report without failures ({', '.join(sorted(actions))})")
        original = self.original()
        events = self.fill_recipients(events, original)
        result = self.identified(events, self.ours(original))
        if not any(e.recipient or e.subscriber_id is not None for e in result):
            return _unparseable(self.source, "a delivery report whose failed recipient is not named")
        return ParsedReport("bounce", tuple(e for e in result if e.recipient or e.subscriber_id is not None),
                            source=self.source)

    def fill_recipients(self, events: list[BounceEvent], original: Message | None) -> list[BounceEvent]:
        """A failure without a recipient field: X-Failed-Recipients, or the returned message's one To."""
        if all(e.recipient for e in events) or len(events) != 1:
            return events
        named = [_address(a) for h in self.msg.get_all("X-Failed-Recipients", []) for a in str(h).split(",")]
        if original is not None and not any(named):
            named = [a.lower() for _, a in getaddresses([_header(original, "To")]) if "@" in a]
        named = [a for a in named if a]
        if len(named) != 1:
            return events
        only = events[0]
        return [BounceEvent(named[0], only.kind, only.status, only.diagnostic, only.source)]

    # -- RFC 5965 ----------------------------------------------------------------------

    def feedback_report(self) -> ParsedReport:
        blocks = [b for p in self.parts if p.get_content_type() in _ARF_TYPES for b in _field_blocks(p)]
        fields: dict[str, str] = {}
        for block in blocks:
            for name, value in block.items():
                fields.setdefault(name, value)
        feedback = fields.get("feedback-type", "abuse").strip().lower() or "abuse"
        if feedback in _NOT_COMPLAINTS:
            return _not_bounce(self.source, _NOT_COMPLAINTS[feedback])
        original = self.original()
        candidates = [_address(fields.get("original-rcpt-to", "")), _address(fields.get("removal-recipient", ""))]
        if original is not None:
            candidates += [a.lower() for _, a in getaddresses([_header(original, "To")])]
        recipient = next((a for a in candidates if a and not is_redacted(a)), "")
        ids = self.ours(original)
        if not recipient and ids is None:
            return _unparseable(
                self.source, "a complaint whose recipient is redacted and whose returned message has no Message-ID of ours"
            )
        event = BounceEvent(recipient, "complaint", "", f"feedback-type {feedback}", self.source)
        return ParsedReport("bounce", self.identified([event], ids), source=self.source)

    # -- classic text bounces ----------------------------------------------------------

    def notice(self) -> tuple[str, str]:
        """The bounce's own words and the returned copy after them (text bounces inline it)."""
        texts = [_text_of(p) for p in self.parts
                 if p.get_content_type() == "text/plain" and p.get_content_disposition() != "attachment"]
        text = (texts[0] if texts else "").replace("\r\n", "\n")
        divider = _COPY_DIVIDER.search(text)
        return (text[: divider.start()], text[divider.end():]) if divider else (text, "")

    def text_bounce(self) -> ParsedReport:
        notice, copy = self.notice()
        header_names = [a for h in self.msg.get_all("X-Failed-Recipients", []) for a in str(h).split(",")]
        recipients = [a for a in (_address(h) for h in header_names) if a]
        if not recipients:
            recipients = [m.lower() for m in _ANGLED_RECIPIENT_LINE.findall(notice)]
        if not recipients and (block := _EXIM_FAILED.search(notice + "\n")):
            recipients = [a.lower() for a in re.findall(r"^[ \t]+(\S+@\S+?)[ \t]*$", block.group(1), re.MULTILINE)]
        recipients = list(dict.fromkeys(_address(r) for r in recipients if _address(r)))
        if not recipients:
            return _unparseable(self.source, "a bounce that names no failed recipient")
        lowered = notice.lower()
        starts = sorted((lowered.find(r), r) for r in recipients)
        events: list[BounceEvent] = []
        for recipient in recipients:
            begin = lowered.find(recipient)
            if begin < 0:
                section = notice
            else:
                later = [pos for pos, _ in starts if pos > begin]
                section = notice[begin: later[0] if later else len(notice)]
            events.append(self.text_event(recipient, section))
        return ParsedReport("bounce", self.identified(events, self.ours(self.original(), copy)), source=self.source)

    def text_event(self, recipient: str, section: str) -> BounceEvent:
        status = status_code(section)
        code = SMTP_CODE.search(section)
        # The remote server's reply if the text quotes one, else the words under the address.
        after_address = section.split("\n", 1)[1] if "\n" in section else section
        diagnostic = _one_line(section[code.start():] if code else after_address) or _one_line(section)
        kind = failure_kind(status, diagnostic)
        if _GAVE_UP_TEMPORARY.search(section) and not status.startswith("5"):
            kind = "soft"
        if kind is None:
            kind = "soft" if MAILBOX_FULL.search(section) else "hard"  # "a permanent error" without a code
        return BounceEvent(recipient, kind, status, diagnostic, self.source)
