"""Rate limits on the forms that send email: per client address and per target address.

A sign-up form that sends mail is a way to flood someone's inbox (or to burn the
sender's reputation) unless both the client and the address it names are limited.
The `limits` library keeps moving windows in memory; one process serves the web
pages of a single-node site, and a restart forgetting the counts is harmless.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Sequence

from aiohttp import web
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from publisher.config import ServerSettings


class RateLimits:
    def __init__(self, per_client: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_client = parse(per_client)
        self._per_address = parse(per_address)

    async def check(self, action: str, client: str, address_key: str | None) -> None:
        """Count one attempt; raise 429 with Retry-After when a limit is exceeded.

        The client's window is counted before the address is known valid, so
        floods of junk are limited too.
        """
        await self._hit(self._per_client, action, "client", client)
        if address_key is not None:
            await self._hit(self._per_address, action, "address", address_key)

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> None:
        if await self._limiter.hit(item, *identifiers):
            return
        stats = await self._limiter.get_window_stats(item, *identifiers)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise web.HTTPTooManyRequests(headers={"Retry-After": str(retry_after)})


def client_address(request: web.Request, server: ServerSettings) -> str:
    """The client's IP: the peer, or what a trusted reverse proxy says it forwarded for.

    X-Forwarded-For is read right to left, skipping our own proxies; the first
    address that is not one of them is the client (anything further left could be
    forged by the client itself).
    """
    peer = request.remote or ""
    trusted = [ipaddress.ip_network(p, strict=False) for p in server.trusted_proxies]
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return peer


def _within(address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
