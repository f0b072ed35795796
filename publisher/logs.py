"""Log lines for people (text) or for log shippers (JSON), each tagged with its digest.

``configure`` installs one handler on the root logger.  Every record logged while a
digest is in hand carries that digest's id: :func:`digest_context` sets the
``current_digest`` context variable, and the handler's filter copies it onto the
record.  asyncio copies the context into each task when the task is created, so a
digest set inside one task never shows on another task's lines.

Text: ``2026-01-05 08:00:01,234 WARNING publisher.delivery: ... [digest=<id>]``.
JSON: one object per line with ``ts`` (UTC, milliseconds), ``level``, ``logger``,
``message``, ``digest`` (when in context), ``exc`` (a traceback) and whatever the
caller passed as ``extra=``.

Python warnings (a dependency's deprecation notice) are log records too, on the
``py.warnings`` logger, one line each: :func:`capture_warnings` routes them here, so
they never reach a terminal or a JSON log stream as raw text.

Only what the code logs is written: nothing here reads or prints the config.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

current_digest: ContextVar[str | None] = ContextVar("current_digest", default=None)

_warnings_log = logging.getLogger("py.warnings")
# Warnings raised before :func:`configure` chose the format (while the command's
# modules are imported): held, then logged by ``configure`` in the chosen format.
_held_warnings: list[logging.LogRecord] = []

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "digest",
}


def first_line(exc: BaseException) -> str:
    """The exception's class and the first line of its message (SQLAlchemy appends SQL and links)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > 200:
        message = message[:200] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@contextmanager
def digest_context(digest_id: str | None) -> Iterator[None]:
    """Tag every line logged in this block (in this task or thread) with ``digest_id``.

    ``None`` clears the tag, for lines about the whole run logged inside a digest's block.
    """
    token = current_digest.set(digest_id)
    try:
        yield
    finally:
        current_digest.reset(token)


def capture_warnings() -> None:
    """Log every Python warning on ``py.warnings`` as one line instead of printing it.

    Call it first thing in an entry point, before importing what may warn: a warning
    that comes before :func:`configure` is held until then (or, when a command exits
    before setting logging up, e.g. ``--help``, logged as text at exit).
    """
    warnings.showwarning = _log_warning
    atexit.unregister(_release_held_warnings)  # once, however often this is called
    atexit.register(_release_held_warnings)


def _log_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: TextIO | None = None, line: str | None = None,
) -> None:
    text = f"{category.__name__}: {message} ({filename}:{lineno})"
    if any(isinstance(h, _StderrHandler | _Handler) for h in logging.getLogger().handlers):
        _warnings_log.warning(text)
    else:
        _held_warnings.append(
            _warnings_log.makeRecord(_warnings_log.name, logging.WARNING, filename, lineno, text, None, None)
        )


def _release_held_warnings() -> None:
    if _held_warnings:
        configure("WARNING", "text", force=False)
        _log_held_warnings()


def _log_held_warnings() -> None:
    while _held_warnings:
        _warnings_log.handle(_held_warnings.pop(0))


class DigestFilter(logging.Filter):
    """Copy the digest in context onto the record as ``record.digest`` (``None`` if none).

    An explicit ``extra={"digest": ...}`` from the caller wins over the context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "digest"):
            record.digest = current_digest.get()
        return True


class TextFormatter(logging.Formatter):
    """The classic one-line format, plus `` [digest=<id>]`` when a digest is in context."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        digest = getattr(record, "digest", None)
        return f"{line} [digest={digest}]" if digest else line


class JsonFormatter(logging.Formatter):
    """Exactly one JSON object per line (ASCII, so valid whatever the stream's encoding)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        digest = getattr(record, "digest", None)
        if digest:
            payload["digest"] = digest
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        extra = {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS and not k.startswith("_")}
        for key, value in extra.items():
            payload.setdefault(key, value)  # the fields above keep their meaning
        try:
            return json.dumps(payload, default=str)
        except (TypeError, ValueError):  # e.g. a circular structure passed in ``extra``
            return json.dumps({k: v if k not in extra else repr(v) for k, v in payload.items()}, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    So lines go through rich's redirection while a progress bar is shown, and to
    click's test runner when a test swaps stderr.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


class _Handler(logging.StreamHandler[TextIO]):
    """A handler on a given stream."""


def configure(
    level: str | int = "INFO", fmt: LogFormat = "text", stream: TextIO | None = None, *, force: bool = True
) -> logging.Handler | None:
    """Send every log record at ``level`` or above to ``stream`` (default: standard error,
    whatever ``sys.stderr`` is when a record comes) as ``fmt`` lines.

    Calling it again replaces the handler it installed before; handlers that other code
    added to the root logger stay.  With ``force=False``, like ``logging.basicConfig``,
    it changes nothing when such handlers exist (an application that runs the CLI
    in-process, or pytest, has set logging up its own way) and returns None.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}: use 'text' or 'json'")
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _StderrHandler | _Handler)]
    if not force and len(ours) < len(root.handlers):
        return None
    handler: logging.StreamHandler[TextIO] = _StderrHandler() if stream is None else _Handler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(DigestFilter())
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    _log_held_warnings()
    return handler
