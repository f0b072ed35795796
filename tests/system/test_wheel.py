"""The package as a user installs it: a wheel built from the repository, in a new virtualenv,
outside the checkout, runs ``publisher init`` + ``build`` + ``send`` (its templates included).

The new virtualenv sees this one's dependencies (the locked versions) through a ``.pth``
line, so the test builds and installs only the wheel; this virtualenv's editable
``publisher`` is not visible there (a ``.pth`` file is read only in a site directory, and
the editable finder is one), so the code under test is the wheel's.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import sysconfig
import zipfile
from email import policy
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses: the CLI, the daemon, the wheel

REPO = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env | {"PUBLISHER_SECRET_KEY": "wheel-test"},
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_wheel_installs_and_publishes_outside_the_checkout(tmp_path: Path) -> None:
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", REPO,
                cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("publisher-*.whl")

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path).returncode == 0
    (site_packages,) = (venv / "lib").glob("python*/site-packages")
    (site_packages / "locked-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet",
                    "--no-deps", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    publisher = venv / "bin" / "publisher"

    where = run(venv / "bin" / "python", "-c", "import publisher; print(publisher.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(site_packages)), where.stdout + where.stderr

    helped = run(publisher, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and helped.stderr == "", helped.stderr

    assert run(publisher, "init", "site", cwd=tmp_path).returncode == 0
    site = tmp_path / "site"
    # The caniemail data ships with its licence, and `check` reads it from the installed package.
    with zipfile.ZipFile(wheel) as archive:
        assert {"publisher/mail/data/caniemail.json", "publisher/mail/data/caniemail-LICENSE.txt"} <= set(archive.namelist())
    checked = run(publisher, "check", cwd=site)
    assert checked.returncode == 0 and "more feature(s) some of [email] clients ignore" in checked.stdout, checked.stderr
    built_site = run(publisher, "build", cwd=site)
    assert built_site.returncode == 0, built_site.stderr
    assert (site / "var" / "public" / "feed.atom").is_file()
    added = run(publisher, "subscribers", "add", "reader@example.org", "--cadence", "instant", cwd=site)
    assert added.returncode == 0, added.stderr
    (site / "content" / "second.md").write_text("---\ntitle: A second article\ndate: 2026-01-02\n---\n\nBody text.\n")
    config = site / "config.toml"  # the readers' language: its catalog ships in the wheel
    config.write_text(config.read_text().replace('language = "en"', 'language = "de"', 1))
    sent = run(publisher, "send", cwd=site)
    assert sent.returncode == 0, sent.stderr
    (message_file,) = (site / "var" / "outbox" / "new").iterdir()
    message = email.message_from_bytes(message_file.read_bytes(), policy=policy.default)
    assert "A second article" in message["Subject"]
    html = message.get_body(("html",))
    assert html is not None and "A second article" in html.get_content()
    assert "Hier ist Ihr Sofort-Newsletter: 1 neuer Artikel." in html.get_content()
