"""The link-signing key and the tokens it signs."""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat
from pathlib import Path

import pytest
from itsdangerous import Signer

import subscribers.tokens as module
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


def test_a_token_is_what_itsdangerous_signs_so_old_links_keep_working() -> None:
    """The purposes that never expire are signed without itsdangerous (a keyed HMAC copied
    per token): the tokens must stay byte for byte those of its Signer, links in digests
    already sent included."""
    tokens = Tokens("k")
    for purpose in (Purpose.UNSUBSCRIBE, Purpose.PREFERENCES):
        key = hmac.new(b"k", f"publisher.{purpose}".encode(), hashlib.sha256).digest()
        expected = Signer(key, key_derivation="none", digest_method=hashlib.sha256).sign("42.ab12cd34ef56ab78")
        assert tokens._sign(purpose, b"42.ab12cd34ef56ab78") == expected.decode("ascii")
        assert tokens.make(purpose, 42, "ann@example.org") == tokens.make(purpose, 42, "ann@example.org")


def test_a_message_links_hash_the_address_once(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []
    real = module.fingerprint
    monkeypatch.setattr(module, "fingerprint", lambda email: hashed.append(email) or real(email))
    tokens = Tokens("k")
    unsubscribe, preferences = tokens.links(
        "https://x.example/", 7, "ann@example.org", Purpose.UNSUBSCRIBE, Purpose.PREFERENCES
    )
    assert hashed == ["ann@example.org"]
    assert unsubscribe == tokens.link("https://x.example/", Purpose.UNSUBSCRIBE, 7, "ann@example.org")
    assert preferences == tokens.link("https://x.example/", Purpose.PREFERENCES, 7, "ann@example.org")
    assert tokens.read(Purpose.PREFERENCES, preferences.rsplit("/", 1)[1]).subscriber_id == 7
