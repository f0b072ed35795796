"""A subscriber as the rest of the code sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Cadence(StrEnum):
    INSTANT = "instant"
    DAILY = "daily"
    WEEKLY = "weekly"


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Source(StrEnum):
    CLI = "cli"
    WEB = "web"
    API = "api"
    IMPORT = "import"


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: Status
    cadence: Cadence
    topics: tuple[str, ...]
    timezone: str
    source: Source
    created_at: datetime
    confirmed_at: datetime | None
