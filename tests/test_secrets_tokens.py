"""The link-signing key and the tokens it signs."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from publisher.secrets import load_secret_key
from subscribers.tokens import InvalidToken, Purpose, Tokens


def test_environment_key_wins(tmp_path: Path) -> None:
    assert load_secret_key(tmp_path, {"PUBLISHER_SECRET_KEY": "from-env"}) == "from-env"
    assert not (tmp_path / "secret_key").exists()


def test_generated_key_is_kept_private_and_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        first = load_secret_key(tmp_path / "data", {})
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 40
    assert "PUBLISHER_SECRET_KEY is not set" in caplog.text
    assert load_secret_key(tmp_path / "data", {}) == first


def test_tokens_round_trip_and_hold_no_address() -> None:
    tokens = Tokens("k")
    token = tokens.make(Purpose.UNSUBSCRIBE, 42)
    assert tokens.read(Purpose.UNSUBSCRIBE, token) == 42
    assert "@" not in token
    assert tokens.link("https://x.example/", Purpose.PREFERENCES, 7).startswith("https://x.example/preferences/")


def test_tampered_wrong_purpose_other_key_and_expired_tokens_are_refused() -> None:
    tokens = Tokens("k")
    token = tokens.make(Purpose.UNSUBSCRIBE, 42)
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.UNSUBSCRIBE, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.PREFERENCES, token)
    with pytest.raises(InvalidToken):
        Tokens("other").read(Purpose.UNSUBSCRIBE, token)
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.UNSUBSCRIBE, token, max_age=-1)
