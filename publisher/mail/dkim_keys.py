"""DKIM keys: made, read, written and published, for the signer in :mod:`publisher.mail.dkim`.

Reading ``[dkim] key_file`` checks the key there and then, so a missing, unreadable or
malformed key stops a delivery run with an error naming the file and the reason
(never the key's content); ``publisher dkim keygen`` makes a key, writes it and
prints the DNS TXT record to publish.  The signer only signs: where keys come from
and how they are published is this module's job.

A key on disk is a secret that signs mail as the domain: a new key file is created
new (an existing file, perhaps the key in use, is never overwritten), readable by its
owner only whatever the umask, and removed again if writing it fails, so no
half-written key is left for a later ``[dkim] key_file`` to trip over.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

log = logging.getLogger(__name__)

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
KeyType = Literal["rsa", "ed25519"]
MIN_RSA_BITS = 1024  # RFC 8301: verifiers ignore shorter keys
RECOMMENDED_RSA_BITS = 2048
MAX_RSA_BITS = 4096  # RFC 8301: verifiers need not handle longer ones
TXT_STRING_MAX = 255  # bytes per DNS TXT character-string
# Why the key file can't be read, in the words of what the operator should do.
_UNREADABLE: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "no such file (create one with `publisher dkim keygen`)"),
    (IsADirectoryError, "is a directory, not a key file"),
    (PermissionError, "not readable by this user (permission denied)"),
)


class DkimError(ValueError):
    """The DKIM settings can't be used (a bad selector or domain, a bad key)."""


class DkimKeyError(DkimError):
    """The private key file is missing, unreadable or not a usable key.

    The message names the file and the reason, never the key's content.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"DKIM key file {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


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


def load_private_key(path: Path) -> PrivateKey:
    """The RSA or Ed25519 private key in ``path`` (PEM; or for Ed25519 the base64 seed dkimpy's dknewkey writes).

    Raises :class:`DkimKeyError` naming the file and the reason.  Warns when other
    users may read the file.
    """
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        why = next((reason for kind, reason in _UNREADABLE if isinstance(exc, kind)), None)
        raise DkimKeyError(path, why or f"can't be read ({exc.strerror or type(exc).__name__})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("DKIM key file %s can be read by other users (mode %o): chmod 600 it", path, mode & 0o777)
    key = _parse_key(path, data)
    del data
    return key


def _parse_key(path: Path, data: bytes) -> PrivateKey:
    stripped = data.strip()
    if not stripped:
        raise DkimKeyError(path, "the file is empty")
    if b"-----BEGIN" not in stripped:
        seed = _base64_seed(stripped)
        if seed is None:
            raise DkimKeyError(path, "not a PEM private key (no -----BEGIN line)")
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    if b"PUBLIC KEY-----" in stripped and b"PRIVATE KEY-----" not in stripped:
        raise DkimKeyError(path, "holds a public key; [dkim] key_file must be the private key")
    try:
        key = serialization.load_pem_private_key(stripped, password=None)
    except TypeError:
        raise DkimKeyError(path, "the key is encrypted with a passphrase; store it unencrypted, mode 0600") from None
    except UnsupportedAlgorithm:
        raise DkimKeyError(path, "unsupported key algorithm; DKIM keys are RSA or Ed25519") from None
    except ValueError:
        # cryptography's message says nothing more; never echo the data.
        raise DkimKeyError(path, "not a valid PEM private key (damaged or truncated?)") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise DkimKeyError(path, too_short(key.key_size))
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise DkimKeyError(path, f"holds {_kind_of_key(key)} key; DKIM keys are RSA or Ed25519")


def _kind_of_key(key: object) -> str:
    """A key DKIM can't use, named for the error message."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "an ECDSA"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448"
    # By name: since cryptography 51 any use of its DSA classes, even in an isinstance
    # check, prints a deprecation warning in every process that imports this module.
    if type(key).__name__ == "DSAPrivateKey":
        return "a DSA"
    return "an unsupported"


def too_short(bits: int) -> str:
    """Why an RSA key of ``bits`` bits can't sign (the signer says it too)."""
    return (f"a {bits}-bit RSA key is too short: receivers ignore DKIM keys under {MIN_RSA_BITS} bits "
            f"(RFC 8301); use {RECOMMENDED_RSA_BITS}")


def _base64_seed(text: bytes) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def generate_key(key_type: KeyType = "rsa", bits: int = RECOMMENDED_RSA_BITS) -> PrivateKey:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise DkimError(f"RSA DKIM keys have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the file's mode protects it)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def dns_txt_value(key: PrivateKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> str:
    """``v=DKIM1; k=rsa; p=…`` (SubjectPublicKeyInfo, as opendkim publishes) or ``k=ed25519`` (RFC 8463)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) else key
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def txt_strings(value: str) -> list[str]:
    """``value`` cut into DNS character-strings of at most 255 bytes (receivers join them)."""
    return [value[i:i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)] or [""]


def zone_line(selector: str, domain: str, value: str) -> str:
    """The record as a zone-file line: ``sel._domainkey.example.org. TXT "…" "…"``."""
    quoted = " ".join(f'"{part}"' for part in txt_strings(value))
    return f"{selector}._domainkey.{domain}. TXT {quoted}"
