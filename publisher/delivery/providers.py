"""Mailbox providers: which company's servers take a recipient's mail, from the address's domain.

Reputation is kept per provider, not per domain: Gmail judges mail to gmail.com and
googlemail.com alike, Microsoft to outlook.com, hotmail.fr and live.co.uk.  So reports
(``publisher report``), metrics and pacing group recipients by the provider that
:meth:`Providers.of` names, ``"other"`` for a domain no pattern matches.

A pattern is one of:

* ``example.com``: that domain exactly;
* ``*.example.com``: any domain under it (not ``example.com`` itself: list both);
* ``outlook.*``: a domain whose first label is ``outlook`` and whose rest is a top-level
  domain, or a short second-level one and a top-level one (``outlook.com``,
  ``outlook.fr``, ``hotmail.co.uk``, ``yahoo.com.br``): the provider's country domains,
  not ``outlook.anything.example``.

The built-in table (:data:`BUILT_IN`) is extended by ``[providers]`` in the config, a
provider's name and its patterns; a pattern the config gives wins over a built-in one,
so a domain can be moved to another provider.  Looking a domain up is one or a few
dict lookups (the patterns are compiled into three dicts once), cheap enough to call
per recipient.  No MX lookups: a domain hosted by Google Workspace counts as ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

OTHER = "other"

# Provider names and their patterns (see the module's docstring for the syntax).
BUILT_IN: dict[str, tuple[str, ...]] = {
    "google": ("gmail.com", "googlemail.com"),
    "microsoft": ("outlook.*", "hotmail.*", "live.*", "msn.com", "windowslive.com", "passport.com"),
    "yahoo": ("yahoo.*", "ymail.com", "rocketmail.com", "aol.*", "aim.com", "verizon.net"),
    "apple": ("icloud.com", "me.com", "mac.com"),
    "proton": ("proton.me", "protonmail.com", "protonmail.ch", "pm.me"),
    "gmx": ("gmx.*", "web.de", "mail.com"),
    "yandex": ("yandex.*", "ya.ru"),
    "mailru": ("mail.ru", "inbox.ru", "list.ru", "bk.ru"),
    "zoho": ("zoho.com", "zohomail.com", "zohomail.eu"),
    "fastmail": ("fastmail.com", "fastmail.fm"),
    "comcast": ("comcast.net",),
    "orange": ("orange.fr", "wanadoo.fr"),
    "tonline": ("t-online.de",),
    "qq": ("qq.com", "foxmail.com"),
    "netease": ("163.com", "126.com", "yeah.net"),
}

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_FIRST_LABEL = re.compile(_LABEL)
_MAX_SECOND_LEVEL = 3  # "outlook.*" covers outlook.co.uk and outlook.com.br, not outlook.evil.example


class ProviderError(ValueError):
    """A ``[providers]`` entry that can't be used: the message names it and says why."""


def check_patterns(table: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """``table`` lower-cased and checked, for the config: names as ``[a-z0-9_-]``, not
    ``other``; every pattern in the syntax of the module's docstring, on one provider only."""
    checked: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for raw_name, patterns in table.items():
        name = raw_name.strip().lower()
        if not _NAME.fullmatch(name) or name == OTHER:
            raise ProviderError(
                f"provider name {raw_name!r}: use up to 40 letters, digits, '-' or '_' (and not {OTHER!r})"
            )
        checked[name] = []
        for raw in patterns:
            pattern = raw.strip().lower()
            if not _valid(pattern):
                raise ProviderError(
                    f"provider {name}: {raw!r} is not a domain, '*.domain' or 'name.*' (e.g. 'example.com')"
                )
            if owner.setdefault(pattern, name) != name:
                raise ProviderError(f"{pattern!r} is listed under both {owner[pattern]} and {name}")
            checked[name].append(pattern)
    return checked


def _valid(pattern: str) -> bool:
    if pattern.startswith("*."):
        return bool(_DOMAIN.fullmatch(pattern[2:]))
    if pattern.endswith(".*"):
        return bool(_FIRST_LABEL.fullmatch(pattern[:-2]))
    return bool(_DOMAIN.fullmatch(pattern))


class Providers:
    """The provider table, compiled: :meth:`of` names the provider of an address or domain."""

    def __init__(self, extra: Mapping[str, Iterable[str]] | None = None) -> None:
        self._exact: dict[str, str] = {}
        self._under: dict[str, str] = {}  # "*.example.com" → "example.com"
        self._first_label: dict[str, str] = {}  # "outlook.*" → "outlook"
        # Built-in first, then the config's: a later pattern replaces an earlier one.
        for table in (BUILT_IN, check_patterns(extra or {})):
            for name, patterns in table.items():
                for pattern in patterns:
                    self._add(name, pattern)
        self.names: tuple[str, ...] = tuple(
            sorted({*self._exact.values(), *self._under.values(), *self._first_label.values()})
        ) + (OTHER,)

    def _add(self, name: str, pattern: str) -> None:
        if pattern.startswith("*."):
            self._under[pattern[2:]] = name
        elif pattern.endswith(".*"):
            self._first_label[pattern[:-2]] = name
        else:
            self._exact[pattern] = name

    def of(self, address_or_domain: str) -> str:
        """The provider of ``user@domain`` or ``domain`` (any case, a trailing dot allowed); ``"other"``."""
        domain = address_or_domain.rpartition("@")[2]
        found = self._exact.get(domain)  # the common case: a stored (normalized) address at a listed domain
        if found is not None:
            return found
        domain = domain.strip().rstrip(".").lower()
        found = self._exact.get(domain)
        if found is not None:
            return found
        parent = domain
        while "." in parent:
            parent = parent.partition(".")[2]
            found = self._under.get(parent)
            if found is not None:
                return found
        first, _, rest = domain.partition(".")
        second, dot, _tld = rest.partition(".")
        if rest and (not dot or (len(second) <= _MAX_SECOND_LEVEL and "." not in _tld)):
            return self._first_label.get(first, OTHER)
        return OTHER


_built_in: Providers | None = None


def provider_of(address_or_domain: str) -> str:
    """The provider of an address or domain by the built-in table alone (the config's
    ``[providers]`` need a :class:`Providers` made from them)."""
    global _built_in
    if _built_in is None:
        _built_in = Providers()
    return _built_in.of(address_or_domain)
