"""When a daily or weekly digest is due: send slots in each subscriber's own timezone.

A *slot* is one scheduled send time of a cadence for one (timezone, hour) pair:
every day (or every configured weekday) at the subscriber's hour, on their wall
clock.  A list spread over 24 zones gets 24 send waves a day.  The store records
the last slot each subscriber was planned for, so a slot is planned once however
often the scheduler wakes up, and one missed while the daemon was down is planned
on the next wake-up, if it is recent enough (the grace period).

Wall-clock times are mapped to instants by :mod:`zoneinfo` with ``fold=0``: on the
day a zone springs forward, an hour that does not exist (02:30 in Europe/Paris)
becomes the instant that hour would have had under the old offset (03:30 on the new
clock); on the day it falls back, an hour that happens twice is its first
occurrence.  Either way there is exactly one slot per local day.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from subscribers.model import WEEKDAYS, Cadence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """The site's send times: ``[digest] daily_at``, ``weekly_day`` and ``timezone``.

    A subscriber's own ``send_hour`` replaces the hour of ``daily_at`` (the minute
    stays); their ``timezone`` replaces the site's, their ``weekday`` ``weekly_day``.
    """

    at: time
    weekly_day: str = "mon"
    timezone: str = "UTC"

    def slot(
        self, cadence: Cadence, timezone: str, send_hour: int | None, now: datetime, weekday: str | None = None
    ) -> datetime:
        """The latest slot at or before ``now`` (UTC) for this cadence, zone, hour and weekday."""
        return next(t for t in self._slots(cadence, timezone, send_hour, weekday, now, step=-1) if t <= now)

    def next_slot(
        self, cadence: Cadence, timezone: str, send_hour: int | None, now: datetime, weekday: str | None = None
    ) -> datetime:
        """The first slot after ``now`` (UTC), for ``publisher status``."""
        return next(t for t in self._slots(cadence, timezone, send_hour, weekday, now, step=1) if t > now)

    def _slots(
        self, cadence: Cadence, timezone: str, send_hour: int | None, weekday: str | None, now: datetime, *, step: int
    ) -> Iterator[datetime]:
        """The slots from the local day of ``now`` on, one day at a time in the direction of ``step``."""
        zone = self.zone(timezone)
        hour = self.at.hour if send_hour is None else send_hour
        weekly_day = weekday or self.weekly_day
        day = now.astimezone(zone).date() - timedelta(days=step)  # a day early: offsets can cross midnight
        while True:
            if cadence != Cadence.WEEKLY or WEEKDAYS[day.weekday()] == weekly_day:
                yield datetime.combine(day, time(hour, self.at.minute), tzinfo=zone).astimezone(UTC)
            day += timedelta(days=step)

    def zone(self, name: str) -> ZoneInfo:
        """``name`` as a zone; the site's zone if this system's tz database lacks it."""
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.error("unknown timezone %r (tz database too old?); using the site's %s", name, self.timezone)
            return ZoneInfo(self.timezone)

