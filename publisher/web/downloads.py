"""A download streamed as the store is read: the subscriber exports of the API and the dashboard."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

log = logging.getLogger(__name__)


async def stream_download(
    request: web.Request, response: web.StreamResponse, chunks: AsyncIterator[str]
) -> web.StreamResponse:
    """Send ``chunks`` as ``response``'s body, in UTF-8, one at a time (memory stays flat).

    A failure half-way aborts the connection instead of ending the body cleanly, so
    a client can't take a truncated export for a complete one.  A client that hangs up
    (a download cancelled in the browser) is no failure: one line at info, no traceback.
    """
    await response.prepare(request)
    try:
        async for text in chunks:
            await response.write(text.encode("utf-8"))
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and (request.transport is None or request.transport.is_closing()):
            log.info("export stopped: the client closed the connection")
            return response
        log.exception("export failed; the connection is aborted so the client sees an incomplete body")
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
