"""Alembic environment of actnav: runs the migrations on the connection actnav passes in.

actnav runs migrations itself (:func:`actnav.store.migrate.migrate`); the engine's connection
arrives in ``config.attributes["connection"]``. Autogenerate compares against every table
declared on :class:`actnav.store.db.Base`.
"""

from __future__ import annotations

from alembic import context

import actnav.store.tables  # noqa: F401  (registers the tables on Base)
from actnav.store.db import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - actnav always passes a connection
    raise RuntimeError("run migrations through actnav.store.migrate.migrate(engine)")

only = config.attributes.get("include_tables")  # used by scripts/new_migration.py --tables


def _include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return only is None or type_ != "table" or name in only


context.configure(
    connection=connection,
    include_object=_include,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
