"""Operators, their roles and sessions: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    """What an operator may do; each role may do everything the ones before it may.

    Viewers read; editors also handle articles, previews, resends and test sends;
    admins also handle subscribers, digests and operators.
    """

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


class Action(StrEnum):
    """What an audit log entry records (``audit_log.action``)."""

    OPERATOR_ADD = "operator.add"
    OPERATOR_PASSWORD = "operator.password"
    OPERATOR_ROLE = "operator.role"
    OPERATOR_REMOVE = "operator.remove"
    OPERATOR_TOTP_ON = "operator.totp_on"
    OPERATOR_TOTP_OFF = "operator.totp_off"
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in.failed"
    LOCKED = "sign_in.locked"
    SIGN_OUT = "sign_out"
    SUBSCRIBER_PREFERENCES = "subscriber.preferences"
    SUBSCRIBER_SUPPRESS = "subscriber.suppress"
    SUBSCRIBER_ERASE = "subscriber.erase"
    SUBSCRIBER_IMPORT = "subscriber.import"
    SUBSCRIBER_EXPORT = "subscriber.export"
    ARTICLE_RESEND = "article.resend"
    ARTICLE_UNPUBLISH = "article.unpublish"
    TEST_SEND = "digest.test_send"
    DIGEST_PAUSE = "digest.pause"
    DIGEST_RESUME = "digest.resume"
    DIGEST_CANCEL = "digest.cancel"


class OperatorError(Exception):
    """A request about operators that can't be done, in words for the operator (CLI and forms)."""


@dataclass(frozen=True, slots=True)
class Operator:
    id: int
    email: str
    role: Role
    password_hash: str
    totp_secret: str | None
    totp_last_step: int | None
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``id`` is the SHA-256 of its cookie's token, never the token."""

    id: str
    operator: Operator
    pending_totp: bool  # signed in with the password; the second factor is still owed
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Actor:
    """Who does an action, for the audit log: an operator's email (or the command line's
    ``cli:<user>``) and the client's address ("" from the command line)."""

    email: str
    remote: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    operator: str
    action: str
    target: str
    detail: dict[str, object]
    remote: str
