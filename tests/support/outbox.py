"""Reading what the maildir transport wrote: the tests' view of the outbox."""

from __future__ import annotations

import email
import email.message
import email.policy
import mailbox
import re

from publisher.config import Settings


def outbox_messages(settings: Settings) -> list[email.message.EmailMessage]:
    if not settings.delivery.outbox.exists():
        return []
    box = mailbox.Maildir(settings.delivery.outbox, factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.iterkeys()]


def plain_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, "no text/plain part"
    return part.get_content()


def link_in(message: email.message.EmailMessage, path: str) -> str:
    """The first URL in the text part whose path starts with ``path`` (e.g. "/confirm/")."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[^\s]+)", plain_text(message))
    assert match, f"no {path} link in:\n{plain_text(message)}"
    return match.group(1)
