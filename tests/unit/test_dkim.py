"""DKIM signing: every signature is checked by dkimpy, the reference implementation.

The messages are real digests (``build_message``); the public key is served to
dkimpy through ``dnsfunc`` exactly as it would be published in DNS.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import os
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.canonicalization import Relaxed
from dkim.util import parse_tag_value
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.cli import main
from publisher.config import DeliverySettings, DkimSettings, Settings, SiteSettings
from publisher.mail import dkim as dk
from publisher.mail import dkim_keys
from publisher.mail.dkim import DkimSigner
from publisher.mail.dkim_keys import DkimError, DkimKeyError
from publisher.mail.message import build_message, build_notice
from publisher.mail.render import Personal, RenderedDigest, render_digest
from publisher.templating import make_environment
from tests.support.articles import seed_like

SELECTOR = "news2025"
DOMAIN = "news.example.org"
WHEN = datetime(2024, 6, 20, 8, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://news.example.org/unsubscribe/tok.en?a=1&b=2"
SETTINGS = Settings(
    site=SiteSettings(title="Nachrichten: Größe", url="https://news.example.org/", postal_address="1 Example Street"),
    delivery=DeliverySettings(from_address="newsletter@news.example.org", from_name="Größe News"),
)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def rendered() -> RenderedDigest:
    return render_digest([seed_like()], SETTINGS, make_environment(), "daily-20240620T080000-3fa2c1", "daily")


@pytest.fixture(scope="module")
def raw(rendered: RenderedDigest) -> bytes:
    who = Personal(name="Zoë Ünïcode", email="zoe@example.com", unsubscribe_url=UNSUBSCRIBE,
                   preferences_url="https://news.example.org/preferences/tok.en")
    return build_message(rendered, who, settings=SETTINGS, digest_id="daily-20240620T080000-3fa2c1",
                         subscriber_id=42, date=WHEN)


def dns_for(record: str, selector: str = SELECTOR, domain: str = DOMAIN) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` that serves ``record`` at ``selector._domainkey.domain`` only."""
    name = f"{selector}._domainkey.{domain}.".encode()

    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return record.encode() if qname == name else None

    return lookup


def verifies(message: bytes, record: str) -> bool:
    return bool(dkim.verify(message, dnsfunc=dns_for(record), logger=logging.getLogger("dkimpy")))


def signature_tags(signed: bytes) -> dict[bytes, bytes]:
    head = signed.split(b"\r\n\r\n", 1)[0]
    field = re.match(rb"DKIM-Signature:(.*?)\r\n(?=\S)", head, re.DOTALL)
    assert field, "the DKIM-Signature header comes first"
    return parse_tag_value(re.sub(rb"\r\n[ \t]", b" ", field.group(1)))


def signed_names(signed: bytes) -> list[bytes]:
    return re.split(rb"\s*:\s*", signature_tags(signed)[b"h"])


def replace_header(message: bytes, name: bytes, value: bytes) -> bytes:
    """``message`` with the (possibly folded) header ``name`` given ``value``."""
    pattern = re.compile(rb"^" + re.escape(name) + rb":.*?\r\n(?![ \t])", re.MULTILINE | re.DOTALL)
    assert pattern.search(message), name
    return pattern.sub(lambda _m: name + b": " + value + b"\r\n", message, count=1)


@pytest.fixture(params=["rsa", "ed25519"])
def signer(request: pytest.FixtureRequest, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey) -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, rsa_key if request.param == "rsa" else ed_key)


# --- signatures that verify ------------------------------------------------------------


def test_signed_digest_verifies_with_dkimpy(signer: DkimSigner, raw: bytes) -> None:
    signed = signer.sign(raw)
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(raw), "the message itself is unchanged, the header is prepended"
    assert verifies(signed, signer.dns_record())


def test_signature_tags(signer: DkimSigner, raw: bytes) -> None:
    tags = signature_tags(signer.sign(raw, timestamp=1718870400))
    assert tags[b"v"] == b"1"
    assert tags[b"a"] == (b"rsa-sha256" if signer.key_type == "rsa" else b"ed25519-sha256")
    assert tags[b"c"] == b"relaxed/relaxed"
    assert (tags[b"d"], tags[b"s"], tags[b"t"]) == (DOMAIN.encode(), SELECTOR.encode(), b"1718870400")
    assert b"l" not in tags, "no body length limit: nothing may be appended under the signature"
    names = [n.decode() for n in re.split(rb"\s*:\s*", tags[b"h"])]
    expected = ["from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
                "list-unsubscribe", "list-unsubscribe-post"]
    # every present header once, plus once more (over-signing): an added copy breaks the signature
    assert names == [name for name in expected for _ in range(2)]


def test_only_present_headers_are_signed_and_reply_to_when_there(signer: DkimSigner, raw: bytes) -> None:
    without_post = re.sub(rb"List-Unsubscribe-Post: [^\r]*\r\n", b"", raw)
    names = signed_names(signer.sign(without_post))
    assert b"list-unsubscribe-post" not in names and b"reply-to" not in names
    with_reply_to = raw.replace(b"\r\nTo: ", b"\r\nReply-To: editors@news.example.org\r\nTo: ", 1)
    signed = signer.sign(with_reply_to)
    assert signed_names(signed).count(b"reply-to") == 2
    assert verifies(signed, signer.dns_record())


def test_transactional_notice_verifies(signer: DkimSigner) -> None:
    notice = build_notice(settings=SETTINGS, to_name="Zoë", to_email="zoe@example.com", subject="Confirm",
                          html="<p>Hi</p>", text="Hi\n", date=WHEN)
    signed = signer.sign(notice)
    assert b"auto-submitted" in signed_names(signed)
    assert verifies(signed, signer.dns_record())


def test_relaxed_canonicalization_survives_refolding_and_trailing_spaces(signer: DkimSigner, raw: bytes) -> None:
    """What relays commonly do to whitespace must not break the signature (relaxed/relaxed)."""
    signed = signer.sign(raw)
    head, body = signed.split(b"\r\n\r\n", 1)
    subject = email.message_from_bytes(raw, policy=email.policy.SMTP)["Subject"]
    refolded = replace_header(head + b"\r\n", b"Subject", b"  " + str(subject).encode().replace(b" ", b"\r\n\t ", 1))
    respaced = body.replace(b"\r\n", b"  \r\n", 5).replace(b" ", b"\t", 3)
    assert verifies(refolded + b"\r\n" + respaced + b"\r\n\r\n", signer.dns_record())


# --- signatures that must fail -----------------------------------------------------------


def test_tampered_body_fails(signer: DkimSigner, raw: bytes) -> None:
    signed = signer.sign(raw)
    head, body = signed.split(b"\r\n\r\n", 1)
    assert b"Zo=C3=AB" in body
    assert not verifies(head + b"\r\n\r\n" + body.replace(b"Zo=C3=AB", b"Zoe", 1), signer.dns_record())
    assert not verifies(signed + b"P.S. an appended line\r\n", signer.dns_record())


@pytest.mark.parametrize(("name", "value"), [
    (b"Subject", b"You won a prize"),
    (b"List-Unsubscribe", b"<https://evil.example.net/u>"),
    (b"List-Unsubscribe-Post", b"List-Unsubscribe=Nope"),
    (b"From", b"Bank <security@news.example.org>"),
])
def test_tampered_header_fails(signer: DkimSigner, raw: bytes, name: bytes, value: bytes) -> None:
    signed = signer.sign(raw)
    assert not verifies(replace_header(signed, name, value), signer.dns_record())


@pytest.mark.parametrize("added", [b"List-Unsubscribe: <https://evil.example.net/u>", b"Subject: Act now"])
def test_an_added_second_header_fails(signer: DkimSigner, raw: bytes, added: bytes) -> None:
    signed = signer.sign(raw)
    head, body = signed.split(b"\r\n\r\n", 1)
    assert not verifies(head + b"\r\n" + added + b"\r\n\r\n" + body, signer.dns_record())


def test_removed_list_unsubscribe_post_fails(signer: DkimSigner, raw: bytes) -> None:
    signed = signer.sign(raw)
    assert not verifies(re.sub(rb"List-Unsubscribe-Post: [^\r]*\r\n", b"", signed), signer.dns_record())


def test_wrong_key_or_selector_fails(raw: bytes, rsa_key: rsa.RSAPrivateKey) -> None:
    signed = DkimSigner(SELECTOR, DOMAIN, rsa_key).sign(raw)
    other = dkim_keys.dns_txt_value(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert not verifies(signed, other)
    assert not dkim.verify(signed, dnsfunc=dns_for(dkim_keys.dns_txt_value(rsa_key), selector="other"))


# --- the bytes -------------------------------------------------------------------------


def test_crlf_line_endings_and_line_lengths_are_kept(signer: DkimSigner, raw: bytes) -> None:
    signed = signer.sign(raw)
    assert b"\n" not in signed.replace(b"\r\n", b""), "every line ends with CRLF"
    header = signed[: signed.index(b"\r\n", len(signed) - len(raw) - 3) + 2]
    assert all(len(line) <= 78 for line in header.split(b"\r\n")), header
    assert max(len(line) for line in signed.split(b"\r\n")) <= 998


def test_the_email_package_parses_the_signed_message(signer: DkimSigner, raw: bytes) -> None:
    message = email.message_from_bytes(signer.sign(raw), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    assert message["DKIM-Signature"].startswith("v=1;")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text = message.get_body(("plain",))
    assert text is not None and "Zoë" in text.get_content()


def test_bare_lf_input_is_signed_as_crlf(signer: DkimSigner, raw: bytes) -> None:
    signed = signer.sign(raw.replace(b"\r\n", b"\n"))
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert signed.endswith(raw)
    assert verifies(signed, signer.dns_record())


def test_a_message_without_from_is_refused(signer: DkimSigner, raw: bytes) -> None:
    with pytest.raises(ValueError, match="From"):
        signer.sign(re.sub(rb"(?m)^From: [^\r]*\r\n", b"", raw))
    with pytest.raises(ValueError, match="malformed header"):
        signer.sign(b"not a header\r\n\r\nbody\r\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=" \tab=\u00e9", max_size=12), max_size=8))
def test_body_canonicalization_matches_dkimpy(lines: list[str]) -> None:
    body = "".join(line + "\r\n" for line in lines).encode()
    assert dk._relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=" \tab:=", max_size=20), st.text(alphabet=" \tab:=", max_size=20))
def test_header_canonicalization_matches_dkimpy(first: str, second: str) -> None:
    value = f"{first}\r\n {second}".encode()
    [(_, expected)] = Relaxed.canonicalize_headers([(b"Subject", value + b"\r\n")])
    assert dk._relaxed_value(value) + b"\r\n" == expected


# --- configuration and keys ----------------------------------------------------------------


def write_key(path: Path, key: dkim_keys.PrivateKey, mode: int = 0o600) -> Path:
    path.write_bytes(dkim_keys.private_key_pem(key))
    path.chmod(mode)
    return path


def test_from_settings(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, raw: bytes) -> None:
    assert DkimSigner.from_settings(DkimSettings()) is None
    assert DkimSigner.from_settings(DkimSettings(selector=SELECTOR, domain=DOMAIN)) is None
    key_file = write_key(tmp_path / "dkim.pem", rsa_key)
    signer = DkimSigner.from_settings(DkimSettings(selector=SELECTOR, domain=DOMAIN, key_file=key_file))
    assert signer is not None and signer.dns_name == f"{SELECTOR}._domainkey.{DOMAIN}"
    assert verifies(signer.sign(raw), dkim_keys.dns_txt_value(rsa_key))


def test_pkcs1_pem_and_dknewkey_ed25519_seed_load(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey, raw: bytes
) -> None:
    pkcs1 = tmp_path / "rsa.pem"
    pkcs1.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                            serialization.NoEncryption()).replace(b"\n", b"\r\n"))
    assert verifies(DkimSigner.from_key_file(SELECTOR, DOMAIN, pkcs1).sign(raw), dkim_keys.dns_txt_value(rsa_key))
    seed = tmp_path / "ed25519.key"  # what dkimpy's dknewkey writes: the base64 seed, one line
    seed.write_bytes(base64.b64encode(ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())))
    signer = DkimSigner.from_key_file(SELECTOR, DOMAIN, seed)
    assert signer.algorithm == "ed25519-sha256"
    assert verifies(signer.sign(raw), dkim_keys.dns_txt_value(ed_key))


SECRET = b"SECRET-KEY-MATERIAL-MUST-NOT-LEAK"


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no such file"),
    (b"", "empty"),
    (b"hello " + SECRET, "not a PEM private key"),
    (b"-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(SECRET) + b"\n-----END PRIVATE KEY-----\n",
     "not a valid PEM private key"),
    ("public", "holds a public key"),
    ("encrypted", "encrypted with a passphrase"),
    ("ec", "holds an ECDSA key"),
    ("dir", "is a directory"),
])
def test_a_bad_key_file_is_a_clear_error_naming_it(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture,
    content: bytes | str | None, reason: str,
) -> None:
    path = tmp_path / "dkim.pem"
    if content == "public":
        path.write_bytes(rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    elif content == "encrypted":
        path.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(b"pass")))
    elif content == "ec":
        path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    elif content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    settings_ = DkimSettings(selector=SELECTOR, domain=DOMAIN, key_file=path)
    with caplog.at_level(logging.DEBUG), pytest.raises(DkimKeyError) as caught:
        DkimSigner.from_settings(settings_)
    error = caught.value
    assert isinstance(error, ValueError)
    assert str(path) in str(error) and reason in str(error), str(error)
    assert error.path == path and reason in error.reason
    for leak in (SECRET, base64.b64encode(SECRET)):
        assert leak.decode() not in str(error) + caplog.text


def test_an_unreadable_key_file_is_a_clear_error(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_key(tmp_path / "dkim.pem", rsa_key, mode=0)
    if os.geteuid() == 0:  # root reads any file: fail the read as it fails for the daemon's user

        def denied(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DkimKeyError, match="permission denied") as caught:
        DkimSigner.from_key_file(SELECTOR, DOMAIN, path)
    assert str(path) in str(caught.value)


def test_a_key_readable_by_others_is_a_warning(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_key(tmp_path / "dkim.pem", rsa_key, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="publisher.mail.dkim_keys"):
        DkimSigner.from_key_file(SELECTOR, DOMAIN, path)
    assert "chmod 600" in caplog.text and "BEGIN" not in caplog.text


@pytest.mark.parametrize(("selector", "domain"), [("bad_selector", DOMAIN), ("", DOMAIN), (SELECTOR, "localhost"),
                                                  (SELECTOR, "exa mple.org")])
def test_bad_selector_or_domain(rsa_key: rsa.RSAPrivateKey, selector: str, domain: str) -> None:
    with pytest.raises(DkimError):
        DkimSigner(selector, domain, rsa_key)


def test_unaligned_domain_is_a_warning_once_not_a_refusal(
    rsa_key: rsa.RSAPrivateKey, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="publisher.mail.dkim"):
        parent = DkimSigner(SELECTOR, "example.org", rsa_key)  # a parent of news.example.org: aligned
        parent.sign(raw)
        assert not caplog.records
        other = DkimSigner(SELECTOR, "elsewhere.example.net", rsa_key)
        signed = other.sign(raw)
        other.sign(raw)
    assert len(caplog.records) == 1
    assert "news.example.org" in caplog.text and "elsewhere.example.net" in caplog.text
    assert dkim.verify(signed, dnsfunc=dns_for(dkim_keys.dns_txt_value(rsa_key), domain="elsewhere.example.net"))


def test_aligned() -> None:
    assert dk.aligned("example.org", "example.org")
    assert dk.aligned("Example.org", "news.example.org.")
    assert not dk.aligned("news.example.org", "example.org")
    assert not dk.aligned("ample.org", "example.org")


# --- publisher dkim keygen ------------------------------------------------------------------


def keygen(tmp_path: Path, *args: str) -> tuple[Path, str]:
    out = tmp_path / "keys" / "dkim.pem"
    out.parent.mkdir(exist_ok=True)
    result = CliRunner().invoke(main, ["dkim", "keygen", "--selector", SELECTOR, "--domain", DOMAIN,
                                       "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out, result.output


def published_record(output: str) -> tuple[str, list[str]]:
    """The record name and the quoted strings of the zone line the command printed."""
    line = next(line.strip() for line in output.splitlines() if ' TXT "' in line)
    name, _, rest = line.partition(" TXT ")
    return name, re.findall(r'"([^"]*)"', rest)


@pytest.mark.parametrize(("args", "algorithm"), [((), "rsa-sha256"), (("--bits", "4096"), "rsa-sha256"),
                                                 (("--type", "ed25519"), "ed25519-sha256")])
def test_keygen_writes_a_0600_key_whose_printed_record_verifies(
    tmp_path: Path, raw: bytes, args: tuple[str, ...], algorithm: str
) -> None:
    out, output = keygen(tmp_path, *args)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    name, strings = published_record(output)
    assert name == f"{SELECTOR}._domainkey.{DOMAIN}."
    assert all(len(s) <= 255 for s in strings)
    if "4096" in args:
        assert len(strings) == 3
    signer = DkimSigner.from_key_file(SELECTOR, DOMAIN, out)
    assert signer.algorithm == algorithm
    assert verifies(signer.sign(raw), "".join(strings))
    assert f'selector = "{SELECTOR}"' in output and f'domain = "{DOMAIN}"' in output
    assert f'key_file = "{out.resolve()}"' in output
    assert "PRIVATE KEY" not in output


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    out, _ = keygen(tmp_path, "--type", "ed25519")
    before = out.read_bytes()
    again = CliRunner().invoke(main, ["dkim", "keygen", "--selector", SELECTOR, "--domain", DOMAIN,
                                      "--type", "ed25519", "--out", str(out)])
    assert again.exit_code == 1 and "not overwriting" in again.output
    assert out.read_bytes() == before


def test_keygen_rejects_bad_arguments(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["dkim", "keygen", "--out", str(tmp_path / "k.pem"), *args])
        assert result.exit_code != 0
        return result.output

    assert "selector" in run("--selector", "a_b", "--domain", DOMAIN)
    assert "--bits" in run("--selector", SELECTOR, "--domain", DOMAIN, "--bits", "512")
    assert "--bits" in run("--selector", SELECTOR, "--domain", DOMAIN, "--type", "ed25519", "--bits", "2048")
    assert not (tmp_path / "k.pem").exists()
