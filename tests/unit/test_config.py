"""Config loading: environment overrides, path resolution, one clear message per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.config import ConfigError, load_settings
from tests.support.sites import write_config


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[smtp]\nport = 25\n")
    settings = load_settings(path, environ={"PUBLISHER_SMTP__PORT": "2525", "PUBLISHER_SITE__TITLE": "Env Title"})
    assert settings.smtp.port == 2525
    assert settings.site.title == "Env Title"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    monkeypatch.chdir("/")
    settings = load_settings(path, environ={})
    assert settings.content.dir == tmp_path / "content"
    assert settings.delivery.outbox == tmp_path / "outbox"
    assert settings.database.url == f"sqlite+aiosqlite:///{tmp_path}/data/publisher.db"


def test_every_problem_is_named_by_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[smtp]\nport = "many"\ntls = "sometimes"\ncolour = 3\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"PUBLISHER_DIGEST__TIMEZONE": "Mars/Olympus"})
    text = "\n".join(caught.value.problems)
    assert "smtp.port" in text
    assert "smtp.tls" in text
    assert "smtp.colour: unknown setting" in text
    assert "digest.timezone" in text and "Mars/Olympus" in text
    assert len(caught.value.problems) == 4


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[site]\ntitle = "ok"\nurl = \n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "line 3" in caught.value.problems[0]


def test_site_url_must_be_absolute(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match="site.url"):
        load_settings(path, environ={"PUBLISHER_SITE__URL": "news.example.org"})


def test_site_language_is_a_known_language_tag_in_its_canonical_case(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    assert load_settings(path, environ={"PUBLISHER_SITE__LANGUAGE": "pt_br"}).site.language == "pt-BR"
    assert load_settings(path, environ={}).site.language == "en"
    for bad, why in (("english", "is not a language tag"), ("qq", "names no known language")):
        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={"PUBLISHER_SITE__LANGUAGE": bad})
        [problem] = caught.value.problems
        assert "site.language" in problem and why in problem and repr(bad) in problem


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_the_sample_config_loads() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config.toml", environ={})
    assert settings.delivery.transport == "maildir"
    assert settings.database.url.startswith("sqlite+aiosqlite:///")


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"PUBLISHER_SMTP__PORT": "twenty", "PUBLISHER_NOPE__X": "1"})
    assert any(p.startswith("environment PUBLISHER_SMTP__PORT: smtp.port:") for p in caught.value.problems)
    assert any(p.startswith("environment PUBLISHER_NOPE__*: nope: unknown setting") for p in caught.value.problems)


def test_database_url_must_name_an_async_driver(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match="database.url: Value error, must name an async driver"):
        load_settings(path, environ={"PUBLISHER_DATABASE__URL": "sqlite:///x.db"})


def test_topic_names_must_name_a_tag_and_say_something(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[site.topic_names]\nclimate = "Climate & energy"\n"!!" = "Shouting"\nnorth-korea = " "\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    text = "\n".join(caught.value.problems)
    assert "site.topic_names" in text and "'!!'" in text and "north-korea" in text
    assert "climate" not in text


def test_limits_are_settings_whose_errors_name_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    settings = load_settings(path, environ={"PUBLISHER_CONTENT__MAX_TAGS": "5", "PUBLISHER_FEEDS__MAX_TAG_FEEDS": "0"})
    assert (settings.content.limits.max_tags, settings.content.limits.max_tables) == (5, 20)
    assert settings.feeds.max_tag_feeds == 0
    with pytest.raises(ConfigError) as caught:
        load_settings(
            path, environ={"PUBLISHER_CONTENT__MAX_TABLE_CELLS": "0", "PUBLISHER_DIGEST__MAX_MESSAGE_BYTES": "99"}
        )
    assert [problem.split(": ")[1] for problem in caught.value.problems] == [
        "content.max_table_cells", "digest.max_message_bytes"
    ]


def test_length_limits_are_checked_and_named(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"PUBLISHER_CONTENT__MAX_TITLE_LENGTH": "5",
                                     "PUBLISHER_DIGEST__MAX_SUBJECT_LENGTH": "0"})
    text = "\n".join(caught.value.problems)
    assert "content.max_title_length" in text and "digest.max_subject_length" in text
    settings = load_settings(path, environ={})
    assert settings.content.max_title_length == 300 and settings.digest.max_subject_length == 200


def test_a_missing_templates_dir_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={"PUBLISHER_SITE__TEMPLATES_DIR": "my-templates"})
    [problem] = raised.value.problems
    assert "site.templates_dir" in problem and str(tmp_path / "my-templates") in problem
    assert "is not a directory" in problem
    (tmp_path / "my-templates").mkdir()
    assert load_settings(path, environ={"PUBLISHER_SITE__TEMPLATES_DIR": "my-templates"}).site.templates_dir


def test_provider_limits_name_providers_of_the_table(tmp_path: Path) -> None:
    from publisher.delivery.model import DeliveryConfig, ProviderLimits
    from publisher.delivery.providers import Providers

    path = write_config(
        tmp_path, '[providers]\ncorp = ["corp.example"]\n'
        '[delivery.providers.google]\nrate = 5\n[delivery.providers.corp]\nconcurrency = 2\n',
    )
    limits = DeliveryConfig.from_settings(load_settings(path, environ={})).providers
    assert limits == {"google": ProviderLimits(concurrency=0, rate=5.0), "corp": ProviderLimits(concurrency=2)}

    path = write_config(tmp_path, "[delivery.providers.gogle]\nrate = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.problems == [
        f"{path}: delivery.providers.gogle: unknown mailbox provider 'gogle' (known: "
        + ", ".join(Providers().names)
        + "; [providers] adds others)"
    ]

    path = write_config(tmp_path, "[delivery.providers.google]\nrate = -1\nburst = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    text = "\n".join(caught.value.problems)
    assert "delivery.providers.google.rate" in text and "delivery.providers.google.burst: unknown setting" in text
