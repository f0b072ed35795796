"""Subscribers out as files: CSV that :func:`subscribers.importer.parse_csv` reads back, or JSON Lines.

Both read the store a page at a time, so an export of any size holds one page in memory.
"""

from __future__ import annotations

import csv
import json
from typing import IO

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.content.slug import slugify
from subscribers import store
from subscribers.importer import EXPORT_COLUMNS, defuse
from subscribers.model import Status, Subscriber


def export_cells(subscriber: Subscriber) -> list[str]:
    """A subscriber as a row of :data:`EXPORT_COLUMNS`, in a form :func:`parse_csv` reads back.

    Topics are written as slugs joined with ``|``: a topic name may contain a space or
    a comma, which the importer would split on, while its slug matches it on import.
    """
    prefs = subscriber.preferences
    return [
        defuse(subscriber.email),
        defuse(subscriber.name),
        prefs.cadence.value,
        "|".join(slugify(topic) for topic in prefs.topics),
        prefs.timezone,
        "" if prefs.send_hour is None else str(prefs.send_hour),
        subscriber.status.value,
        subscriber.source.value,
        subscriber.created_at.isoformat(),
        subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
    ]


async def export_csv(engine: AsyncEngine, out: IO[str], *, status: Status | None = None) -> int:
    """Write subscribers as CSV to ``out`` a page at a time; returns how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    async for page in store.batches(engine, status=status):
        writer.writerows(export_cells(s) for s in page)
        written += len(page)
    return written


async def export_jsonl(engine: AsyncEngine, out: IO[str], *, status: Status | None = None) -> int:
    """Write subscribers as JSON Lines (``Subscriber.to_dict``, the API's shape); returns how many."""
    written = 0
    async for page in store.batches(engine, status=status):
        out.writelines(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in page)
        written += len(page)
    return written
