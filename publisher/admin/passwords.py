"""Operator passwords: the policy, and Argon2id hashes (argon2-cffi's defaults, RFC 9106's
second recommended set: 64 MiB, 3 passes, 4 lanes).

A sign-in for an unknown address verifies against a dummy hash made with the same
parameters, so the answer takes as long as a wrong password's: the timing does not tell
which addresses have accounts.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from publisher.admin.model import OperatorError

MIN_LENGTH = 12
# Hashing is deliberately slow; a megabyte of "password" must not make it slower still.
MAX_LENGTH = 1024

_HASHER = PasswordHasher()


def check_policy(password: str) -> None:
    """Raise OperatorError saying what is wrong with ``password`` as a new password."""
    if len(password) < MIN_LENGTH:
        raise OperatorError(f"the password must have at least {MIN_LENGTH} characters (it has {len(password)})")
    if len(password) > MAX_LENGTH:
        raise OperatorError(f"the password must have at most {MAX_LENGTH} characters")
    if not password.strip():
        raise OperatorError("the password must not be only spaces")


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (a new random salt each time), as its encoded string."""
    return _HASHER.hash(password)


def verify(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; a hash that can't be read counts as no match."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a hash was made with weaker parameters than today's (rehashed at the next sign-in)."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def verify_nobody(password: str) -> None:
    """Spend a verification's time for an address with no account (see the module docstring)."""
    verify(_dummy_hash(), password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _HASHER.hash("no operator has this password")
