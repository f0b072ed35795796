"""Checks for everything a subscriber (or an operator) can type in, in one place.

The web forms, the JSON API, the CSV importer and the CLI all go through these, so
an address or a timezone is valid (or not) the same way everywhere.  Every failure
is a :class:`SubscriberError` that names the field and says what is wrong, in words
fit to show to the person who typed it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TypeVar

from publisher.content.slug import slugify
from publisher.i18n import N_
from subscribers.model import WEEKDAYS, Cadence, Preferences, Status

_Choice = TypeVar("_Choice", bound=StrEnum)

MAX_EMAIL = 254  # RFC 5321 path limit
MAX_NAME = 100
MAX_TOPICS = 50
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_TOPIC_SPLIT = re.compile(r"[|,;\s]+")


class SubscriberError(ValueError):
    """Input that can't become (part of) a subscriber; ``field`` names what is wrong.

    The message is the operator's (the API, the CLI, an import's report); ``reader``, when
    given, is what the sign-up and preferences pages tell a reader, in the site's language
    (a gettext message, marked with ``N_`` for the catalogs; ``%(max_email)s`` and
    ``%(max_name)s`` are the limits).
    """

    def __init__(self, message: str, field: str = "email", *, reader: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.reader = reader


def normalize_email(raw: str) -> str:
    """The canonical form of an address: email-validator's normalization, lower-cased.

    Syntax only, no DNS lookups (a sign-up page must not wait on a resolver).
    Lower case makes ``Ann@Example.org`` and ``ann@example.org`` one subscriber.
    An address with non-ASCII characters before the ``@`` is refused: only a relay
    speaking SMTPUTF8 can carry it, and the transport doesn't (an international
    domain is fine: it travels as IDNA).
    """
    raw = raw.strip()
    if not raw:
        raise SubscriberError("an email address is required", reader=N_("Enter your email address."))
    if len(raw) > MAX_EMAIL:
        raise SubscriberError(
            f"the email address is longer than {MAX_EMAIL} characters",
            reader=N_("An email address has at most %(max_email)s characters."),
        )
    from email_validator import EmailNotValidError, validate_email  # 0.1 s to import: only where an address is read

    try:
        found = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(
            f"not a valid email address: {exc}",
            reader=N_("This is not a valid email address. Please check it: it looks like name@example.com."),
        ) from None
    if found.smtputf8:
        raise SubscriberError(
            "we can't send to an address with accented or non-Latin letters before the @ "
            f"({found.local_part!r}); please use another address",
            reader=N_("We can't send to an address with accented or non-Latin letters before the @; "
                      "please use another address."),
        )
    return found.normalized.lower()


def email_hash(address: str) -> str:
    """The key of a normalized address on the suppression list."""
    return hashlib.sha256(address.encode("utf-8")).hexdigest()


def check_search(raw: str) -> str:
    """A text to look for in addresses and names, as given.

    Longer than any address, or holding a control character that no address or
    name can hold (a NUL would even end SQLite's pattern early and match everyone),
    it can't match anything: the caller is told instead of getting an empty page.
    """
    if len(raw) > MAX_EMAIL:
        raise SubscriberError(f"q is longer than {MAX_EMAIL} characters", "q")
    if found := _CONTROL.search(raw):
        raise SubscriberError(f"q holds a control character ({found.group()!r}), which no address or name has", "q")
    return raw


def check_name(raw: str) -> str:
    name = " ".join(raw.split())
    if _CONTROL.search(raw.replace("\t", " ")):
        raise SubscriberError(
            "the name must be a single line of text", "name", reader=N_("Your name must be a single line of text.")
        )
    if len(name) > MAX_NAME:
        raise SubscriberError(
            f"the name is longer than {MAX_NAME} characters", "name",
            reader=N_("Your name can have at most %(max_name)s characters."),
        )
    return name


def check_cadence(raw: str) -> Cadence:
    return _choice(Cadence, raw, "cadence")


def check_status(raw: str) -> Status:
    """A status as an export writes it (an import honours the column: only active rows come in)."""
    return _choice(Status, raw, "status")


def _choice(kind: type[_Choice], raw: str, field: str) -> _Choice:
    """``raw`` as one of ``kind``'s values, whatever its case and surrounding space."""
    try:
        return kind(raw.strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise SubscriberError(f"unknown {field} {raw!r}; choose one of {choices}", field) from None


def check_timezone(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > 64 or ".." in name:
        raise SubscriberError(f"unknown timezone {raw!r}; use an IANA name such as Europe/Paris", "timezone")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SubscriberError(f"unknown timezone {raw!r}; use an IANA name such as Europe/Paris", "timezone") from None
    return name


def check_send_hour(raw: object) -> int | None:
    """0–23, or None ("the site's default hour") for an empty value."""
    if raw is None or raw == "":
        return None
    try:
        hour = int(str(raw).strip())
    except ValueError:
        raise SubscriberError(f"the send hour must be a whole hour from 0 to 23, not {raw!r}", "send_hour") from None
    if not 0 <= hour <= 23:
        raise SubscriberError(f"the send hour must be from 0 to 23, not {hour}", "send_hour")
    return hour


def check_send_weekday(raw: str) -> str | None:
    """``mon`` … ``sun``, or None ("the site's weekly day") for an empty value."""
    day = raw.strip().lower()
    if not day:
        return None
    if day not in WEEKDAYS:
        raise SubscriberError(f"the weekday must be one of {', '.join(WEEKDAYS)}, not {raw!r}", "send_weekday")
    return day


def split_topics(raw: str) -> list[str]:
    """``"politics|economy"``, ``"politics, economy"`` or ``"politics economy"`` → a list."""
    return [t for t in _TOPIC_SPLIT.split(raw.strip()) if t]


def check_topics(requested: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    """The known topics named in ``requested`` (matched by slug), sorted and unique.

    Sorted and unique matters: the digest planner groups subscribers by their topics
    as stored, so two spellings of one choice must be stored identically.
    """
    by_slug = {slugify(t): t for t in known}
    chosen: set[str] = set()
    for topic in requested:
        slug = slugify(topic)
        if slug not in by_slug:
            options = ", ".join(sorted(by_slug.values(), key=str.casefold)) or "none yet"
            raise SubscriberError(f"unknown topic {topic!r} (known topics: {options})", "topics")
        chosen.add(by_slug[slug])
    if len(chosen) > MAX_TOPICS:
        raise SubscriberError(f"at most {MAX_TOPICS} topics", "topics")
    return tuple(sorted(chosen, key=str.casefold))


# --- several fields at once (JSON API, importers) ------------------------------------

PREFERENCE_FIELDS = ("cadence", "topics", "timezone", "send_hour")


class InvalidFields(SubscriberError):
    """Several inputs are wrong at once; ``problems`` holds one SubscriberError each.

    An operator fixing a record (or a batch of them) wants every mistake in one
    answer, not one per round trip.
    """

    def __init__(self, problems: Sequence[SubscriberError]) -> None:
        super().__init__("; ".join(f"{p.field}: {p}" for p in problems), problems[0].field if problems else "")
        self.problems = list(problems)


def require_text(raw: object, field: str) -> str:
    """``raw`` if it is a string: typed input (JSON) may hold a number or a list instead."""
    if not isinstance(raw, str):
        raise SubscriberError(f"{field} must be a string", field)
    return raw


def _topic_names(raw: object) -> list[str]:
    if isinstance(raw, str):
        return split_topics(raw)
    if isinstance(raw, (list, tuple)) and all(isinstance(t, str) for t in raw):
        return list(raw)
    raise SubscriberError("topics must be a list of topic names", "topics")


def check_preferences(values: Mapping[str, object], *, base: Preferences, known_topics: Iterable[str]) -> Preferences:
    """``base`` with the preference fields present in ``values`` checked and applied.

    Absent fields keep ``base``'s value, so one function serves a new subscriber
    (``base`` = the site's defaults) and a partial update (``base`` = what is stored).
    Values may be typed (JSON: a list of topics, an integer hour, null for "the site's
    hour") or text (CSV: ``"politics|economy"``).  Raises :class:`InvalidFields`
    naming every bad field, not just the first.
    """
    problems: list[SubscriberError] = []
    changes: dict[str, object] = {}
    checks: dict[str, Callable[[object], object]] = {
        "cadence": lambda raw: check_cadence(require_text(raw, "cadence")),
        "topics": lambda raw: check_topics(_topic_names(raw), known_topics),
        "timezone": lambda raw: check_timezone(require_text(raw, "timezone")),
        "send_hour": _send_hour,
    }
    for field, check in checks.items():
        if field in values:
            try:
                changes[field] = check(values[field])
            except SubscriberError as exc:
                problems.append(exc)
    if problems:
        raise InvalidFields(problems)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _send_hour(raw: object) -> int | None:
    if isinstance(raw, (bool, float)):  # int(7.9) and True would slip through as hours
        raise SubscriberError(f"the send hour must be a whole hour from 0 to 23, not {raw!r}", "send_hour")
    return check_send_hour(raw)
