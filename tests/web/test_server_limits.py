"""The daemon's listener against clients that hold connections: slow headers, floods.

Raw sockets against the daemon's own runner (``create_runner``), as a slowloris
client would use them; short limits from the config keep the tests quick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from publisher.app import Publisher
from publisher.config import Settings
from publisher.web.server import create_runner

WITHIN = 10.0  # seconds a test waits for the server before calling it hung


@asynccontextmanager
async def listening(settings: Settings) -> AsyncIterator[int]:
    """The daemon's runner on a free local port; yields the port."""
    publisher = Publisher(settings)
    await publisher.start()
    runner = create_runner(publisher)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
        await publisher.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), WITHIN)


async def get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    answer = await closed_by_server(reader)
    writer.close()
    return answer


async def test_a_client_trickling_its_request_headers_is_cut_off_after_idle_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    async with listening(make_settings("[server]\nidle_timeout = 1\n")) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET /healthz HT")  # half a request line ...

        async def trickle() -> None:  # ... then a byte now and then, as slowloris does
            for byte in b"TP/1.1\r\nX-a: b\r\nX-c: d":
                await asyncio.sleep(0.2)
                writer.write(bytes([byte]))

        trickling = asyncio.create_task(trickle())
        assert await closed_by_server(reader) == b""
        elapsed = time.monotonic() - started
        trickling.cancel()
        writer.close()
        assert 0.9 <= elapsed < 3, elapsed  # the bytes sent meanwhile did not extend it
        assert (await get(port, "/healthz")).startswith(b"HTTP/1.1 200 ")


async def test_past_max_connections_new_ones_get_503_and_the_server_keeps_answering(
    make_settings: Callable[..., Settings],
) -> None:
    async with listening(make_settings("[server]\nidle_timeout = 1\nmax_connections = 2\n")) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, writer in held:
            writer.write(b"GET /heal")  # two slow clients fill the listener
        # The answer comes before any request is read (a client that sent one at once
        # may see a reset instead: the request was never read).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await closed_by_server(reader)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: " in refused
        head, _, body = refused.partition(b"\r\n\r\n")
        assert f"Content-Length: {len(body)}\r\n".encode() in head + b"\r\n"
        # The slow clients are cut off after idle_timeout; then people get in again.
        for reader, writer in held:
            assert await closed_by_server(reader) == b""
            writer.close()
        assert (await get(port, "/healthz")).startswith(b"HTTP/1.1 200 ")


async def test_a_malformed_request_gets_400_and_one_log_line_without_traceback(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    async with listening(make_settings()) as port:
        for request in (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status_line = (await closed_by_server(reader)).split(b"\r\n")[0]
            assert status_line.endswith(b" 400 Bad Request"), status_line
            writer.close()
    logged = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.INFO]
    assert len(logged) == 2
    for record in logged:
        line = caplog.handler.format(record)
        assert "\n" not in line and "Traceback" not in line
        assert record.exc_info is None
        assert record.levelno == logging.INFO
        assert "127.0.0.1: 400 " in record.getMessage()  # who, and why


async def test_a_form_body_that_stops_arriving_gets_408_after_idle_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    async with listening(make_settings("[server]\nidle_timeout = 1\n")) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /subscribe HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nemail=ann"
        )
        started = time.monotonic()
        # (aiohttp then reads what may still come for its lingering_time, and closes)
        status_line = await asyncio.wait_for(reader.readline(), WITHIN)
        writer.close()
        assert status_line.endswith(b" 408 Request Timeout\r\n"), status_line
        assert time.monotonic() - started < 3
        assert (await get(port, "/healthz")).startswith(b"HTTP/1.1 200 ")
