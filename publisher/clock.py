"""The one clock: every "now" in the publisher comes from :func:`now`.

Call it through the module (``from publisher import clock`` … ``clock.now()``), never
``from publisher.clock import now``: a test then freezes or moves time for the whole
program by replacing ``publisher.clock.now`` once (``monkeypatch.setattr``), instead
of patching a private ``_now`` in each module.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time, timezone-aware, in UTC (what the store and every header use)."""
    return datetime.now(UTC)
