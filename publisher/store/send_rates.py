"""Reserving send slots from a rate shared by every node (the ``send_rates`` table, PostgreSQL).

A bucket is a GCRA: its row holds the first moment no node has reserved yet.  A
reservation moves it on by the reserved span, from now if it lies in the past (an
idle bucket saves up nothing), in one statement on the database's clock, so the
nodes' own clocks never matter and two reservations never overlap.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Upsert: the bucket's row is made by its first reservation.  clock_timestamp(), not
# now(): the moment of the statement, not of its transaction's start.
_RESERVE = text(
    """
    INSERT INTO send_rates (name, next_slot)
    VALUES (:name, clock_timestamp() + make_interval(secs => :span))
    ON CONFLICT (name) DO UPDATE
    SET next_slot = greatest(send_rates.next_slot, clock_timestamp()) + make_interval(secs => :span)
    RETURNING extract(epoch FROM next_slot - clock_timestamp())
    """
)


async def reserve(engine: AsyncEngine, name: str, span: float) -> float:
    """Reserve the next ``span`` seconds of bucket ``name``; the seconds from now until
    the reserved span ends (it starts ``span`` seconds before that)."""
    async with engine.begin() as conn:
        return float(await conn.scalar(_RESERVE, {"name": name, "span": span}))
