"""Shared test fixtures.

``shared_dir``: the developers' shared folder (``../shared`` beside the project root) with the
clinical reference and real public data. Outside CI a test that needs it skips with a reason when
it is absent; in CI (``CI=true``) its absence is a failure. ``require_program``: the same rule for a
system program (chromium for the browser tests, installed by ``make system-deps``).
``postgres_server``, ``database_backend``, ``database_url``, ``migrated_database_url``: SQLite and
a throw-away PostgreSQL server for the storage and web tests (tests/pg.py); a module declaring
``DATABASE_BACKENDS = BOTH`` runs its database tests on both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def require_shared(*parts: str) -> Path:
    """Path under ../shared, skipping (or failing in CI) when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing: the shared data folder is needed for this test"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_program(name: str, *candidates: str) -> str:
    """Path of the program ``name`` (first of ``candidates`` that exists, else ``name`` on PATH).

    Skips the test when it is missing, or fails when ``CI=true`` (CI installs it: ``make system-deps``).
    """
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: run `make system-deps` as root (or install it with apt)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


# PostgreSQL and SQLite for the storage and web tests (tests/pg.py).
from tests.pg import (  # noqa: E402, F401
    database_backend,
    database_url,
    migrated_database_url,
    migrated_sqlite_file,
    postgres_server,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a module's database tests on each backend its ``DATABASE_BACKENDS`` names (default SQLite).

    A test choosing its backend itself (``@pytest.mark.parametrize("database_backend", ...,
    indirect=True)``) keeps its choice.
    """
    backends = getattr(metafunc.module, "DATABASE_BACKENDS", None)
    chosen = any("database_backend" in m.args[0] for m in metafunc.definition.iter_markers("parametrize"))
    if backends and "database_backend" in metafunc.fixturenames and not chosen:
        metafunc.parametrize("database_backend", backends, indirect=True)
