"""Application keys shared by the web modules (kept apart to avoid import cycles)."""

from __future__ import annotations

from aiohttp import web

from publisher.app import Publisher

PUBLISHER = web.AppKey("publisher", Publisher)
