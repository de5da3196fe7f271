"""Shared test fixtures.

``shared_dir``: the developers' shared folder (``../shared`` beside the project root) with the
clinical reference and real public data. Outside CI a test that needs it skips with a reason when
it is absent; in CI (``CI=true``) its absence is a failure. ``require_program``: the same rule for a
system program (chromium for the browser tests, installed by ``make system-deps``).
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
