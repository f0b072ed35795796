"""The link-signing key and the tokens it signs."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from publisher.secrets import load_secret_key
from subscribers.tokens import ExpiredToken, InvalidToken, Purpose, Tokens


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
    token = tokens.make(Purpose.UNSUBSCRIBE, 42, "ann@example.org")
    claim = tokens.read(Purpose.UNSUBSCRIBE, token)
    assert claim.subscriber_id == 42
    assert claim.matches("ann@example.org") and not claim.matches("bob@example.org")
    subscriber_id, print_, _ = token.split(".")  # id, address fingerprint, signature
    assert (subscriber_id, len(print_)) == ("42", 16)
    assert "ann" not in token.lower() and "example" not in token.lower()
    link = tokens.link("https://x.example/", Purpose.PREFERENCES, 7, "ann@example.org")
    assert link.startswith("https://x.example/preferences/")


def test_tampered_wrong_purpose_and_other_key_tokens_are_refused() -> None:
    tokens = Tokens("k")
    token = tokens.make(Purpose.UNSUBSCRIBE, 42, "ann@example.org")
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.UNSUBSCRIBE, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    for purpose in (Purpose.PREFERENCES, Purpose.CONFIRM):
        with pytest.raises(InvalidToken):
            tokens.read(purpose, token)
    with pytest.raises(InvalidToken):
        Tokens("other").read(Purpose.UNSUBSCRIBE, token)
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.UNSUBSCRIBE, "not-a-token")


def test_an_expired_token_still_says_whose_it_was() -> None:
    tokens = Tokens("k")
    token = tokens.make(Purpose.CONFIRM, 42, "ann@example.org")
    assert tokens.read(Purpose.CONFIRM, token, max_age=3600).subscriber_id == 42
    with pytest.raises(ExpiredToken) as expired:
        tokens.read(Purpose.CONFIRM, token, max_age=-1)
    assert expired.value.claim.subscriber_id == 42
    # A tampered token is refused as such, even when it would also be too old.
    with pytest.raises(InvalidToken) as tampered:
        tokens.read(Purpose.CONFIRM, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), max_age=-1)
    assert not isinstance(tampered.value, ExpiredToken)
