"""The service behind the click redirects: is a link ours, and count its click.

The web's redirect handler (:mod:`publisher.web.clicks`) parses the request and asks
this; the counting itself is :mod:`publisher.tracking.counts`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.config import Settings
from publisher.logs import first_line
from publisher.tracking.counts import count_click
from publisher.tracking.links import ClickLinks

if TYPE_CHECKING:
    from subscribers.tokens import Tokens

log = logging.getLogger(__name__)


class ClickTracking:
    """Checks click links and counts their clicks; ``settings`` is replaced on a reload (SIGHUP)."""

    def __init__(self, engine: AsyncEngine, settings: Settings, tokens: Callable[[], Tokens]) -> None:
        self.engine = engine
        self.settings = settings
        self._tokens = tokens  # read when used: the key file is only needed once something is signed

    @property
    def counting(self) -> bool:
        """Whether clicks are counted now (links sent while they were keep redirecting after)."""
        return self.settings.tracking.clicks == "aggregate"

    def genuine(self, digest_id: str, n: int, target: str, signature: str) -> bool:
        """Whether this site signed ``target`` as link ``n`` of digest ``digest_id`` (see ClickLinks)."""
        return ClickLinks(self._tokens(), self.settings.site.url).genuine(digest_id, n, target, signature)

    async def count(self, digest_id: str, n: int, target: str) -> None:
        """One click on a genuine link.  A store that fails loses the click, never the reader's way on."""
        try:
            await count_click(self.engine, digest_id, n, target)
        except SQLAlchemyError as exc:
            log.warning("click on link %d of digest %s not counted: %s", n, digest_id, first_line(exc))
