"""The key that signs links in emails.

It comes from ``PUBLISHER_SECRET_KEY``.  When that is unset, a random key is made
once and kept in the data directory (mode 0600) so links stay valid across restarts;
a warning says so, because several nodes or a restored backup need the same key.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

ENV_NAME = "PUBLISHER_SECRET_KEY"
log = logging.getLogger(__name__)


def load_secret_key(data_dir: Path, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get(ENV_NAME):
        return env[ENV_NAME]
    path = data_dir / "secret_key"
    if path.exists():
        key = path.read_text(encoding="ascii").strip()
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
    log.warning("%s is not set; signing links with the generated key in %s", ENV_NAME, path)
    return key
