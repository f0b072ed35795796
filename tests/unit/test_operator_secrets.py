"""Operator passwords (Argon2id, the policy) and TOTP codes (RFC 6238), without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from publisher.admin import passwords, totp
from publisher.admin.model import OperatorError, Role

# RFC 6238, appendix B: the SHA-1 key "12345678901234567890" (base32 below) and its 8-digit codes.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
               (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")]


@pytest.mark.parametrize(("seconds", "code"), RFC_VECTORS)
def test_codes_are_rfc_6238s(seconds: int, code: str) -> None:
    assert totp.code_at(RFC_SECRET, seconds // 30, digits=8) == code


def test_a_code_of_the_step_before_or_after_is_accepted_and_none_further() -> None:
    secret = totp.new_secret()
    now = datetime(2026, 12, 6, 12, 0, 15, tzinfo=UTC)
    step = totp.step_at(now)
    for drift in (-1, 0, 1):
        assert totp.matching_step(secret, totp.code_at(secret, step + drift), now, None) == step + drift
    for drift in (-3, -2, 2, 3):
        code = totp.code_at(secret, step + drift)
        if all(code != totp.code_at(secret, step + d) for d in (-1, 0, 1)):  # a 1-in-a-million clash
            assert totp.matching_step(secret, code, now, None) is None


def test_a_code_is_not_taken_again_nor_one_older_than_the_last_taken() -> None:
    secret = totp.new_secret()
    now = datetime(2026, 12, 6, 12, 0, 15, tzinfo=UTC)
    step = totp.step_at(now)
    assert totp.matching_step(secret, totp.code_at(secret, step), now, last_used=step) is None
    assert totp.matching_step(secret, totp.code_at(secret, step - 1), now, last_used=step) is None
    assert totp.matching_step(secret, totp.code_at(secret, step + 1), now, last_used=step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_what_is_not_six_digits_matches_nothing(code: str) -> None:
    assert totp.matching_step(RFC_SECRET, code, datetime.now(UTC), None) is None


def test_the_provisioning_uri_names_the_account_the_issuer_and_the_secret() -> None:
    uri = totp.provisioning_uri("ABCDEF", "ann@example.org", "Test Brief")
    assert uri.startswith("otpauth://totp/Test%20Brief:ann@example.org?")
    assert "secret=ABCDEF" in uri and "issuer=Test+Brief" in uri and "period=30" in uri


def test_passwords_are_argon2id_salted_and_verified() -> None:
    first, second = passwords.hash_password("correct horse battery"), passwords.hash_password("correct horse battery")
    assert first.startswith("$argon2id$") and first != second
    assert passwords.verify(first, "correct horse battery")
    assert not passwords.verify(first, "correct horse batterY")
    assert not passwords.verify("not a hash", "correct horse battery")
    passwords.verify_nobody("anything")  # spends the time, raises nothing


@pytest.mark.parametrize(("password", "says"), [
    ("short", "at least 12 characters (it has 5)"), (" " * 12, "only spaces"), ("x" * 2000, "at most 1024"),
])
def test_the_policy_says_what_is_wrong(password: str, says: str) -> None:
    with pytest.raises(OperatorError, match=says.replace("(", r"\(").replace(")", r"\)")):
        passwords.check_policy(password)


def test_each_role_may_do_what_the_ones_below_it_may() -> None:
    assert Role.ADMIN.allows(Role.EDITOR) and Role.EDITOR.allows(Role.VIEWER) and Role.VIEWER.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.EDITOR) and not Role.EDITOR.allows(Role.ADMIN)
