"""What to do about a message that was not delivered: the delivery engine's decisions, without I/O.

Replies, as :func:`publisher.mail.replies.reply_action` reads them (with the phase of
the session they came at):

- throttling (421/450/451/452/454): the message is deferred and its mailbox provider
  slows down (the engine's lane for it; the connection itself backs off only when
  connecting is refused); throttling never fails a message (only ``max_age`` does);
- other temporary failures: deferred with exponential backoff and jitter, until
  ``max_attempts`` tries or ``max_age``; a failure without a reply (the relay
  unreachable) also rests the connection;
- a refusal about the recipient fails the row with the server's reply and bounces the
  reader ("no such user" hard, "mailbox full" soft, counting towards ``soft_bounce_limit``);
- a refusal of the message or the sender (content, policy, an unverified sender) fails
  the row and leaves the reader alone, unless ``pause_after_identical`` of them in a row
  carry the same reply (:class:`RefusalStreak`): then the relay is broken, not the
  messages, and the digest pauses;
- more than ``max_error_ratio`` of the last ``error_window`` messages failed: the digest
  pauses (:func:`error_ratio_tripped`).

Everything here is a function of its arguments (and of ``random`` for the jitter,
which a caller can fix), so each rule is tested without a server or a database
(``tests/test_delivery_policy.py``); :mod:`publisher.delivery.engine` does the I/O.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from publisher.delivery.model import DeliveryConfig
from publisher.mail.replies import ReplyAction
from publisher.mail.transport import DeliveryError
from subscribers.service import BounceKind

T = TypeVar("T")


class Verdict(StrEnum):
    DEFER = "defer"  # try again at ``retry_at``
    GIVE_UP = "give up"  # a temporary failure, but out of attempts or too old: failed
    BOUNCE = "bounce"  # refused for good because of the recipient: failed, and the reader bounced
    REFUSE = "refuse"  # the message or the sender refused: failed, or part of a streak that pauses


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reply: str  # what the ledger records as the row's last reply
    retry_at: datetime | None = None  # DEFER only
    bounce: BounceKind | None = None  # BOUNCE only
    rest: bool = False  # the connection backs off before its next message (throttled: the provider does)
    throttled: bool = False  # the relay asked to slow down (counts towards ``throttle_limit``)

    @property
    def ends_streak(self) -> bool:
        """A refusal about the reader ends a streak of identical refusals (of the message)."""
        return self.verdict is Verdict.BOUNCE


def decide(
    failure: DeliveryError, attempts: int, age: timedelta, config: DeliveryConfig, now: datetime,
    *, jitter: float | None = None,
) -> Decision:
    """What to do with a row whose ``attempts``-th try failed with ``failure``, its digest ``age`` old."""
    action = failure.action
    if failure.permanent:
        reply = failure.reply if failure.code is None else f"{failure.code} {failure.reply}"
        if action is ReplyAction.MESSAGE_FAILED:
            return Decision(Verdict.REFUSE, reply)
        # Every other permanent action is about the recipient (reply_action).
        return Decision(Verdict.BOUNCE, reply, bounce="hard" if action is ReplyAction.HARD_BOUNCE else "soft")
    throttled = action is ReplyAction.THROTTLED
    too_old = age > timedelta(seconds=config.max_age)
    if too_old or (not throttled and attempts >= config.max_attempts):
        return Decision(Verdict.GIVE_UP, str(failure), throttled=throttled)
    # Throttled, or the relay unreachable: this connection (or the provider's lane) rests
    # before its next message.  A throttled message's wait doesn't grow with its attempts:
    # the provider's pace is its lane's business (publisher.delivery.pacing.Lane), and one
    # message throttled ten times must not wait an hour once the provider accepts again.
    return Decision(
        Verdict.DEFER, str(failure), retry_at=retry_at(1 if throttled else attempts, now, config.retry_base, jitter=jitter),
        rest=throttled or failure.code is None, throttled=throttled,
    )


def retry_at(attempts: int, now: datetime, retry_base: float, *, jitter: float | None = None) -> datetime:
    """When to try a message again after its ``attempts``-th try: exponential, with jitter
    (a factor in 0.8-1.2, random unless given) so a digest's retries don't all fall at once."""
    factor = random.uniform(0.8, 1.2) if jitter is None else jitter
    return now + timedelta(seconds=retry_base * 2 ** min(attempts - 1, 20) * factor)


def relay_keeps_throttling(throttled_in_a_row: int, config: DeliveryConfig) -> bool:
    """Whether a provider's throttled messages in a row end its share of the pass
    (``throttle_limit``): its other messages then wait, deferred, for the next pass instead
    of holding the run; the other providers' go on."""
    return throttled_in_a_row == config.throttle_limit


def error_ratio_tripped(errors: deque[bool], config: DeliveryConfig) -> bool:
    """Whether more than ``max_error_ratio`` of the last ``error_window`` messages failed
    (``errors``: one entry per message, True for a failure, at most ``error_window`` kept)."""
    return len(errors) == errors.maxlen and sum(errors) / len(errors) > config.max_error_ratio


def error_ratio_reason(errors: deque[bool], config: DeliveryConfig, reply: str) -> str:
    """A digest's pause reason when :func:`error_ratio_tripped`, as ``publisher status`` shows it."""
    return (
        f"{sum(errors)} of the last {len(errors)} messages failed "
        f"(max_error_ratio {config.max_error_ratio:g}); last reply: {reply}"
    )


def identical_refusals_reason(config: DeliveryConfig, reply: str) -> str:
    """A digest's pause reason when a :class:`RefusalStreak` reached ``pause_after_identical``."""
    return (
        f"{config.pause_after_identical} messages in a row refused with the same reply "
        f"(pause_after_identical): {reply}"
    )


@dataclass(frozen=True, slots=True)
class StreakStep(Generic[T]):
    """What one more refusal did to a streak."""

    ended: list[T]  # the previous streak (another reply came): these failed ...
    ended_reply: str  # ... with this reply
    released: list[T]  # the streak reached ``pause_after_identical``: pause, and these go back to pending


class RefusalStreak(Generic[T]):
    """Messages refused in a row with one same reply (about the message, not the reader).

    They are held, not yet recorded, while the same reply repeats: a streak that reaches
    ``limit`` is the relay's fault (the digest pauses and they are sent again after
    ``publisher resume``); a streak that something else ends was the messages' own (failed).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: list[T] = []
        self.reply = ""

    def refused(self, item: T, reply: str) -> StreakStep[T]:
        ended, ended_reply = self.end() if reply != self.reply else ([], "")
        self.reply = reply
        self.held.append(item)
        released: list[T] = []
        if len(self.held) >= self.limit:
            released, self.held = self.held, []
        return StreakStep(ended, ended_reply, released)

    def end(self) -> tuple[list[T], str]:
        """Something other than the same refusal came: the held messages, and their reply."""
        ended, reply = self.held, self.reply
        self.held, self.reply = [], ""
        return ended, reply
