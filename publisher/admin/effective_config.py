"""The settings as the process loaded them, every key with its value, secrets masked.

For the dashboard's settings page.  What is masked follows rules, not a list of keys,
so a key added to the config later is covered without anyone remembering this page:

* a value of pydantic's secret types (``SecretStr``, ``SecretBytes``);
* the value of a key (or of a table's entry) whose name has a word of
  :data:`SECRET_WORDS` ("smtp_password", "api-token", "signing_key"), unless the name
  ends in one of :data:`REFERENCE_SUFFIXES`: such a key names where a secret is kept (an
  environment variable, a file), which the operator needs to see, and the page never
  reads what is there;
* in every URL within a value, the password of its userinfo and every query value (``postgresql+asyncpg://app:…@db/news``, ``https://hooks.example/x?token=…``);
* anywhere in any value, each of the secrets in use (``known``: the API token, the
  link-signing key, the SMTP and webhook secrets): a secret pasted by mistake into a
  description is masked too.

Pure: settings and the secrets' values in, rows of text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretBytes, SecretStr

MASK = "•••••• (hidden)"
URL_MASK = "•••"  # the same, inside a URL (shorter, and a URL keeps its shape)
SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "pass", "pwd", "secret", "secrets", "token", "tokens", "key", "keys",
    "apikey", "credential", "credentials", "private", "auth", "authorization", "cookie", "signature", "dsn",
})
REFERENCE_SUFFIXES = ("_env", "_file", "_path", "_dir", "_var")
# A secret shorter than this is not searched for inside other values (it would mask
# innocent text, and a secret that short protects nothing anyway).
MIN_KNOWN_LENGTH = 6
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ConfigSection:
    """One top-level key of the config (``[smtp]``, ``[[webhooks]]``): its keys, dotted below it."""

    name: str
    rows: list[tuple[str, str]]


def secret_name(name: str) -> bool:
    """Whether a key called ``name`` holds a secret by its name (see the module docstring)."""
    lowered = name.lower()
    if lowered.endswith(REFERENCE_SUFFIXES):
        return False
    return any(word.lower() in SECRET_WORDS for word in _WORDS.findall(name))


def masked_urls(text: str) -> str:
    """``text`` with every URL in it masked as :func:`masked_url` does (an error message
    may quote the URL it failed on)."""
    return _URL_IN_TEXT.sub(lambda found: masked_url(found.group(0)), text)


def masked_url(text: str) -> str:
    """``text`` with its userinfo's password and its query values masked, if it is a URL."""
    if not _URL.match(text):
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # not a URL after all (a bad port): shown whole but for what `known` masks
        return text
    netloc = parts.netloc
    if parts.password is not None or "@" in netloc:
        user = parts.username or ""
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{user}:{URL_MASK}@{host}" if parts.password is not None else f"{URL_MASK}@{host}"
        netloc += f":{port}" if port is not None else ""
    query = "&".join(f"{piece.partition('=')[0]}={URL_MASK}" for piece in parts.query.split("&") if piece)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def effective_config(settings: BaseModel, known: Iterable[str] = ()) -> list[ConfigSection]:
    """Every top-level key of ``settings`` as a section of (dotted key, shown value) rows,
    defaults included, in the schema's order; fields excluded from dumps are left out."""
    secrets = sorted({value for value in known if len(value) >= MIN_KNOWN_LENGTH}, key=len, reverse=True)
    sections = []
    for name, field in type(settings).model_fields.items():
        if field.exclude:
            continue
        rows = list(_rows(name, getattr(settings, name), secret_name(name), secrets))
        sections.append(ConfigSection(name, [(key.partition(".")[2] or key, text) for key, text in rows]))
    return sections


def referenced_variables(settings: BaseModel) -> list[tuple[str, str]]:
    """(dotted key, variable name) of every key ending in ``_env`` that names one: where the
    config says a secret is kept (``smtp.password_env``, ``webhooks.0.secret_env``)."""
    return [(key, name) for key, name in _env_keys("", settings) if name]


def _env_keys(key: str, value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            if name.endswith("_env") and isinstance(item, str):
                yield f"{key}.{name}".lstrip("."), item
            elif not field.exclude:
                yield from _env_keys(f"{key}.{name}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _env_keys(f"{key}.{index}", item)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from _env_keys(f"{key}.{name}", item)


def _rows(key: str, value: object, secret: bool, known: list[str]) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            if not field.exclude:
                yield from _rows(f"{key}.{name}", getattr(value, name), secret or secret_name(name), known)
    elif isinstance(value, Mapping):
        if not value:
            yield key, "(none)"
        for name, item in value.items():
            yield from _rows(f"{key}.{name}", item, secret or secret_name(str(name)), known)
    elif isinstance(value, list | tuple | set | frozenset) and any(isinstance(item, BaseModel) for item in value):
        for index, item in enumerate(value):
            yield from _rows(f"{key}.{index}", item, secret, known)
    else:
        yield key, shown(value, secret, known)


def shown(value: object, secret: bool, known: Iterable[str] = ()) -> str:
    """One value as the page shows it: masked when secret (an empty secret says so)."""
    if isinstance(value, SecretStr | SecretBytes):
        return MASK if value.get_secret_value() else "(not set)"
    if secret and value not in (None, "", b""):
        return MASK
    text = _text(value)
    for item in known:
        text = text.replace(item, MASK)
    return text


def _text(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    if isinstance(value, time | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g} s"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return masked_urls(value) if value else "(empty)"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_text(item) for item in value) if value else "(none)"
    return str(value)
