"""The delivery policy, rule by rule: no SMTP server, no database, a fixed clock and jitter."""

from __future__ import annotations

import dataclasses
from collections import deque
from datetime import UTC, datetime, timedelta

import pytest

from publisher.config import Settings
from publisher.delivery import policy
from publisher.delivery.model import DeliveryConfig
from publisher.delivery.policy import RefusalStreak, Verdict
from publisher.mail.replies import Phase
from publisher.mail.transport import DeliveryError

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CONFIG = dataclasses.replace(
    DeliveryConfig.from_settings(Settings()),
    max_attempts=3, retry_base=60.0, max_age=3600.0, throttle_limit=3, pause_after_identical=3,
    max_error_ratio=0.5, error_window=10,
)
YOUNG = timedelta(minutes=5)

UNREACHABLE = DeliveryError("Connection refused")  # no reply at all
GREYLISTED = DeliveryError("4.7.1 try again later", code=451, phase=Phase.RCPT)
BUSY = DeliveryError("4.3.0 temporary failure", code=440, phase=Phase.DATA)  # temporary, not throttling
NO_SUCH_USER = DeliveryError("5.1.1 no such user", code=550, phase=Phase.RCPT)
MAILBOX_FULL = DeliveryError("5.2.2 mailbox full", code=552, phase=Phase.RCPT)
SPAM = DeliveryError("5.7.1 message refused as spam", code=554, phase=Phase.DATA)
UNVERIFIED_SENDER = DeliveryError("5.7.1 sender not verified", code=553, phase=Phase.MAIL)
NO_ENVELOPE = DeliveryError("'a b'@example.org is not one envelope address", phase=Phase.ENVELOPE)


def decide(failure: DeliveryError, attempts: int = 1, age: timedelta = YOUNG) -> policy.Decision:
    return policy.decide(failure, attempts, age, CONFIG, NOW, jitter=1.0)


# --- temporary failures ---------------------------------------------------------------------


def test_a_temporary_failure_is_deferred_with_exponential_backoff() -> None:
    first, second = decide(BUSY, attempts=1), decide(BUSY, attempts=2)
    assert first.verdict is second.verdict is Verdict.DEFER
    assert first.retry_at == NOW + timedelta(seconds=60) and second.retry_at == NOW + timedelta(seconds=120)
    assert first.reply == str(BUSY) and not first.throttled and not first.rest  # a reply: the relay is fine


def test_the_last_attempt_gives_up_and_the_one_before_still_defers() -> None:
    assert decide(BUSY, attempts=CONFIG.max_attempts - 1).verdict is Verdict.DEFER
    last = decide(BUSY, attempts=CONFIG.max_attempts)
    assert last.verdict is Verdict.GIVE_UP and last.retry_at is None and last.reply == str(BUSY)


def test_past_max_age_a_temporary_failure_gives_up_whatever_the_attempts() -> None:
    assert decide(BUSY, age=timedelta(seconds=CONFIG.max_age)).verdict is Verdict.DEFER  # not yet past it
    assert decide(BUSY, age=timedelta(seconds=CONFIG.max_age + 1)).verdict is Verdict.GIVE_UP


def test_an_unreachable_relay_defers_and_rests_the_connection() -> None:
    decision = decide(UNREACHABLE)
    assert decision.verdict is Verdict.DEFER and decision.rest and not decision.throttled


# --- throttling -----------------------------------------------------------------------------


def test_throttling_defers_rests_and_never_runs_out_of_attempts() -> None:
    decision = decide(GREYLISTED, attempts=CONFIG.max_attempts + 5)
    assert decision.verdict is Verdict.DEFER and decision.throttled and decision.rest
    # Its wait doesn't grow with its attempts: pacing the provider is its lane's business.
    assert decision.retry_at == NOW + timedelta(seconds=CONFIG.retry_base)


def test_throttling_past_max_age_gives_up_and_still_counts_as_throttled() -> None:
    decision = decide(GREYLISTED, age=timedelta(seconds=CONFIG.max_age + 1))
    assert decision.verdict is Verdict.GIVE_UP and decision.throttled and not decision.rest


def test_the_pass_ends_at_throttle_limit_throttled_messages_in_a_row() -> None:
    assert [policy.relay_keeps_throttling(n, CONFIG) for n in (1, 2, 3)] == [False, False, True]


# --- permanent refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(("failure", "kind"), [(NO_SUCH_USER, "hard"), (MAILBOX_FULL, "soft")])
def test_a_refusal_about_the_recipient_bounces_them(failure: DeliveryError, kind: str) -> None:
    decision = decide(failure)
    assert decision.verdict is Verdict.BOUNCE and decision.bounce == kind
    assert decision.reply == f"{failure.code} {failure.reply}" and decision.ends_streak
    assert decision.retry_at is None and not decision.rest


@pytest.mark.parametrize("failure", [SPAM, UNVERIFIED_SENDER])
def test_a_refusal_of_the_message_or_sender_leaves_the_reader_alone(failure: DeliveryError) -> None:
    decision = decide(failure)
    assert decision.verdict is Verdict.REFUSE and decision.bounce is None and not decision.ends_streak
    assert decision.reply == f"{failure.code} {failure.reply}"


def test_an_address_no_envelope_can_carry_is_refused_with_the_bare_reason() -> None:
    decision = decide(NO_ENVELOPE)
    assert decision.verdict is Verdict.REFUSE and decision.reply == NO_ENVELOPE.reply


# --- retry times ----------------------------------------------------------------------------


def test_retry_jitter_stays_within_a_fifth_and_the_exponent_is_capped() -> None:
    for _ in range(50):
        delay = (policy.retry_at(3, NOW, 10.0) - NOW).total_seconds()
        assert 0.8 * 40 <= delay <= 1.2 * 40
    assert policy.retry_at(100, NOW, 1.0, jitter=1.0) == NOW + timedelta(seconds=2**20)


# --- pausing a digest -----------------------------------------------------------------------


def test_identical_refusals_in_a_row_release_the_streak_at_the_limit() -> None:
    streak = RefusalStreak[str](CONFIG.pause_after_identical)
    assert streak.refused("a", "554 spam").released == []
    assert streak.refused("b", "554 spam").released == []
    step = streak.refused("c", "554 spam")
    assert step.released == ["a", "b", "c"] and step.ended == []
    assert streak.held == []
    assert "3 messages in a row refused with the same reply" in policy.identical_refusals_reason(CONFIG, "554 spam")


def test_another_reply_ends_the_streak_which_then_failed() -> None:
    streak = RefusalStreak[str](CONFIG.pause_after_identical)
    streak.refused("a", "554 spam")
    streak.refused("b", "554 spam")
    step = streak.refused("c", "553 sender not verified")
    assert step.ended == ["a", "b"] and step.ended_reply == "554 spam" and step.released == []
    assert streak.held == ["c"] and streak.reply == "553 sender not verified"


def test_a_success_ends_the_streak() -> None:
    streak = RefusalStreak[str](CONFIG.pause_after_identical)
    streak.refused("a", "554 spam")
    assert streak.end() == (["a"], "554 spam")
    assert streak.end() == ([], "")
    assert streak.refused("b", "554 spam").released == []  # counting starts again


def test_the_error_ratio_pauses_only_over_a_full_window_above_the_ratio() -> None:
    window = deque[bool]([True] * 9, maxlen=CONFIG.error_window)
    assert not policy.error_ratio_tripped(window, CONFIG)  # 9 of 9 failed, but the window is not full
    window.append(False)
    assert policy.error_ratio_tripped(window, CONFIG)  # 9 of 10 > 0.5
    half = deque[bool]([False, True] * 5, maxlen=CONFIG.error_window)
    assert not policy.error_ratio_tripped(half, CONFIG)  # exactly the ratio: not more than it
    half.append(True)  # the oldest (a success) drops out: 6 of the last 10
    assert policy.error_ratio_tripped(half, CONFIG)
    assert policy.error_ratio_reason(half, CONFIG, "550 no").startswith("6 of the last 10 messages failed")


# --- the run's config -------------------------------------------------------------------------


def test_the_config_is_taken_once_and_later_changes_to_the_settings_do_not_reach_it() -> None:
    settings = Settings()
    config = DeliveryConfig.from_settings(settings)
    assert config.concurrency == settings.delivery.concurrency and config.site_url == settings.site.url
    settings.delivery.concurrency, settings.smtp.port = 1, 2525  # as a test or a SIGHUP would, mid-run
    assert config.concurrency == 8 and config.smtp.port == 25
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.concurrency = 2  # type: ignore[misc]
