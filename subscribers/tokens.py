"""Signed, purpose-bound tokens for the links in emails.

A token carries the subscriber's id and a short fingerprint of their address (a hash
prefix, never the address itself) and is salted with its purpose, so an unsubscribe
token can't be replayed as a preferences token.  The fingerprint ties a token to one
person: should an erased subscriber's id ever be reused, their old links do not work
for the newcomer.  Confirmation links expire; unsubscribe and preferences links in
old digests keep working, as RFC 8058 and readers expect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


class InvalidToken(ValueError):
    """Tampered, made for another purpose, or not one of ours."""


class ExpiredToken(InvalidToken):
    """Genuine but too old; ``claim`` says whose it was (to offer a fresh link)."""

    def __init__(self, message: str, claim: Claim) -> None:
        super().__init__(message)
        self.claim = claim


def fingerprint(email: str) -> str:
    """Eight bytes of the address's SHA-256: tells two addresses apart, reveals neither."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Claim:
    subscriber_id: int
    fingerprint: str

    def matches(self, email: str) -> bool:
        return fingerprint(email) == self.fingerprint


class Tokens:
    def __init__(self, secret_key: str) -> None:
        self.secret_key = secret_key  # also signs the web forms' CSRF tokens, under its own salt
        self._serializers = {
            purpose: URLSafeTimedSerializer(secret_key, salt=f"publisher.{purpose}") for purpose in Purpose
        }

    def make(self, purpose: Purpose, subscriber_id: int, email: str) -> str:
        return str(self._serializers[purpose].dumps([subscriber_id, fingerprint(email)]))

    def read(self, purpose: Purpose, token: str, max_age: float | None = None) -> Claim:
        """Whose ``token`` is; InvalidToken if it can't be trusted, ExpiredToken if too old."""
        serializer = self._serializers[purpose]
        try:
            return _claim(serializer.loads(token, max_age=None if max_age is None else int(max_age)))
        except SignatureExpired as exc:
            # The signature was checked before the age: the payload is genuine.
            claim = _claim(serializer.load_payload(exc.payload)) if exc.payload is not None else None
            if claim is None:
                raise InvalidToken(str(exc)) from None
            raise ExpiredToken(str(exc), claim) from None
        except BadSignature as exc:
            raise InvalidToken(str(exc)) from None

    def link(self, site_url: str, purpose: Purpose, subscriber_id: int, email: str) -> str:
        """The absolute URL of the page for ``purpose`` (site_url ends with "/")."""
        return f"{site_url}{purpose}/{self.make(purpose, subscriber_id, email)}"


def _claim(value: object) -> Claim:
    match value:
        case [int(subscriber_id), str(print_)]:
            return Claim(subscriber_id, print_)
    raise InvalidToken("token does not hold a subscriber")
