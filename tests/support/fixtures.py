"""Shared fixtures: a complete, isolated publisher setup in a temporary directory.

Loaded as a pytest plugin by the root ``conftest.py`` (``pytest_plugins``), so every
folder of tests gets the same fixtures and hooks from one module.

A test that uses the store runs once per database backend, ``[sqlite]`` and
``[postgresql]``: the ``database`` fixture is parametrized over both (see
:mod:`tests.support.databases`), and ``site_dir`` (so ``settings``, ``make_settings`` and
``publisher``) depends on it.  A test that writes its own site with
:func:`tests.support.sites.write_config` asks for ``database`` itself.  One that can only be true of
SQLite is marked ``@pytest.mark.sqlite_only("why")``.

A test that needs a site's files and config but never its store (``publisher check``,
a bad config) asks for ``bare_site_dir`` instead: no database is built for it, and
it runs once, since a second backend would test nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from publisher.config import Settings, load_settings
from tests.support import databases
from tests.support.sites import new_site, write_config

if TYPE_CHECKING:
    from aiohttp.test_utils import TestClient
    from cryptography.hazmat.primitives.asymmetric import rsa

    from publisher.app import Publisher
    from tests.support.smtp_server import SmtpServer


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
    return new_site(tmp_path)


@pytest.fixture
def bare_site_dir(tmp_path: Path) -> Path:
    """``site_dir`` for a test that never opens the store: no backend, no database.

    Its config names a SQLite file that nothing creates unless the test opens it.
    """
    return new_site(tmp_path)


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


@pytest.fixture
async def live_site(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Publisher, SmtpServer, str]]:
    """The site served on a real port for a browser: ``(publisher, smtp server, site url)``
    (see :func:`tests.support.browser.serve_site`)."""
    from tests.support.browser import serve_site

    async with serve_site(make_settings) as site:
        yield site


@pytest.fixture
async def articles_api(publisher: Publisher, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    """A client of the API (token :data:`tests.support.web_client.API_TOKEN`), the sample articles stored."""
    from tests.support.web_client import API_TOKEN, api_client

    monkeypatch.setenv("PUBLISHER_API_TOKEN", API_TOKEN)
    await publisher.intake.scan()
    async with api_client(publisher, API_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """A DKIM signing key; generating one takes a while, so a module's tests share it."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
