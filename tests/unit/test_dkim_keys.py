"""Writing a new DKIM key file: new only, owner-only, nothing half-written left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from publisher.mail import dkim_keys
from publisher.mail.dkim_keys import KeyFileError, write_private_key


@pytest.fixture(scope="module")
def key() -> dkim_keys.PrivateKey:
    return dkim_keys.generate_key("ed25519")


def test_the_key_is_written_owner_only_whatever_the_umask(tmp_path: Path, key: dkim_keys.PrivateKey) -> None:
    old = os.umask(0)
    try:
        written = write_private_key(tmp_path / "k.pem", key)
    finally:
        os.umask(old)
    assert written == (tmp_path / "k.pem").resolve() and written.is_absolute()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert dkim_keys.load_private_key(written).public_key().public_bytes_raw() == key.public_key().public_bytes_raw()


def test_an_existing_file_is_never_overwritten(tmp_path: Path, key: dkim_keys.PrivateKey) -> None:
    existing = tmp_path / "k.pem"
    existing.write_text("the key in use")
    with pytest.raises(FileExistsError):
        write_private_key(existing, key)
    assert existing.read_text() == "the key in use"


def test_a_file_that_cannot_be_created_says_why(tmp_path: Path, key: dkim_keys.PrivateKey) -> None:
    with pytest.raises(KeyFileError, match=r"^can't create .*missing/k\.pem: No such file or directory$"):
        write_private_key(tmp_path / "missing" / "k.pem", key)
