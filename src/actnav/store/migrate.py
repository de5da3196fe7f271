"""Database migrations (Alembic): the one way actnav creates and upgrades its schema.

The revisions live in ``actnav/store/migrations/versions/``; :func:`migrate` brings a database to
the newest one. A database made by an actnav release before migrations existed (its tables were
created directly, there is no ``alembic_version`` table) is first stamped with the baseline
revision, whose tables it already has, and then upgraded.

Add a revision after changing tables::

    python scripts/new_migration.py "what changed"
"""

from __future__ import annotations

from pathlib import Path
from threading import Lock

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError, ProgrammingError

from actnav.errors import InputError

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
# Tables of the baseline revision; their presence without alembic_version marks a pre-migration database.
BASELINE_TABLES = frozenset({"trial", "sync_run", "trial_change", "sync_seen", "toxicity_course"})

_done: set[str] = set()
_lock = Lock()


def alembic_config() -> Config:
    """The Alembic configuration pointing at the packaged revisions (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade the database to the newest revision (once per engine and process).

    Raises:
        InputError: the database cannot be reached or written (names the URL without password).
    """
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        if key in _done:
            return
        try:
            with engine.begin() as connection:
                cfg = alembic_config()
                cfg.attributes["connection"] = connection
                tables = set(inspect(connection).get_table_names())
                if "alembic_version" not in tables and BASELINE_TABLES & tables:
                    command.stamp(cfg, BASELINE)
                command.upgrade(cfg, "head")
        except (OperationalError, ProgrammingError) as exc:
            safe = engine.url.render_as_string(hide_password=True)
            raise InputError(f"cannot open or upgrade the database {safe}: {exc.orig}", where=safe) from exc
        _done.add(key)
