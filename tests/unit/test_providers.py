"""Mailbox providers: the built-in table, its patterns, and [providers] in the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.config import ConfigError, load_settings
from publisher.delivery.providers import OTHER, Providers, provider_of


@pytest.mark.parametrize(("address", "provider"), [
    ("ann@gmail.com", "google"), ("Ann@GoogleMail.COM", "google"), ("gmail.com.", "google"),
    ("bo@outlook.com", "microsoft"), ("bo@hotmail.co.uk", "microsoft"), ("bo@live.fr", "microsoft"),
    ("bo@msn.com", "microsoft"), ("cy@yahoo.com.br", "yahoo"), ("cy@ymail.com", "yahoo"), ("cy@aol.com", "yahoo"),
    ("di@icloud.com", "apple"), ("di@me.com", "apple"), ("di@mac.com", "apple"),
    ("ed@proton.me", "proton"), ("ed@gmx.de", "gmx"), ("ed@web.de", "gmx"), ("fay@yandex.ru", "yandex"),
    ("fay@mail.ru", "mailru"), ("gus@zoho.com", "zoho"), ("gus@fastmail.com", "fastmail"),
    ("hal@example.org", OTHER), ("hal@gmail.co", OTHER), ("hal@mail.gmail.com", OTHER),
    # "outlook.*" is a provider's country domains, not any domain that starts with its name.
    ("ivy@outlook.evil.example", OTHER), ("ivy@hotmail.example.com.br", OTHER), ("no-at-sign", OTHER), ("", OTHER),
])
def test_the_built_in_table(address: str, provider: str) -> None:
    assert provider_of(address) == provider


def test_the_config_adds_providers_and_moves_domains() -> None:
    table = Providers({"Corp": ["corp.example", "*.corp.example"], "google": ["mycompany.example"],
                       "microsoft-eu": ["outlook.de"], "regional": ["telco.*"]})
    assert table.of("a@corp.example") == "corp"
    assert table.of("a@mail.eu.corp.example") == "corp"
    assert table.of("a@notcorp.example") == OTHER
    assert table.of("a@mycompany.example") == "google"  # a Workspace domain named by the operator
    assert table.of("a@outlook.de") == "microsoft-eu" and table.of("a@outlook.fr") == "microsoft"
    assert table.of("a@telco.co.nz") == "regional"
    assert {"corp", "google", "microsoft-eu", "regional", OTHER} <= set(table.names)


def test_bad_provider_entries_are_config_errors_naming_them(tmp_path: Path) -> None:
    def problems(table: str) -> str:
        config = tmp_path / "config.toml"
        config.write_text(f"[providers]\n{table}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(config, environ={})
        return str(caught.value)

    assert "'not a domain' is not a domain" in problems('corp = ["not a domain"]')
    assert "'mail.*.example' is not a domain" in problems('corp = ["mail.*.example"]')
    assert "provider name 'other'" in problems('other = ["corp.example"]')
    assert "listed under both a and b" in problems('a = ["x.example"]\nb = ["X.example"]')
    assert "providers" in problems('corp = "corp.example"')  # a list, not a string
    config = tmp_path / "config.toml"
    config.write_text('[providers]\ncorp = ["Corp.Example", "*.corp.example"]\n', encoding="utf-8")
    assert load_settings(config, environ={}).providers == {"corp": ["corp.example", "*.corp.example"]}
