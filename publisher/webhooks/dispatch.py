"""Sending the outbox: signed POSTs, retried with backoff until each endpoint answers 2xx.

A pass (:meth:`Webhooks.send_due`, the daemon's ``webhooks`` job on every node, or
``publisher webhooks send``) claims due rows a batch at a time, POSTs them at once
(the claims hold at most one event per key and endpoint, see
:mod:`publisher.webhooks.outbox`), records the outcomes, and goes on until nothing is
due.  A failure (an answer other than 2xx, a timeout, a refused connection) waits
``retry_base`` seconds, twice as long after each further failure, up to ``retry_cap``,
with jitter (half of the wait is random) so endpoints coming back are not hit by every
node at once.  It is retried until acknowledged: at least once, so a receiver
deduplicates by the event's ``id``.  Nothing here raises into serving or sending: a
pass logs what failed and the rows wait.

Signature: ``Publisher-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
with the secret read from the environment variable ``secret_env`` names; the secret
is never logged, nor stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import clock
from publisher.webhooks import outbox

if TYPE_CHECKING:
    import aiohttp

    from publisher.config import Settings, WebhookSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Publisher-Signature"
BATCH = 100  # rows claimed at once: POSTed together
_ERROR_CHARS = 300  # of a failure's description kept for ``publisher status``


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Publisher-Signature`` header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def backoff(hook: WebhookSettings, attempts: int) -> timedelta:
    """How long a row waits after its ``attempts``-th failure: doubling from ``retry_base``,
    capped at ``retry_cap``, the second half of it random."""
    wait = min(hook.retry_cap, hook.retry_base * 2 ** min(attempts - 1, 30))
    return timedelta(seconds=wait / 2 + random.uniform(0, wait / 2))


def body(row: Row) -> bytes:
    """The event as POSTed: ``id``, ``type``, ``created_at`` and ``data``."""
    event = {"id": row.id, "type": row.type, "created_at": row.created_at.isoformat(), "data": json.loads(row.data)}
    return json.dumps(event, separators=(",", ":")).encode()


class Webhooks:
    """The dispatcher of one process: registers ``[[webhooks]]``, sends what is due."""

    def __init__(self, engine: AsyncEngine, settings: Settings, claimant: str, stopping: asyncio.Event) -> None:
        self.engine = engine
        self.settings = settings
        self.claimant = claimant
        self.stopping = stopping
        self._registered: object = None  # the settings.webhooks last registered
        self._session: aiohttp.ClientSession | None = None
        self._busy = asyncio.Lock()

    async def register(self) -> None:
        """Register ``[[webhooks]]`` in the store unless these settings were (a reload makes new ones)."""
        if self._registered is not self.settings.webhooks:
            await outbox.register(self.engine, {hook.url: [str(t) for t in hook.events] for hook in self.settings.webhooks})
            self._registered = self.settings.webhooks

    async def send_due(self) -> tuple[int, int]:
        """One pass: send every row due now until none is; (acknowledged, failed) attempts.

        A pass in progress in this process makes another return at once (the job
        runs every poll; a pass may last longer).
        """
        if self._busy.locked():
            return 0, 0
        async with self._busy:
            await self.register()
            hooks = {hook.url: hook for hook in self.settings.webhooks}
            sent = failures = 0
            if not hooks:
                return sent, failures
            lease = timedelta(seconds=max(hook.timeout for hook in hooks.values()) * 2 + 30)
            while not self.stopping.is_set():
                now = clock.now()
                rows = await outbox.claim(self.engine, list(hooks), BATCH, now, self.claimant, lease)
                if not rows:
                    break
                outcomes = await asyncio.gather(*(self._post(hooks[row.endpoint], row) for row in rows))
                now = clock.now()
                done = [(row.endpoint, row.event_seq) for row, error in zip(rows, outcomes) if error is None]
                failed = [
                    outbox.Failure(row.endpoint, row.event_seq, row.attempts + 1,
                                   now + backoff(hooks[row.endpoint], row.attempts + 1), error)
                    for row, error in zip(rows, outcomes) if error is not None
                ]
                await outbox.acknowledged(self.engine, done, now)
                await outbox.failed(self.engine, failed, now)
                sent, failures = sent + len(done), failures + len(failed)
            if failures:
                log.warning("webhooks: %d attempts failed (%d acknowledged); they are retried (publisher status)",
                            failures, sent)
            return sent, failures

    async def _post(self, hook: WebhookSettings, row: Row) -> str | None:
        """POST one event; None when acknowledged (2xx), else what went wrong."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "publisher-webhooks"})
        secret = os.environ.get(hook.secret_env)
        if not secret:  # unset since the config was read: sending unsigned would teach receivers to accept that
            return f"the environment variable {hook.secret_env} (the signing secret) is not set"
        payload = body(row)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(secret, payload, int(clock.now().timestamp())),
        }
        try:
            async with self._session.post(
                hook.url, data=payload, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=hook.timeout),
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status} {response.reason or ''}".strip()[:_ERROR_CHARS]
        except TimeoutError:
            return f"no answer within {hook.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]

    async def next_due(self) -> datetime | None:
        """When a configured endpoint is next owed a retry (None: nothing is owed)."""
        return await outbox.next_due(self.engine, [hook.url for hook in self.settings.webhooks])

    async def status(self, cap: int | None = None) -> list[outbox.EndpointStatus]:
        return await outbox.status(self.engine, cap)

    async def owed_page(self, limit: int, after: tuple[str, int] | None = None) -> list[outbox.OwedEvent]:
        return await outbox.owed_page(self.engine, limit, after)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
