"""``sqlalchemy.ext.asyncio`` without the ORM, until something asks for the ORM's part.

The store uses SQLAlchemy Core only: the async engine and connection, never a session.
But the package ``sqlalchemy.ext.asyncio`` imports its session and scoping modules,
and with them the whole ORM, which costs a command about 0.1 s and 6 MB before it
does anything (issue 18, "lean start-up").  :func:`install` (called by
``publisher/__init__.py``, so before any module imports the package) has the package
imported as its engine and result modules alone; the first use of any other name of
it (``AsyncSession``, ``async_sessionmaker``...) runs the package's own ``__init__``,
ORM and all, so every name of it still works, the ORM loading only when used.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

PACKAGE = "sqlalchemy.ext.asyncio"

# The names of the package the store imports (its engine and result modules), as its
# __init__ binds them; any other name loads the rest.
_ENGINE_NAMES = ("AsyncConnection", "AsyncEngine", "AsyncTransaction", "async_engine_from_config",
                 "create_async_engine", "create_async_pool_from_url")
_RESULT_NAMES = ("AsyncMappingResult", "AsyncResult", "AsyncScalarResult", "AsyncTupleResult")


class _CoreFirstLoader:
    """Loads the package with its engine names only; its own loader runs at the first other name."""

    def __init__(self, package_loader: Any) -> None:
        self._package_loader = package_loader

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module, with the package's __path__: its submodules import as usual

    def exec_module(self, module: ModuleType) -> None:
        from sqlalchemy.ext.asyncio import engine, result
        from sqlalchemy.util import concurrency

        for name in _ENGINE_NAMES:
            setattr(module, name, getattr(engine, name))
        for name in _RESULT_NAMES:
            setattr(module, name, getattr(result, name))
        concurrency._concurrency_shim._initialize()  # as the package's __init__ does: no greenlet, an error now

        def rest_of_package(name: str) -> Any:
            del module.__getattr__  # type: ignore[attr-defined]  # once: the package's __init__ binds the rest
            self._package_loader.exec_module(module)
            return getattr(module, name)

        module.__getattr__ = rest_of_package  # type: ignore[attr-defined]  # PEP 562: only for names not bound yet


class _Finder:
    """Finds the package as the import system would, and gives it the loader above."""

    @staticmethod
    def find_spec(fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != PACKAGE:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _CoreFirstLoader(spec.loader)  # type: ignore[assignment]
        return spec


def install() -> None:
    """Import the package lean from now on; nothing changes once it has been imported."""
    if PACKAGE not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
