"""Writing a new DKIM private key to a file of its own (``publisher dkim keygen``).

A key on disk is a secret that signs mail as the domain: the file is created new
(an existing file, perhaps the key in use, is never overwritten), readable by its
owner only whatever the umask, and removed again if writing it fails, so no
half-written key is left for a later ``[dkim] key_file`` to trip over.  Kept next to
:mod:`publisher.mail.dkim` rather than in it: that module signs messages and reads
keys, and a command writing one is the only place a key is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from publisher.mail.dkim import DkimError, PrivateKey, private_key_pem


class KeyFileError(DkimError):
    """The key file could not be created or written (the message says which, and why)."""


def write_private_key(path: Path, key: PrivateKey) -> Path:
    """Write ``key`` (PKCS#8 PEM) to the new file ``path`` with mode 0600; its absolute path.

    Raises :class:`FileExistsError` if ``path`` exists (nothing is touched), and
    :class:`KeyFileError` if it can't be created or written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise
    except OSError as exc:
        raise KeyFileError(f"can't create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), 0o600)  # whatever the umask
            stream.write(private_key_pem(key))
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise KeyFileError(f"can't write {path}: {exc.strerror}") from None
    return path.resolve()
