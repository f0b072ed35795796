"""Refresh the vendored caniemail snapshot that :mod:`publisher.mail.client_lint` reads.

The caniemail data (https://www.caniemail.com, MIT licence) lists, per HTML/CSS
feature, how each mail client supports it at each test.  The linter only needs the
newest result per client, so the snapshot keeps that (a few hundred KB less to load
and to ship).  "Newest" is the data's last entry per client: its keys are test dates
and app versions in the order they were tested, which sort wrongly as strings
(Outlook for macOS "16.80" came after "2016").

Run after ``npm pack caniemail`` and unpacking it::

    python -m publisher.mail.caniemail_snapshot package/data/caniemail.json 1.0.5

then copy the package's LICENSE over ``data/caniemail-LICENSE.txt`` if it changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("data") / "caniemail.json"


def snapshot(raw: dict, version: str) -> dict:
    """The compact form of the package's ``caniemail.json`` (see the module docstring)."""
    names = raw["nicenames"]
    clients: dict[str, str] = {}
    features: dict[str, dict] = {}
    for feature in raw["data"]:
        support: dict[str, str] = {}
        for family, platforms in feature["stats"].items():
            for platform, tests in platforms.items():
                client = f"{family}.{platform}"
                support[client] = list(tests.values())[-1]
                clients[client] = f"{names['family'].get(family, family)} {names['platform'].get(platform, platform)}"
        features[feature["slug"]] = {
            "title": feature["title"], "category": feature["category"], "url": feature["url"],
            "support": support, "notes": feature["notes_by_num"] or {},
        }
    return {
        "source": f"caniemail {version} (npm), data of www.caniemail.com updated {raw['last_update_date']}",
        "clients": dict(sorted(clients.items())),
        "features": features,
    }


def main(argv: list[str]) -> None:
    source, version = argv
    data = snapshot(json.loads(Path(source).read_text(encoding="utf-8")), version)
    SNAPSHOT.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n",
                        encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
