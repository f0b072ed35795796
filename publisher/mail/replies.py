"""What an SMTP reply means for the reader: a relay's live reply, or one a report quotes later.

Pure functions, no I/O, shared by both ways a failure reaches us: the delivery engine
reads a relay's reply while it sends (:func:`reply_action`, which also knows the phase
of the session the reply came at: only a refusal about the recipient bounces them),
and :mod:`publisher.mail.bounces` reads the status and text a bounce report quotes
(:func:`failure_kind`).  Keeping both here keeps one set of patterns for "no such
user" and "mailbox full".

How a failure is classified after the fact (:func:`failure_kind`):

* ``hard``: a permanent failure about the address itself (5.1.x no such user or
  domain, 5.2.1 disabled, 5.4.4 unroutable, ...): the address is suppressed at once.
* ``soft``: a failure that says nothing definite about the address: 4.x.x
  (temporary, reported as ``failed`` once the sender's MTA gave up), mailbox full
  (x.2.2, SMTP 552 without an enhanced code, "over quota"), message too large
  (x.2.3, x.3.4), delivery time expired (x.4.7), and policy or reputation blocks
  (5.7.x: "blocked as spam", a blocklisted IP, DMARC), which would otherwise
  suppress every reader at a provider that rejects one day's digest.  A 5.7.x reply
  whose text says the user does not exist is hard.  ``soft_bounce_limit`` soft
  bounces suppress the address.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

# An enhanced status code (RFC 3463), not part of a dotted IP address or a version.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
# A basic SMTP reply code at the start of a reply (or of a line in a text bounce).
SMTP_CODE = re.compile(r"(?<![\d.:/#])([245][0-5]\d)(?=[ -]|$)", re.MULTILINE)

_NO_SUCH_USER = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)|does(?:n't| not) exist|"
    r"recipient not found|unknown recipient|invalid recipient|mailbox not found|address not found|"
    r"recipientnotfound|not a valid (?:mailbox|recipient)|account (?:has been )?disabled|"
    r"mailbox (?:is )?(?:disabled|inactive)",
    re.IGNORECASE,
)
MAILBOX_FULL = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|exhausted)|exceeded (?:the |its )?storage|"
    r"insufficient (?:system )?storage|mailbox size limit|out of storage|storage (?:space )?(?:limit|full)|"
    r"mailbox has exceeded",
    re.IGNORECASE,
)


def failure_kind(status: str, diagnostic: str = "") -> Literal["hard", "soft"] | None:
    """``hard``, ``soft`` or None (not a failure) for a failed delivery's status and reply text.

    ``status`` is an enhanced status code (``"5.1.1"``) or ``""``; without one, the
    code is read from ``diagnostic`` (``"550 5.1.1 ..."`` or a basic ``"552 ..."``).
    For a report that came back later; a relay's reply during delivery, whose phase is
    known, is read by :func:`reply_action`.
    """
    enhanced = status_code(status) or status_code(diagnostic)
    if enhanced:
        klass, subject, detail = enhanced.split(".")
    else:
        basic = SMTP_CODE.search(diagnostic)
        if basic is None:
            return None
        klass, subject, detail = basic.group(1)[0], "0", "0"
        if basic.group(1) == "552":  # "exceeded storage allocation": mailbox full, classically
            return "soft"
    if klass == "2":
        return None
    if klass == "4":
        return "soft"
    if _NO_SUCH_USER.search(diagnostic):
        return "hard"
    if MAILBOX_FULL.search(diagnostic):
        return "soft"
    if (subject, detail) in {("2", "2"), ("2", "3"), ("3", "4"), ("4", "7")} or subject == "7":
        return "soft"
    return "hard"


class Phase(StrEnum):
    """Where in an SMTP session a reply came: who it can be about."""

    CONNECT = "connect"  # greeting, EHLO, STARTTLS, AUTH, or no reply at all (network, disk)
    ENVELOPE = "envelope"  # an address no envelope can carry, refused before any command
    MAIL = "mail"  # MAIL FROM: the sender
    RCPT = "rcpt"  # RCPT TO: the recipient
    DATA = "data"  # the DATA command, or the end of the message's data


class ReplyAction(StrEnum):
    """What the delivery engine does about one failed delivery attempt."""

    THROTTLED = "throttled"  # defer; the connection backs off; never fails the message
    RETRY = "retry"  # defer with backoff, until max_attempts or max_age
    HARD_BOUNCE = "hard"  # the row fails and the address is suppressed at once
    SOFT_BOUNCE = "soft"  # the row fails and the address counts a soft bounce
    MESSAGE_FAILED = "message"  # the row fails; the reader is untouched (the message or sender was refused)


THROTTLING = frozenset({421, 450, 451, 452, 454})
# Enhanced codes about the recipient's address itself (RFC 3463), apart from 5.1.7 and
# 5.1.8, which are about the sender's.
_RECIPIENT_GONE = re.compile(r"5\.1\.(?![78]$)\d+|5\.2\.1")
# A refusal at RCPT TO that is about us, not the recipient: relaying not allowed, or the
# sender refused (Postfix reports sender restrictions at RCPT; Exim's sender callouts).
_SENDER_REFUSED = re.compile(
    r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|authentication required|not authenticated|"
    r"sender (?:address )?(?:rejected|denied|not allowed)|sender verify failed",
    re.IGNORECASE,
)
# RFC 5321's own text for a 550 at RCPT TO (Outlook.com's answer for an unknown address).
_MAILBOX_UNAVAILABLE = re.compile(r"mailbox unavailable", re.IGNORECASE)


def reply_action(code: int | None, enhanced: str, phase: Phase, text: str) -> ReplyAction:
    """What to do about a failed attempt: the reply ``code`` (None: no reply), its
    ``enhanced`` status (``"5.1.1"`` or ``""``), the ``phase`` it came at and its ``text``.

    Only a failure that is about the recipient bounces them: 5.1.x (but 5.1.7/5.1.8, the
    sender's address), 5.2.1 (disabled), 5.2.2 (mailbox full: soft), and a plain
    550/551/553 to RCPT TO, or a RCPT refusal whose text says the user does not exist.
    Everything else permanent is about the message or the sender (5.6.x content, 5.7.x
    policy, 5.3.4 too big, any refusal of MAIL FROM, a refusal at the end of DATA
    without a recipient's enhanced code): it fails the message and leaves the reader
    alone, so a relay's own misconfiguration (an unverified sender) never suppresses the
    list.  5xx replies while connecting or logging in say nothing about any message:
    retried, like a relay that can't be reached.
    """
    if code is None or code < 500:
        if phase is Phase.ENVELOPE:
            return ReplyAction.MESSAGE_FAILED  # no relay could take the address: retrying can't help
        return ReplyAction.THROTTLED if code in THROTTLING else ReplyAction.RETRY
    if phase is Phase.CONNECT:
        return ReplyAction.RETRY
    if phase is Phase.MAIL:
        return ReplyAction.MESSAGE_FAILED
    if enhanced.endswith(".2.2") or (phase is Phase.RCPT and MAILBOX_FULL.search(text)):
        return ReplyAction.SOFT_BOUNCE
    if _RECIPIENT_GONE.fullmatch(enhanced):
        return ReplyAction.HARD_BOUNCE
    if phase is Phase.RCPT and not _SENDER_REFUSED.search(text):
        if _NO_SUCH_USER.search(text) or _MAILBOX_UNAVAILABLE.search(text) or (
            not enhanced and code in (550, 551, 553)
        ):
            return ReplyAction.HARD_BOUNCE
        if not enhanced and code == 552:  # "exceeded storage allocation", classically
            return ReplyAction.SOFT_BOUNCE
    return ReplyAction.MESSAGE_FAILED


def status_code(text: str) -> str:
    """The first enhanced status code in ``text`` (``"5.1.1"``), or ``""``."""
    found = _ENHANCED.search(text)
    return ".".join(found.groups()) if found else ""
