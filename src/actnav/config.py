"""One settings object read from the environment when asked for; nothing happens at import.

Environment variables:

* ``ACTNAV_DATABASE_URL``: a SQLAlchemy URL (``sqlite:///path.db``,
  ``postgresql+psycopg://user@host/db``). Default: a SQLite file ``actnav.db`` in the user's data
  directory (``platformdirs.user_data_dir("actnav")``).
* ``ACTNAV_DEBUG``: ``1`` shows tracebacks for internal errors in the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str
    debug: bool = False


def default_database_url() -> str:
    """``sqlite:///<user data dir>/actnav.db`` (the folder is created when first used)."""
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('actnav')) / 'actnav.db'}"


def get_settings(database_url: str | None = None) -> Settings:
    """Settings from the environment; an explicit ``database_url`` (a CLI option) wins."""
    url = database_url or os.environ.get("ACTNAV_DATABASE_URL") or default_database_url()
    return Settings(database_url=url, debug=os.environ.get("ACTNAV_DEBUG") == "1")
