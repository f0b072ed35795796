"""The caniemail data: which mail client supports which HTML and CSS feature.

A snapshot of the data of https://www.caniemail.com (the npm package ``caniemail``,
MIT licence: ``data/caniemail-LICENSE.txt``, refreshed by
:mod:`publisher.mail.caniemail_snapshot`) ships inside the package, so the lint and
the renderer's choices need no network and give the same answer on every machine.

A client is ``family.platform`` as the data names them (``outlook.windows``,
``gmail.android``); a configured name may also be a bare family (``gmail``), meaning
every platform the data lists for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("data") / "caniemail.json"

# The README's list, as the issue asked for it: the clients most readers use.
DEFAULT_CLIENTS = (
    "gmail", "apple-mail", "outlook.windows", "outlook.macos", "outlook.ios", "outlook.android", "yahoo",
    "samsung-email", "thunderbird",
)


@dataclass(frozen=True)
class Support:
    """How one client supports one feature at its newest test."""

    level: str  # "y" (yes), "a" (partial), "n" (no), "u" (unknown)
    notes: tuple[str, ...]  # the feature's note numbers that apply ("1", "3")


@cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return data


def source() -> str:
    """Where the snapshot comes from: package, version and the data's date."""
    return str(_data()["source"])


def client_names() -> dict[str, str]:
    """Every client id the data knows, with its readable name ("Outlook Windows")."""
    return dict(_data()["clients"])


def features() -> dict[str, dict[str, Any]]:
    """Every feature by slug: ``title``, ``category``, ``url``, ``support`` (client → "a #1"), ``notes``."""
    return dict(_data()["features"])


def expand_clients(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The client ids ``names`` stands for (a family stands for all its platforms), in order, once each.

    Raises ValueError naming every unknown name and the names that would do.
    """
    known = client_names()
    families = sorted({client.split(".", 1)[0] for client in known})
    out: dict[str, None] = {}
    unknown = []
    for name in names:
        matches = [name] if name in known else [c for c in known if c.split(".", 1)[0] == name]
        if not matches:
            unknown.append(name)
        out.update(dict.fromkeys(matches))
    if unknown:
        raise ValueError(
            f"unknown mail client(s) {', '.join(map(repr, unknown))}: use a family ({', '.join(families)}) "
            f"or one of its platforms (e.g. outlook.windows, gmail.android)"
        )
    return tuple(out)


def support(slug: str, client: str) -> Support:
    """``client``'s support for the feature ``slug`` (unknown when the data has no test of it)."""
    raw = features()[slug]["support"].get(client, "u")
    level, *marks = raw.split()
    return Support(level[0], tuple(mark.lstrip("#") for mark in marks if mark.startswith("#")))


def supported_by_all(slug: str, clients: tuple[str, ...]) -> bool:
    """Whether every one of ``clients`` fully supports the feature ``slug``."""
    return all(support(slug, client).level == "y" for client in clients)
