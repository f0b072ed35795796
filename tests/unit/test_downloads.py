"""A streamed download (publisher.web.downloads): a failure half-way aborts the connection and
is logged as an error; a client that hangs up half-way (a download cancelled in the browser) is
no failure: no error, no traceback, nothing aborted."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from publisher.web.downloads import stream_download


class Transport:
    def __init__(self, closing: bool) -> None:
        self.closing, self.aborted = closing, False

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = True


class Response:
    """Takes the first chunk, then fails the next write with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error, self.written, self.ended = error, [], False

    async def prepare(self, request: Any) -> None:
        pass

    async def write(self, data: bytes) -> None:
        if self.written:
            raise self.error
        self.written.append(data)

    async def write_eof(self) -> None:
        self.ended = True


class Request:
    def __init__(self, closing: bool) -> None:
        self.transport = Transport(closing)


async def rows() -> AsyncIterator[str]:
    for n in range(3):
        yield f"reader{n}@example.org\n"


@pytest.mark.parametrize(("error", "closing", "failed"), [
    (ConnectionResetError("Cannot write to closing transport"), True, False),  # the client hung up
    (ConnectionResetError("reset by the database"), False, True),  # ours: the connection is still open
    (RuntimeError("the store went away"), False, True),
])
async def test_a_hang_up_is_no_failure_but_a_failure_aborts(
    error: Exception, closing: bool, failed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    request, response = Request(closing), Response(error)
    with caplog.at_level(logging.INFO, logger="publisher.web.downloads"):
        await stream_download(request, response, rows())  # type: ignore[arg-type]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert bool(errors) is failed and request.transport.aborted is failed and not response.ended
