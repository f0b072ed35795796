"""Shared fixtures: a complete, isolated publisher setup in a temporary directory.

A test that uses the store runs once per database backend, ``[sqlite]`` and
``[postgresql]``: the ``database`` fixture is parametrized over both (see
:mod:`tests.databases`), and ``site_dir`` (so ``settings``, ``make_settings`` and
``publisher``) depends on it.  A test that writes its own site with
:func:`write_config` asks for ``database`` itself.  One that can only be true of
SQLite is marked ``@pytest.mark.sqlite_only("why")``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from publisher.config import Settings, load_settings
from tests import databases

if TYPE_CHECKING:
    from publisher.app import Publisher

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CONTENT = REPO / "content"
SEED = REPO.parent / "shared" / "seed" / "kim-russia-visit.txt"


def write_config(root: Path, extra: str = "", **delivery: object) -> Path:
    """A config.toml in ``root`` whose every path stays inside ``root``.

    Its database is the running test's backend's for ``root`` (a SQLite file in
    ``root``, or ``root``'s own PostgreSQL database).

    ``delivery`` keys override or add to the ``[delivery]`` table; ``extra`` is more
    TOML after it (other tables).
    """
    values: dict[str, object] = {
        "outbox": "outbox", "from_address": "brief@news.example.org", "from_name": "Test Brief", "retry_base": 1,
    } | delivery
    delivery_lines = "\n".join(f"{key} = {toml_value(value)}" for key, value in values.items())
    path = root / "config.toml"
    path.write_text(
        f"""
[site]
title = "Test Brief"
url = "https://news.example.org/"
postal_address = "1 Test Road, Testville"
output_dir = "public"

[content]
dir = "content"

[storage]
data_dir = "data"

[database]
url = "{databases.current().config_url(root)}"

[delivery]
{delivery_lines}
{extra}
""",
        encoding="utf-8",
    )
    return path


def toml_value(value: object) -> str:
    """A TOML literal for a string, a boolean or a number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-key")


BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite: the test's SQLite variant")
    config.addinivalue_line("markers", "postgresql: the test's PostgreSQL variant")
    config.addinivalue_line("markers", "sqlite_only(reason): true of SQLite only; runs on SQLite alone (say why)")
    config.addinivalue_line(
        "markers", "postgresql_only(reason): true of PostgreSQL only; runs on PostgreSQL alone (say why)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the ``database`` fixture, once per backend."""
    if "database" not in metafunc.fixturenames:
        return
    backends = BACKENDS
    for name in BACKENDS:
        only = metafunc.definition.get_closest_marker(f"{name}_only")
        if only is not None:
            if not (only.args or only.kwargs.get("reason")):
                raise pytest.UsageError(f"{metafunc.definition.nodeid}: {name}_only needs the reason")
            backends = (name,)
    metafunc.parametrize(
        "database",
        [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in backends],
        indirect=True,
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[databases.PostgresServer | str]:
    """The PostgreSQL server the ``[postgresql]`` variants use, or why there is none."""
    admin_url = databases.postgres_url_setting()
    if admin_url is None:
        yield "PostgreSQL tests are turned off (PUBLISHER_TEST_POSTGRES_URL=off)"
        return
    server = databases.PostgresServer(admin_url)
    try:
        server.connect()
    except Exception as exc:  # noqa: BLE001 - any reason the server can't be used is reported as it is
        server.close()
        yield (
            f"PostgreSQL at {server.describe()} is not usable ({type(exc).__name__}: {exc}); "
            "set PUBLISHER_TEST_POSTGRES_URL to a server's URL, or to 'off'"
        )
        return
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[databases.Backend]:
    """The backend this test runs on; ``write_config`` writes its URL (see the module docstring)."""
    name = getattr(request, "param", "sqlite")
    backend: databases.Backend
    if name == "postgresql":
        server = request.getfixturevalue("postgres_server")
        if isinstance(server, str):
            if databases.postgres_required():
                pytest.fail(f"{server} (PUBLISHER_REQUIRE_POSTGRES is set)", pytrace=False)
            pytest.skip(server)
        backend = databases.PostgresSites(server)
    else:
        backend = databases.SQLiteSites()
    databases.use(backend)
    try:
        yield backend
    finally:
        databases.use(databases.SQLiteSites())
        backend.close()


@pytest.fixture
def site_dir(tmp_path: Path, database: databases.Backend) -> Path:
    """A directory with a config and a copy of the sample content."""
    shutil.copytree(SAMPLE_CONTENT, tmp_path / "content")
    write_config(tmp_path)
    return tmp_path


@pytest.fixture
def make_settings(site_dir: Path) -> Callable[..., Settings]:
    def make(extra: str = "") -> Settings:
        return load_settings(write_config(site_dir, extra), environ={})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[Publisher]:
    from publisher.app import Publisher

    service = Publisher(settings)
    await service.start()
    yield service
    await service.close()
