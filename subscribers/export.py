"""Subscribers out: CSV that :func:`subscribers.importer.parse_csv` reads back, or JSON Lines.

Both read the store a page at a time, so an export of any size holds one page in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Literal

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


async def chunks(
    engine: AsyncEngine, *, fmt: Literal["csv", "jsonl"], status: Status | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Subscribers as CSV (the header first) or JSON Lines, a page at a time: (text, subscribers in it).

    The CLI writes the chunks to a file, the dashboard streams them to the browser;
    either way one page is in memory at a time.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(EXPORT_COLUMNS)
    async for page in store.batches(engine, status=status):
        if fmt == "csv":
            writer.writerows(export_cells(s) for s in page)
        else:
            buffer.writelines(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in page)
        yield _taken(buffer), len(page)
    if buffer.tell():  # a CSV header with no subscriber after it
        yield _taken(buffer), 0


def _taken(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
