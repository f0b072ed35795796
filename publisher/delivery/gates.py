"""Gates per mailbox provider: a new domain's warm-up, and circuit breakers on complaints and bounces.

Both decide, for each row a delivery run claimed, whether it may go now; the rows kept
back are not tried (no attempt counted) but deferred (:meth:`Gates.split`):

* **Warm-up** (``[warmup]``): from ``start``, each provider may take ``first_day`` messages
  on the first (UTC) day, ``growth`` times as many each day after, until the allowance
  reaches ``max`` (0: never ends by itself).  The day's count is the ledger's: messages
  sent that day and those being sent, by any node, so a restart or another node does not
  start the day over.  Rows past the allowance wait until the next day's start, then go
  first (claims go by subscriber id).  Two nodes claiming at the same moment each count
  the other's claim, so together they may send less than the allowance, never more.
* **Circuit breakers** (``[breakers]``): a provider's complaint and hard-bounce rates over
  ``window`` (readers who complained or hard-bounced, over the messages sent to it), once
  at least ``min_messages`` were sent: past ``*_warn`` a warning (logged, and shown by
  ``publisher status``); past ``*_pause`` the provider is paused, with the reason, until
  ``publisher resume --provider``.  Its rows are held (rechecked every
  :data:`HOLD_RECHECK`; a resume makes them due at once).  After a resume only what
  happened since counts, or the same old complaints would pause it again at once.

The breakers are judged when a digest's delivery starts, then every :data:`CHECK_EVERY`
claimed messages at most once per :data:`CHECK_INTERVAL`, not per message.  The decisions here are plain functions; the counts
come from :mod:`publisher.delivery.gate_store`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.delivery import gate_store
from publisher.delivery.model import DeliveryState
from publisher.delivery.providers import Providers
from subscribers.model import Status

if TYPE_CHECKING:
    from publisher.config import BreakerSettings, WarmupSettings

log = logging.getLogger(__package__)

# The breakers are judged again after this many claimed messages, and this long: their
# queries read the window's hourly aggregates (publisher.store.aggregates), cheap, but not free.
CHECK_EVERY = 1000
CHECK_INTERVAL = timedelta(minutes=1)
# A paused provider's rows are looked at again this often (a resume makes them due at once).
HOLD_RECHECK = timedelta(hours=1)
_ENDLESS = 10**12  # an allowance this large limits nothing: the ramp is over


def day_start(now: datetime) -> datetime:
    """The start of ``now``'s UTC day."""
    return datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)


@dataclass(frozen=True)
class Warmup:
    """The warm-up ramp: ``first_day`` messages per provider on day 1, ``growth`` times more each day."""

    start: date
    first_day: int
    growth: float
    max: int

    @classmethod
    def from_settings(cls, settings: WarmupSettings) -> Warmup | None:
        if settings.start is None:
            return None
        return cls(settings.start, settings.first_day, settings.growth, settings.max)

    def day(self, now: datetime) -> int:
        """Which day of the warm-up ``now`` is in (1 on ``start``; before it, 1 too)."""
        return max(1, (now.astimezone(UTC).date() - self.start).days + 1)

    def allowance(self, day: int) -> int | None:
        """Messages per provider on ``day``; None once the warm-up is over."""
        if (day - 1) * math.log(self.growth) >= math.log(_ENDLESS / self.first_day):  # no float overflow
            return None
        allowance = round(self.first_day * self.growth ** (day - 1))
        return None if self.max and allowance >= self.max else allowance


@dataclass(frozen=True)
class Judgement:
    """A breaker's verdict on one provider: a warning, or a pause, with the reason."""

    provider: str
    pause: bool
    reason: str


@dataclass(frozen=True)
class Breakers:
    """The thresholds of ``[breakers]`` (a threshold of 0 is off)."""

    window: timedelta
    complaints_warn: float
    complaints_pause: float
    hard_bounces_warn: float
    hard_bounces_pause: float
    min_messages: int

    @classmethod
    def from_settings(cls, settings: BreakerSettings) -> Breakers | None:
        window = settings.window_length
        if window is None:
            return None
        return cls(window, settings.complaints_warn, settings.complaints_pause, settings.hard_bounces_warn,
                   settings.hard_bounces_pause, settings.min_messages)

    def judge(self, provider: str, sent: int, complaints: int, hard_bounces: int) -> Judgement | None:
        """The verdict on ``provider`` with these counts over the window; None: all is well,
        or too few messages were sent to say."""
        if sent < self.min_messages:
            return None
        verdicts = []
        for what, count, warn, pause in (("complaints", complaints, self.complaints_warn, self.complaints_pause),
                                         ("hard bounces", hard_bounces, self.hard_bounces_warn,
                                          self.hard_bounces_pause)):
            rate = count / sent
            for level, threshold in ((True, pause), (False, warn)):
                if threshold and rate >= threshold:
                    verdicts.append((level, f"{what} {rate:.2%} ({count} of {sent} messages sent) "
                                            f"reached {threshold:.2%}"))
                    break
        if not verdicts:
            return None
        pause = any(level for level, _ in verdicts)
        return Judgement(provider, pause, "; ".join(reason for level, reason in verdicts if level == pause))


@dataclass(frozen=True)
class Tallies:
    """Per provider, over a breakers' window (or since its last resume): messages sent,
    readers who complained, readers who hard-bounced."""

    sent: Counter[str]
    complaints: Counter[str]
    hard_bounces: Counter[str]


async def provider_tallies(engine: AsyncEngine, providers: Providers, window: timedelta, now: datetime) -> Tallies:
    """What the breakers judge: each provider's counts over ``window``, or since its last
    resume if that came later (the old complaints must not trip it again)."""
    window_start = now - window
    since = {row.provider: row.resumed_at for row in await gate_store.pauses(engine)
             if row.resumed_at is not None and row.resumed_at > window_start}
    tallies: dict[str, Counter[str]] = {kind: Counter() for kind in (DeliveryState.SENT, Status.COMPLAINED,
                                                                     Status.BOUNCED)}
    for start in sorted({window_start, *since.values()}):
        # The window's start is counted in whole hours; a resume's moment exactly.
        for domain, kind, count in await gate_store.tallies_by_domain(engine, start, exact=start != window_start):
            provider = providers.of(domain)
            if since.get(provider, window_start) == start:
                tallies[kind][provider] += count
    return Tallies(tallies[DeliveryState.SENT], tallies[Status.COMPLAINED], tallies[Status.BOUNCED])


async def judge_providers(
    engine: AsyncEngine, providers: Providers, breakers: Breakers, now: datetime
) -> list[Judgement]:
    """The breakers' verdicts on every provider, over the window or since its last resume."""
    tallies = await provider_tallies(engine, providers, breakers.window, now)
    found = (breakers.judge(p, tallies.sent[p], tallies.complaints[p], tallies.hard_bounces[p])
             for p in sorted(tallies.sent))
    return [judgement for judgement in found if judgement is not None]


@dataclass(frozen=True)
class Held:
    """A row kept back: why (its last reply), and when it is due again."""

    row: Row
    reply: str
    retry_at: datetime


@dataclass
class Gates:
    """The gates of one delivery run: which claimed rows may go now (:meth:`split`)."""

    engine: AsyncEngine
    providers: Providers
    warmup: Warmup | None
    breakers: Breakers | None
    paused: dict[str, str] = field(default_factory=dict)  # provider → reason
    _warned: set[str] = field(default_factory=set)  # warned of in this run: once is enough
    _until_check: int = 0  # claimed messages until the breakers are judged again
    _checked_at: datetime | None = None

    @classmethod
    def from_settings(
        cls, engine: AsyncEngine, providers: Providers, warmup: WarmupSettings, breakers: BreakerSettings
    ) -> Gates | None:
        """The gates the settings ask for; None when warm-up and breakers are both off."""
        ramp, thresholds = Warmup.from_settings(warmup), Breakers.from_settings(breakers)
        if ramp is None and thresholds is None:
            return None
        return cls(engine, providers, ramp, thresholds)

    async def check(self, now: datetime) -> None:
        """Judge the breakers (pausing a provider past its threshold) and read which providers are paused."""
        self._until_check, self._checked_at = CHECK_EVERY, now
        if self.breakers is not None:
            for judgement in await judge_providers(self.engine, self.providers, self.breakers, now):
                if judgement.pause:
                    if await gate_store.pause(self.engine, judgement.provider, judgement.reason, now):
                        log.error("provider %s: paused: %s; `publisher resume --provider %s` continues it",
                                  judgement.provider, judgement.reason, judgement.provider)
                elif judgement.provider not in self._warned:
                    self._warned.add(judgement.provider)
                    log.warning("provider %s: %s", judgement.provider, judgement.reason)
        self.paused = {row.provider: row.reason for row in await gate_store.pauses(self.engine) if row.reason}

    async def split(self, rows: Sequence[Row], now: datetime) -> tuple[list[Row], list[Held]]:
        """The claimed ``rows`` (in subscriber order) that may go now, and those held back.

        Rows of readers no longer active pass: the engine cancels them.  ``rows`` are
        claimed (``sending``) already: the day's count includes them, and is taken
        before any of their outcomes is written.
        """
        self._until_check -= len(rows)
        if self._until_check <= 0 and (self._checked_at is None or now - self._checked_at >= CHECK_INTERVAL):
            await self.check(now)
        day = None if self.warmup is None else self.warmup.day(now)
        allowance = None if self.warmup is None or day is None else self.warmup.allowance(day)
        room = None if allowance is None else await self._room(allowance, rows, now)
        day_over = day_start(now) + timedelta(days=1)
        admitted: list[Row] = []
        held: list[Held] = []
        for row in rows:
            provider = self.providers.of(row.email) if row.status == Status.ACTIVE else None
            if provider is None:
                admitted.append(row)
            elif provider in self.paused:
                held.append(Held(row, f"{gate_store.held_for_pause(provider)}: {self.paused[provider]}",
                                 now + HOLD_RECHECK))
            elif room is None or room[provider] > 0:
                if room is not None:
                    room[provider] -= 1
                admitted.append(row)
            else:
                held.append(Held(row, f"{gate_store.HELD}warm-up day {day}: {provider} has had its {allowance} "
                                      f"messages today", day_over))
        return admitted, held

    async def _room(self, allowance: int, rows: Sequence[Row], now: datetime) -> Counter[str]:
        """Messages each provider may still take today, ``rows`` not counted."""
        used: Counter[str] = Counter()
        for domain, count in await gate_store.sent_or_sending_by_domain(self.engine, day_start(now)):
            used[self.providers.of(domain)] += count
        used.subtract(self.providers.of(row.email) for row in rows)  # these are being sent: not yet used
        return Counter({provider: allowance - used[provider] for provider in self.providers.names})


@dataclass(frozen=True)
class Overview:
    """The gates as ``publisher status`` shows them."""

    warmup_day: int | None  # None: no warm-up, or it is over
    allowance: int | None  # per provider today (None: no warm-up, or it is over)
    next_day: datetime  # when the held rows go
    sent_today: dict[str, int]  # by provider
    waiting: dict[str, int]  # messages of unfinished digests not sent yet (pending or deferred), by provider
    judgements: list[Judgement]  # the breakers' warnings and pauses now
    paused: list[Row]  # (provider, reason, since, resumed_at) of the providers paused


async def overview(
    engine: AsyncEngine, providers: Providers, warmup: WarmupSettings, breakers: BreakerSettings, now: datetime
) -> Overview:
    from publisher.delivery.report import open_by_provider

    ramp, thresholds = Warmup.from_settings(warmup), Breakers.from_settings(breakers)
    day = None if ramp is None else ramp.day(now)
    allowance = None if ramp is None or day is None else ramp.allowance(day)
    sent: Counter[str] = Counter()
    waiting: dict[str, int] = {}
    if allowance is not None:
        for domain, kind, count in await gate_store.tallies_by_domain(engine, day_start(now)):
            if kind == DeliveryState.SENT:
                sent[providers.of(domain)] += count
        waiting = {provider: counts["pending"] + counts["deferred"]
                   for provider, counts in (await open_by_provider(engine, providers)).items()
                   if counts["pending"] + counts["deferred"]}
    judgements = [] if thresholds is None else await judge_providers(engine, providers, thresholds, now)
    return Overview(
        day if allowance is not None else None, allowance, day_start(now) + timedelta(days=1), dict(sent), waiting,
        judgements, [row for row in await gate_store.pauses(engine) if row.reason],
    )
