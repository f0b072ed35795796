"""Signed, purpose-bound tokens for the links in emails.

A token carries the subscriber's id (never the address) and is salted with its
purpose, so an unsubscribe token can't be replayed as a preferences token.
"""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadSignature, URLSafeTimedSerializer


class Purpose(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


class InvalidToken(ValueError):
    """Tampered, expired, or made for another purpose."""


class Tokens:
    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"publisher.{purpose}")

    def make(self, purpose: Purpose, subscriber_id: int) -> str:
        return self._serializer(purpose).dumps(subscriber_id)

    def read(self, purpose: Purpose, token: str, max_age: int | None = None) -> int:
        """The subscriber id in ``token``; InvalidToken if it can't be trusted."""
        try:
            value = self._serializer(purpose).loads(token, max_age=max_age)
        except BadSignature as exc:
            raise InvalidToken(str(exc)) from None
        if not isinstance(value, int):
            raise InvalidToken("token does not hold a subscriber id")
        return value

    def link(self, site_url: str, purpose: Purpose, subscriber_id: int) -> str:
        """The absolute URL of the page for ``purpose`` (site_url ends with "/")."""
        return f"{site_url}{purpose}/{self.make(purpose, subscriber_id)}"
