"""A subscriber as the rest of the code sees it, and the preferences they control."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


# Weekday names as config, forms and the store spell them (``date.weekday()`` order).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Cadence(StrEnum):
    INSTANT = "instant"
    DAILY = "daily"
    WEEKLY = "weekly"


class Status(StrEnum):
    """``pending → active → unsubscribed``; ``bounced`` and ``complained`` are set by delivery.

    Only ``active`` subscribers receive digests.
    """

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Statuses that put the address on the suppression list (see subscribers.store).
SUPPRESSING = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)


class Source(StrEnum):
    """How an address came in, or how it was confirmed."""

    CLI = "cli"
    WEB = "web"
    API = "api"
    IMPORT = "import"


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a subscriber chooses on the preferences page.

    ``topics`` empty means every topic; ``send_hour`` None means the site's default
    hour (``[digest] daily_at``), in the subscriber's ``timezone``; ``send_weekday``
    (one of WEEKDAYS) None means the site's ``[digest] weekly_day``.
    """

    cadence: Cadence = Cadence.DAILY
    topics: tuple[str, ...] = ()
    timezone: str = "UTC"
    send_hour: int | None = None
    send_weekday: str | None = None


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: Status
    preferences: Preferences
    source: Source
    created_at: datetime
    confirmed_at: datetime | None
    confirmed_source: Source | None
    unsubscribed_at: datetime | None

    @property
    def cadence(self) -> Cadence:
        return self.preferences.cadence

    @property
    def topics(self) -> tuple[str, ...]:
        return self.preferences.topics

    @property
    def timezone(self) -> str:
        return self.preferences.timezone

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of the API and of ``export``."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "status": str(self.status),
            "cadence": str(self.preferences.cadence),
            "topics": list(self.preferences.topics),
            "timezone": self.preferences.timezone,
            "send_hour": self.preferences.send_hour,
            "source": str(self.source),
            "created_at": self.created_at.isoformat(),
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "confirmed_source": str(self.confirmed_source) if self.confirmed_source else None,
            "unsubscribed_at": self.unsubscribed_at.isoformat() if self.unsubscribed_at else None,
        }
