"""Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), as every
authenticator app speaks them.

Written over ``hmac`` rather than taken from pyotp: the sign-in must know *which* time
step a code matched, to refuse a code already used (pyotp's ``verify`` answers only yes
or no), and the rest is a dozen lines.  Tested against RFC 6238's own test vectors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from datetime import datetime
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
# A code of the step before or after the current one is accepted too: the phone's clock
# may be a little off, and typing takes a while.
DRIFT_STEPS = 1


def new_secret() -> str:
    """A random 160-bit key, base32 without padding (what apps take typed in or from a QR code)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def step_at(when: datetime) -> int:
    return int(when.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int, digits: int = DIGITS) -> str:
    """The code of time step ``step`` (RFC 4226's HOTP with the step as the counter)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def matching_step(secret: str, code: str, when: datetime, last_used: int | None) -> int | None:
    """The time step ``code`` is the code of, within the drift around ``when``; None if none.

    A step at or before ``last_used`` (the last accepted one) never matches: a code seen
    over a shoulder or in a proxy's log can't be used again within its window.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = step_at(when)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # Every candidate is compared (no early exit), in constant time.
        if hmac.compare_digest(code_at(secret, step), code) and (last_used is None or step > last_used):
            found = step
    return found


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (Google's key URI format)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP_SECONDS})
    return f"otpauth://totp/{label}?{query}"
