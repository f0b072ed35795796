"""The gates' decisions (publisher.delivery.gates): the warm-up's ramp and the breakers' verdicts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from publisher.delivery.gates import Breakers, Warmup, day_start
from publisher.config import BreakerSettings


def test_the_ramp_grows_each_utc_day_until_max() -> None:
    ramp = Warmup(date(2026, 12, 1), first_day=300, growth=2.0, max=5000)
    assert ramp.day(datetime(2026, 11, 30, 12, tzinfo=UTC)) == 1  # before the start: day 1's allowance
    assert ramp.day(datetime(2026, 12, 1, 23, 59, tzinfo=UTC)) == 1
    assert ramp.day(datetime(2026, 12, 2, 0, 0, tzinfo=UTC)) == 2
    assert [ramp.allowance(day) for day in (1, 2, 3, 4, 5, 6)] == [300, 600, 1200, 2400, 4800, None]
    assert day_start(datetime(2026, 12, 2, 17, 5, tzinfo=UTC)) == datetime(2026, 12, 2, tzinfo=UTC)


def test_without_max_the_ramp_ends_once_it_limits_nothing() -> None:
    assert Warmup(date(2026, 12, 1), 300, 2.0, 0).allowance(10_000) is None  # no float overflow
    assert Warmup(date(2026, 12, 1), 300, 1.0, 0).allowance(10_000) == 300  # no growth: a steady cap


def test_breakers_judge_rates_past_their_thresholds() -> None:
    breakers = Breakers.from_settings(BreakerSettings())
    assert breakers is not None
    assert breakers.judge("yahoo", 199, 100, 100) is None  # too few messages to say
    assert breakers.judge("yahoo", 1000, 0, 19) is None
    warn = breakers.judge("yahoo", 1000, 1, 0)
    assert warn is not None and not warn.pause and warn.reason.startswith("complaints 0.10% (1 of 1000")
    pause = breakers.judge("yahoo", 1000, 1, 50)
    assert pause is not None and pause.pause and pause.reason.startswith("hard bounces 5.00% (50 of 1000")
    assert Breakers.from_settings(BreakerSettings(window="0")) is None
    assert Breakers.from_settings(BreakerSettings(complaints_pause=0)).judge("x", 1000, 900, 0).pause is False  # type: ignore[union-attr]
