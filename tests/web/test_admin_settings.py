"""The settings page and the operator's own account over HTTP (real app, real store).

Settings: secrets planted everywhere a config keeps them (the SMTP password, the API
token, a webhook's secret and a token in its URL, a database URL's password, the DKIM
private key) and none reaches a page; the masking is a rule that covers a key added
later; the DKIM record, the readiness checks and the webhook outbox (capped, paged) are
shown.  Account: a change needs the current password, ends the other sessions, a second
factor takes effect only with a code from the app, and each change is audited.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from publisher import clock
from publisher.admin import totp
from publisher.admin.effective_config import MASK, effective_config, masked_url, secret_name
from publisher.admin.model import Action, Role
from publisher.app import Publisher
from publisher.config import Settings, SmtpSettings, load_settings
from publisher.mail.dkim_keys import dns_txt_value, private_key_pem, write_private_key
from publisher.web.admin import settings as settings_page
from publisher.webhooks import outbox
from tests.support.admin import PASSWORD, SETUP, AdminVisitor, add_operator
from tests.support.people import add_subscriber
from tests.support.sites import write_config
from tests.support.web_client import API_TOKEN, web_client

SMTP_PASSWORD = "planted-smtp-password-5f1c"
HOOK_SECRET = "planted-hook-secret-77ad"
URL_TOKEN = "planted-url-token-90be"
DB_PASSWORD = "planted-db-password-c3e2"
HOOK_URL = f"https://hooks.example.org/in?token={URL_TOKEN}"
NEW_PASSWORD = "another long enough password"


def _planted_config(site_dir: Path, key_file: Path) -> Settings:
    config = write_config(site_dir, f"""
[smtp]
username = "relay-user"
password_env = "PLANTED_SMTP_PASSWORD"

[dkim]
selector = "news2026"
domain = "news.example.org"
key_file = "{key_file}"

[[webhooks]]
url = "{HOOK_URL}"
secret_env = "PLANTED_HOOK_SECRET"
""")
    return load_settings(config, environ={"PLANTED_HOOK_SECRET": HOOK_SECRET})


@pytest.fixture
async def planted(
    site_dir: Path, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Publisher, TestClient]]:
    """A started publisher with a secret in every place a config keeps one, and its client."""
    monkeypatch.setenv("PLANTED_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("PLANTED_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("PUBLISHER_API_TOKEN", API_TOKEN)
    key_file = write_private_key(site_dir / "dkim.pem", rsa_key)
    publisher = Publisher(_planted_config(site_dir, key_file))
    await publisher.start()
    # The store was opened with the test's own database; the page shows the settings, so a
    # PostgreSQL URL with a password is planted there (nothing else reads it after the start).
    publisher.settings.database.url = f"postgresql+asyncpg://app:{DB_PASSWORD}@db.internal:5432/news"
    try:
        async with web_client(publisher) as client:
            yield publisher, client
    finally:
        await publisher.close()


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    async with web_client(publisher) as client:
        yield client


def _secrets(publisher: Publisher, rsa_key: rsa.RSAPrivateKey) -> list[str]:
    """Every planted secret, and each line of the DKIM private key's PEM."""
    pem_lines = [line for line in private_key_pem(rsa_key).decode().splitlines() if "-----" not in line]
    return [SMTP_PASSWORD, HOOK_SECRET, URL_TOKEN, DB_PASSWORD, API_TOKEN, publisher.tokens.secret_key, *pem_lines]


async def _signed_in(client: TestClient, publisher: Publisher, role: Role = Role.ADMIN,
                     email: str = "ann@example.org") -> AdminVisitor:
    await add_operator(publisher, email, role)
    visitor = AdminVisitor(client)
    assert (await visitor.sign_in(email)).status == 303
    return visitor


# --- the masking rule (pure) ------------------------------------------------------------------


class _FutureSmtp(SmtpSettings):
    """Keys a later version might add: caught by their names and types, not by a list."""

    relay_token: str = "planted-future-token"
    api_password: SecretStr = SecretStr("planted-future-secret-str")
    signingKey: str = "planted-future-camel"  # noqa: N815  # a name in another style
    client_key_file: Path = Path("/etc/publisher/client-key.pem")  # names where a secret is: shown


class _FutureSettings(Settings):
    smtp: _FutureSmtp = _FutureSmtp()
    headers: dict[str, str] = {"Authorization": "Bearer planted-future-header", "Accept": "text/html"}
    mirrors: list[str] = ["https://mirror:planted-future-userinfo@m.example.org/feed"]


def test_a_secret_key_added_later_is_masked_by_the_rule() -> None:
    shown = {f"{section.name}.{key}": value for section in effective_config(_FutureSettings()) for key, value in section.rows}
    page = "\n".join(shown.values())
    assert "planted-future" not in page
    assert shown["smtp.relay_token"] == shown["smtp.api_password"] == shown["smtp.signingKey"] == MASK
    assert shown["headers.Authorization"] == MASK and shown["headers.Accept"] == "text/html"
    assert shown["smtp.client_key_file"] == "/etc/publisher/client-key.pem"
    assert shown["mirrors.mirrors"] == "https://mirror:•••@m.example.org/feed"
    assert shown["smtp.password_env"] == "(empty)" and shown["smtp.host"] == "127.0.0.1"  # the rest as loaded
    assert shown["digest.daily_at"] == "08:00:00" and shown["delivery.concurrency"] == "8"  # defaults included


def test_names_urls_and_known_values_are_masked() -> None:
    assert secret_name("password") and secret_name("smtp_password") and secret_name("API_TOKEN")
    assert not secret_name("password_env") and not secret_name("key_file") and not secret_name("max_tag_feeds")
    assert masked_url("postgresql+asyncpg://app:pw@db:5432/news?sslkey=x") == "postgresql+asyncpg://app:•••@db:5432/news?sslkey=•••"
    assert masked_url("https://token@hooks.example.org/a") == "https://•••@hooks.example.org/a"
    assert masked_url("not a url: pw@host") == "not a url: pw@host"
    settings = Settings()
    settings.site.description = "our token is abcdef123 (oops)"
    [site] = [s for s in effective_config(settings, ["abcdef123", "ab"]) if s.name == "site"]
    assert dict(site.rows)["description"] == f"our token is {MASK} (oops)"


# --- the settings page --------------------------------------------------------------------------


async def test_no_planted_secret_reaches_any_dashboard_page(
    planted: tuple[Publisher, TestClient], rsa_key: rsa.RSAPrivateKey
) -> None:
    publisher, client = planted
    admin = await _signed_in(client, publisher)
    await add_subscriber(publisher.engine, "reader@example.org")  # an event owed to the webhook
    secrets = _secrets(publisher, rsa_key)
    assert all(secrets) and len(secrets) > 10
    page = await admin.get("/admin/settings")
    body = await page.text()
    assert page.status == 200
    assert [s for s in secrets if s in body] == []
    for shown in ("PLANTED_SMTP_PASSWORD", "PLANTED_HOOK_SECRET", "relay-user", "db.internal:5432/news",
                  "https://hooks.example.org/in?token=•••", "subscriber.created"):
        assert shown in html.unescape(body), shown
    for path in ("/admin/", "/admin/account", "/admin/audit", "/admin/operators"):
        other = await (await admin.get(path)).text()
        assert [s for s in secrets if s in other] == [], path


async def test_the_settings_page_shows_the_dkim_record_health_and_config(
    planted: tuple[Publisher, TestClient], rsa_key: rsa.RSAPrivateKey
) -> None:
    publisher, client = planted
    viewer = await _signed_in(client, publisher, Role.VIEWER, "vic@example.org")
    body = html.unescape(await (await viewer.get("/admin/settings")).text())
    value = dns_txt_value(rsa_key)
    assert "news2026._domainkey.news.example.org" in body and value in body
    assert f'news2026._domainkey.news.example.org. TXT "{value[:255]}" "{value[255:510]}"' in body
    checks = dict(re.findall(r'<tr><th scope="row">(\w+)</th><td>(ok|failing)</td>', body))
    assert checks["database"] == "ok" and set(checks) == {"database", "scheduler", "scan"}
    assert "[delivery]" in body and "max_attempts" in body and "[admin]" in body  # every section, defaults included
    assert '<a href="/admin/settings" aria-current="page">Settings</a>' in body


async def test_the_webhook_outbox_is_capped_and_paged(
    planted: tuple[Publisher, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, client = planted
    monkeypatch.setattr(settings_page, "OUTBOX_PAGE", 3)
    monkeypatch.setattr(settings_page, "OUTBOX_CAP", 4)
    for n in range(7):
        await add_subscriber(publisher.engine, f"reader{n}@example.org")
    first_owed = (await publisher.webhooks.owed_page(1))[0]
    await outbox.failed(publisher.engine, [outbox.Failure(
        HOOK_URL, first_owed.event_seq, 1, clock.now() + timedelta(minutes=5), f"HTTP 500 for {HOOK_URL}",
    )], clock.now())
    admin = await _signed_in(client, publisher)
    first = html.unescape(await (await admin.get("/admin/settings")).text())
    assert "more than 4" in first and "1 of the oldest 5" in first  # 7 owed, counted up to the cap
    owed_rows = re.findall(r'<th scope="row">(evt_[0-9a-f]+)</th>', first)
    assert len(owed_rows) == 3
    assert "HTTP 500 for https://hooks.example.org/in?token=•••" in first
    following = re.search(r'href="(/admin/settings\?endpoint=[0-9a-f]{16}&after=\d+)#outbox"', first)
    assert following is not None
    second = html.unescape(await (await admin.get(following.group(1))).text())
    second_rows = re.findall(r'<th scope="row">(evt_[0-9a-f]+)</th>', second)
    assert len(second_rows) == 3 and not set(second_rows) & set(owed_rows)
    assert URL_TOKEN not in first and URL_TOKEN not in second  # not in the links either
    for bad in ("?after=1", "?endpoint=0123456789abcdef&after=1", f"?endpoint={HOOK_URL}&after=1",
                following.group(1).removeprefix("/admin/settings").replace("after=", "after=x")):
        assert (await admin.get("/admin/settings" + bad)).status == 400, bad


async def test_every_role_reads_settings_and_its_account(publisher: Publisher, client: TestClient) -> None:
    for role in Role:
        visitor = await _signed_in(client, publisher, role, f"{role}@example.org")
        for path in ("/admin/settings", "/admin/account"):
            response = await visitor.get(path)
            assert response.status == 200, (role, path)
        footer = await (await visitor.get("/admin/")).text()
        assert '<a href="/admin/account">Your account</a>' in footer
        assert 'DKIM signing is off' in await (await visitor.get("/admin/settings")).text()


# --- the operator's own account -------------------------------------------------------------------


async def _audit(publisher: Publisher) -> list[tuple[str, str, str, dict[str, object]]]:
    return [(e.operator, e.action, e.target, e.detail) for e in await publisher.operators.audit_page(20)]


async def test_a_wrong_current_password_changes_nothing(publisher: Publisher, client: TestClient) -> None:
    ann = await _signed_in(client, publisher, Role.VIEWER)
    await ann.get("/admin/account")
    before = (await publisher.operators.get(1))
    refused = await ann.post("/admin/account/password", {"current": "not the password", "new": NEW_PASSWORD,
                                                         "repeat": NEW_PASSWORD})
    assert refused.status == 422 and "The current password is not right." in await refused.text()
    differ = await ann.post("/admin/account/password", {"current": PASSWORD, "new": NEW_PASSWORD, "repeat": "other"})
    assert differ.status == 422 and "differ" in await differ.text()
    short = await ann.post("/admin/account/password", {"current": PASSWORD, "new": "short", "repeat": "short"})
    assert short.status == 422
    after = await publisher.operators.get(1)
    assert after is not None and before is not None and after.password_hash == before.password_hash
    assert (await _audit(publisher))[0][:2] == ("ann@example.org", Action.SIGN_IN_FAILED)
    assert (await _audit(publisher))[0][3] == {"reason": "current password"}  # counts towards the lockout
    assert (await AdminVisitor(client).sign_in("ann@example.org", NEW_PASSWORD)).status == 401  # the form again


async def test_changing_ones_password_ends_the_other_sessions(publisher: Publisher, client: TestClient) -> None:
    here = await _signed_in(client, publisher, Role.EDITOR)
    elsewhere = AdminVisitor(client)
    assert (await elsewhere.sign_in("ann@example.org")).status == 303
    await here.get("/admin/account")
    changed = await here.post("/admin/account/password", {"current": PASSWORD, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert changed.status == 303 and changed.headers["Location"] == "/admin/account?done=password"
    assert "Your password was changed" in await (await here.get(changed.headers["Location"])).text()  # this browser stays in
    assert (await elsewhere.get("/admin/")).headers["Location"].startswith("/admin/sign-in")  # the other is out
    assert (await AdminVisitor(client).sign_in("ann@example.org", NEW_PASSWORD)).headers["Location"] == "/admin/"
    assert ("ann@example.org", Action.OPERATOR_PASSWORD, "ann@example.org", {"own": True}) in await _audit(publisher)


async def test_the_second_factor_takes_effect_only_with_a_right_code(publisher: Publisher, client: TestClient) -> None:
    here = await _signed_in(client, publisher, Role.VIEWER)
    elsewhere = AdminVisitor(client)
    assert (await elsewhere.sign_in("ann@example.org")).status == 303
    await here.get("/admin/account")
    shown = await (await here.post("/admin/account/totp/new", {})).text()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', shown).group(1).replace(" ", "")  # type: ignore[union-attr]
    token = re.search(r'name="token" value="([^"]+)"', shown).group(1)  # type: ignore[union-attr]
    assert "otpauth://totp/" in shown and len(secret) == 32
    assert (await publisher.operators.get(1)).totp_secret is None  # type: ignore[union-attr]  # shown, not stored
    wrong = await here.post("/admin/account/totp/on", {"token": token, "code": "000000"})
    assert wrong.status == 422 and (await publisher.operators.get(1)).totp_secret is None  # type: ignore[union-attr]
    # Another browser of the same operator can't confirm this browser's secret.
    await elsewhere.get("/admin/account")
    code = totp.code_at(secret, totp.step_at(clock.now()))
    stolen = await elsewhere.post("/admin/account/totp/on", {"token": token, "code": code})
    assert stolen.status == 422 and "start again" in await stolen.text()
    forged = await here.post("/admin/account/totp/on", {"token": token[:-2] + "xx", "code": code})
    assert forged.status == 422 and (await publisher.operators.get(1)).totp_secret is None  # type: ignore[union-attr]
    right = await here.post("/admin/account/totp/on", {"token": token, "code": code})
    assert right.status == 303 and right.headers["Location"] == "/admin/account?done=totp-on"
    operator = await publisher.operators.get(1)
    assert operator is not None and operator.totp_secret == secret
    assert (await elsewhere.get("/admin/")).status == 303  # the other session ended
    assert (await here.get("/admin/account")).status == 200
    assert ("ann@example.org", Action.OPERATOR_TOTP_ON, "ann@example.org", {"own": True}) in await _audit(publisher)
    # The code used to turn it on can't sign in again (its step is spent).
    again = AdminVisitor(client)
    await again.get("/admin/sign-in")
    await again.post("/admin/sign-in", {"email": "ann@example.org", "password": PASSWORD})
    await again.get("/admin/sign-in/code")
    assert (await again.post("/admin/sign-in/code", {"code": code})).status != 303


async def test_turning_the_second_factor_off_needs_the_password(publisher: Publisher, client: TestClient) -> None:
    await add_operator(publisher, "ann@example.org", Role.VIEWER)
    secret = await publisher.operators.enable_totp("ann@example.org", SETUP)
    ann = AdminVisitor(client)
    assert (await ann.sign_in("ann@example.org", secret=secret)).status == 303
    page = await (await ann.get("/admin/account")).text()
    assert "Turn the second factor off" in page and secret not in page
    assert (await ann.post("/admin/account/totp/new", {})).status == 409  # already on
    refused = await ann.post("/admin/account/totp/off", {"current": "wrong password"})
    assert refused.status == 422 and (await publisher.operators.get(1)).totp_secret == secret  # type: ignore[union-attr]
    off = await ann.post("/admin/account/totp/off", {"current": PASSWORD})
    assert off.status == 303 and (await publisher.operators.get(1)).totp_secret is None  # type: ignore[union-attr]
    assert (await _audit(publisher))[0][:3] == ("ann@example.org", Action.OPERATOR_TOTP_OFF, "ann@example.org")
