"""The mail-client lint: rendered emails read against the vendored caniemail data.

Expected clients are worked out from the data itself (``caniemail.support``), never
hard-coded, so a refreshed snapshot changes the expectations with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from publisher.config import ConfigError, EmailSettings, Settings, load_settings
from publisher.mail import caniemail
from publisher.mail.caniemail_snapshot import snapshot
from publisher.mail.client_lint import PROGRESSIVE, Finding, details, lint, report, used_features
from publisher.template_check import client_findings
from publisher.templating import builtin_templates_dir, make_environment

DEFAULT = Settings()


def _lacking(slug: str, clients: tuple[str, ...], level: str) -> set[str]:
    return {client for client in clients if caniemail.support(slug, client).level == level}


def _by_slug(findings: list[Finding]) -> dict[str, Finding]:
    return {finding.slug: finding for finding in findings}


def test_an_overridden_template_using_flexbox_and_svg_is_reported_with_the_clients_that_lack_them(
    tmp_path: Path,
) -> None:
    article = (builtin_templates_dir() / "email" / "_article.html").read_text(encoding="utf-8")
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "_article.html").write_text(
        article + '<div style="display: flex"><svg width="10" height="10"><circle r="4"></circle></svg></div>\n',
        encoding="utf-8",
    )
    clients = DEFAULT.email.client_ids
    findings = _by_slug(client_findings(DEFAULT, make_environment(tmp_path)))
    for slug in ("css-display-flex", "html-svg"):
        finding = findings[slug]
        assert set(finding.unsupported) == _lacking(slug, clients, "n") != set()
        assert set(finding.partial) == _lacking(slug, clients, "a")
        assert list(finding.where) == ["email/digest.html"]  # the notices don't include the article
    assert "Outlook Windows" in str(findings["css-display-flex"])
    assert "html-svg" not in _by_slug(client_findings(DEFAULT, make_environment()))


def test_the_built_in_templates_use_none_of_the_features_they_were_rid_of() -> None:
    """caption-side, float and height (Outlook for Windows, Yahoo) were taken out; the table of
    contents keeps off in-email links for the default clients; every other finding says what the
    data says, client by client."""
    clients = DEFAULT.email.client_ids
    findings = client_findings(DEFAULT, make_environment())
    assert not {"css-caption-side", "css-float", "css-height", "html-anchor-links"} & set(_by_slug(findings))
    for finding in findings:
        assert set(finding.unsupported) == _lacking(finding.slug, clients, "n")
        assert set(finding.partial) == _lacking(finding.slug, clients, "a")
        assert finding.unsupported or finding.partial
    assert {"email/digest.html", "email/confirm.html", "email/welcome.html"} <= {w for f in findings for w in f.where}


def test_only_clients_that_lack_a_feature_are_reported() -> None:
    """Apple Mail supports everything the built-in emails use but a few; an empty list reports nothing."""
    apple = DEFAULT.model_copy(update={"email": EmailSettings(clients=["apple-mail"])})
    clients = apple.email.client_ids
    findings = client_findings(apple, make_environment())
    assert all(set(f.unsupported) | set(f.partial) <= set(clients) for f in findings)
    assert len(findings) < len(client_findings(DEFAULT, make_environment()))
    none = DEFAULT.model_copy(update={"email": EmailSettings(clients=[])})
    assert client_findings(none, make_environment()) == []


@pytest.mark.parametrize(("html", "slug"), [
    ('<div style="display:grid">x</div>', "css-display-grid"),
    ('<div style="position: absolute; top: 0">x</div>', "css-position"),
    ('<div style="background-image: url(a.png)">x</div>', "css-background-image"),
    ('<div style="max-width: 600px">x</div>', "css-max-width"),
    ('<div style="border-radius: 4px">x</div>', "css-border-radius"),
    ('<div style="width: calc(100% - 2px)">x</div>', "css-unit-calc"),
    ('<div style="color: var(--ink)">x</div>', "css-variables"),
    ("<style>@media (prefers-color-scheme: dark) { .a { color: red } }</style>", "css-at-media-prefers-color-scheme"),
    ("<style>@media screen and (max-width: 600px) { .a { color: red } }</style>", "css-at-media"),
    ("<style>a:hover { color: red }</style>", "css-pseudo-class-hover"),
    ('<link rel="stylesheet" href="https://example.com/a.css">', "html-link"),
    ("<svg></svg>", "html-svg"),
    ('<video src="a.mp4"></video>', "html-video"),
    ('<form action="https://example.com/"><input type="text"></form>', "html-form"),
    ('<form action="https://example.com/"><input type="text"></form>', "html-input-text"),
    ('<div role="article">x</div>', "html-role"),
    ('<a aria-label="x" href="https://example.com/">x</a>', "html-aria-label"),
    ('<img src="a.png" srcset="a.png 2x" alt="">', "html-srcset"),
    ('<picture><img src="a.png" alt=""></picture>', "html-picture"),
    ('<a href="#top">x</a>', "html-anchor-links"),
    ('<a href="mailto:a@example.com">x</a>', "html-mailto-links"),
    ("<nav>x</nav>", "html-semantics"),
    ("<h3>x</h3>", "html-h1-h6"),
])
def test_a_feature_in_the_html_is_found_by_its_caniemail_slug(html: str, slug: str) -> None:
    assert slug in caniemail.features()
    assert slug in used_features(f"<!DOCTYPE html><html><head></head><body>{html}</body></html>")


def test_a_property_named_inside_another_is_not_mistaken_for_it() -> None:
    used = used_features('<html><body><div style="max-width: 600px; padding-top: 2px">x</div></body></html>')
    assert "css-width" not in used and "css-padding" not in used  # longhands and max- are other features
    assert "css-position" not in used_features('<html><body><div style="background-position: 0 0">x</div></body></html>')


def test_findings_are_deduplicated_across_renders_and_say_where() -> None:
    clients = ("outlook.windows",)
    page = '<html><body><div style="position: absolute">x</div><p style="position: relative">y</p></body></html>'
    (finding,) = [f for f in lint([("a.html", page), ("b.html", page)], clients) if f.slug == "css-position"]
    assert list(finding.where) == ["a.html", "b.html"] and list(finding.unsupported) == ["outlook.windows"]
    assert report([finding]) == ([f"a.html, b.html: warning: position: not supported by Outlook Windows ({finding.url})"],
                                 None)
    assert "Outlook Windows" in details([finding], clients) and caniemail.source() in details([finding], clients)


def test_the_built_in_templates_enhancements_are_noted_not_warned_of() -> None:
    """Dark mode, @media, rounded corners, the preheader's hiding: a client without them still shows
    the email right, so `check` on the built-in templates warns of nothing; one note counts them,
    and clients.txt says why each is harmless."""
    findings = client_findings(DEFAULT, make_environment())
    warnings, note = report(findings)
    assert warnings == [] and note is not None and f"{len(findings)} more feature(s)" in note
    lacked = [finding for finding in findings if finding.unsupported]
    assert lacked and all(finding.slug in PROGRESSIVE for finding in lacked)
    listed = details(findings, DEFAULT.email.client_ids)
    assert all(f"by design: {PROGRESSIVE[finding.slug]}" in listed for finding in lacked)


def test_a_partial_finding_cites_the_datas_notes_by_number_and_text() -> None:
    clients = ("outlook.windows",)
    page = '<html><body><div style="max-width: 600px">x</div></body></html>'
    (finding,) = [f for f in lint([("d.html", page)], clients) if f.slug == "css-max-width"]
    notes = caniemail.support("css-max-width", "outlook.windows").notes
    assert finding.partial == {"outlook.windows": notes} and notes
    assert f"Outlook Windows (note {', '.join(notes)})" in str(finding)
    assert finding.notes() == [f"note {n}: {caniemail.features()['css-max-width']['notes'][n]}" for n in notes]


def test_an_unknown_client_is_a_config_error_naming_the_key_and_the_known_families(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[email]\nclients = ["gmail", "outlok.windows"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    (problem,) = caught.value.problems
    assert "email.clients" in problem and "'outlok.windows'" in problem and "outlook" in problem


def test_the_snapshot_keeps_the_newest_result_of_every_client() -> None:
    """Outlook for macOS was tested as "2016" and later as "16.80": the later test is the one kept,
    though "2016" sorts after it as a string."""
    raw = {
        "last_update_date": "2025-09-09", "nicenames": {"family": {"outlook": "Outlook"}, "platform": {"macos": "macOS"}},
        "data": [{"slug": "css-x", "title": "x", "category": "css", "url": "https://www.caniemail.com/features/css-x/",
                  "notes_by_num": {"1": "A note."}, "stats": {"outlook": {"macos": {"2016": "n", "16.80": "a #1"}}}}],
    }
    compact = snapshot(raw, "9.9.9")
    assert compact["clients"] == {"outlook.macos": "Outlook macOS"}
    assert compact["features"]["css-x"]["support"] == {"outlook.macos": "a #1"}
    assert compact["source"] == "caniemail 9.9.9 (npm), data of www.caniemail.com updated 2025-09-09"
    shipped = json.loads(caniemail.SNAPSHOT.read_text(encoding="utf-8"))
    assert shipped["source"].startswith("caniemail ") and len(shipped["features"]) > 250
    assert (caniemail.SNAPSHOT.parent / "caniemail-LICENSE.txt").read_text(encoding="utf-8").startswith("MIT License")
    assert set(caniemail.expand_clients(["outlook"])) == {c for c in caniemail.client_names() if c.startswith("outlook.")}
