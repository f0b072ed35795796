"""What delivery talks about: the states of a message and of a digest, one run's settings and report.

The states are the strings the ledger stores (``deliveries.state``, ``digests.status``);
as :class:`~enum.StrEnum` members they compare and store as those same strings, so the
database does not change, and a typo is a NameError instead of a row no query finds.

:class:`DeliveryConfig` is everything a delivery run reads of the configuration, taken
from :class:`~publisher.config.Settings` once when the run starts: the run finishes as
it started even if SIGHUP brings new settings meanwhile, and nothing below the delivery
service reads ``Settings`` (a setting reaches the code it drives in one hop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from publisher.config import Settings, SmtpSettings


class DeliveryState(StrEnum):
    """One message's state in the ledger: ``pending → sending → sent | deferred | failed | cancelled``."""

    PENDING = "pending"  # to do: never tried, or handed back without an attempt
    SENDING = "sending"  # claimed by a run (until its lease lapses)
    SENT = "sent"
    DEFERRED = "deferred"  # a temporary failure: tried again at retry_at
    FAILED = "failed"
    CANCELLED = "cancelled"  # the reader left, the article was taken down, or the operator cancelled


# The states of a message still to send (a digest with none of them is finished).
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.DEFERRED)


class DigestState(StrEnum):
    """A digest's state: delivered while ``sending``, held while ``paused``, then ``finished``."""

    SENDING = "sending"
    PAUSED = "paused"  # with a reason, until ``publisher resume``
    FINISHED = "finished"


@dataclass
class DeliveryReport:
    """What one delivery run did (this node's share, when several nodes deliver a digest)."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    cancelled: int = 0
    finished: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    unreachable: str = ""  # why nothing was attempted: the transport could not be opened

    @property
    def handled(self) -> int:
        return self.sent + self.deferred + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """One mailbox provider's own limits (``[delivery.providers.<name>]``); 0: none of its own."""

    concurrency: int = 0  # messages to it in flight at once
    rate: float = 0.0  # messages per second to it


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """The ``[delivery]``, ``[smtp]`` and ``[site] url`` values one delivery run uses."""

    # How fast, and over how many connections.
    concurrency: int
    batch_size: int
    rate: float
    window_messages: int
    window_seconds: float
    throttle_limit: int
    # When to try again, give up, or pause (publisher.delivery.policy).
    max_attempts: int
    retry_base: float
    max_age: float
    max_error_ratio: float
    error_window: int
    pause_after_identical: int
    soft_bounce_limit: int
    # What the messages say and where they go.
    from_address: str
    site_url: str
    transport: Literal["maildir", "smtp"]
    outbox: Path
    smtp: SmtpSettings
    # Limits per mailbox provider, by name (publisher.delivery.providers); one not listed has none.
    providers: dict[str, ProviderLimits] = field(default_factory=dict, hash=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        delivery = settings.delivery
        return cls(
            concurrency=delivery.concurrency,
            batch_size=delivery.batch_size,
            rate=delivery.rate,
            window_messages=delivery.window_messages,
            window_seconds=delivery.window_seconds,
            throttle_limit=delivery.throttle_limit,
            max_attempts=delivery.max_attempts,
            retry_base=delivery.retry_base,
            max_age=delivery.max_age,
            max_error_ratio=delivery.max_error_ratio,
            error_window=delivery.error_window,
            pause_after_identical=delivery.pause_after_identical,
            soft_bounce_limit=delivery.soft_bounce_limit,
            from_address=delivery.from_address,
            site_url=settings.site.url,
            transport=delivery.transport,
            outbox=delivery.outbox,
            smtp=settings.smtp.model_copy(),  # a copy: a test or SIGHUP changing settings leaves this run alone
            providers={
                name: ProviderLimits(limits.concurrency, limits.rate) for name, limits in delivery.providers.items()
            },
        )

    @property
    def transport_name(self) -> str:
        """Where messages go, as the operator configured it (for error messages)."""
        if self.transport == "smtp":
            return f"SMTP relay at {self.smtp.host}:{self.smtp.port}"
        return f"maildir outbox {self.outbox}"
