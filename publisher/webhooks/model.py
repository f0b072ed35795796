"""The event types (without the store: the config validates ``events`` against them)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    SUBSCRIBER_CREATED = "subscriber.created"
    SUBSCRIBER_CONFIRMED = "subscriber.confirmed"
    SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed"
    SUBSCRIBER_BOUNCED = "subscriber.bounced"
    SUBSCRIBER_COMPLAINED = "subscriber.complained"
    ARTICLE_PUBLISHED = "article.published"
    DIGEST_FINISHED = "digest.finished"
    DIGEST_PAUSED = "digest.paused"
