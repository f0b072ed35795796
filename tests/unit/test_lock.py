"""requirements.lock: what every install of the project gets, one version per package.

A fresh machine installs the newest versions the ranges in pyproject.toml allow unless
a lock pins them; that is how a newer dependency once broke a fresh clone's tests.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked() -> dict[str, list[tuple[str, str, list[str]]]]:
    """Package name → its pins as (version, marker, hashes), from requirements.lock."""
    pins: dict[str, list[tuple[str, str, list[str]]]] = {}
    current: list[str] = []
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if match := _PIN.match(line):
            current = []
            name, version, marker = match.groups()
            pins.setdefault(canonicalize_name(name), []).append((version, marker or "", current))
        elif line.strip().startswith("--hash=sha256:"):
            current.append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return pins


def test_every_dependency_is_pinned_with_hashes_inside_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]
    pins = locked()
    here = default_environment()
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate(here):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run `make lock`"
        for version, _, hashes in pins[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"requirements.lock pins {name}=={version}, outside pyproject.toml's {requirement}: run `make lock`"
            )
            assert hashes and all(len(h) == 64 for h in hashes), f"{name}: no hashes in requirements.lock"


def test_every_locked_package_has_hashes_and_at_most_one_version_per_environment() -> None:
    here = default_environment()
    for name, pins in locked().items():
        versions = {version for version, marker, _ in pins if not marker or Marker(marker).evaluate(here)}
        assert len(versions) <= 1, f"{name}: {sorted(versions)} for this environment"
        assert all(hashes for _, _, hashes in pins), f"{name}: a pin without hashes"
