"""Alembic migrations: the newest revision equals the declared tables; old databases upgrade."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from tests.pg import BOTH

import actnav.store.tables  # noqa: F401
from actnav.store.db import Base
from actnav.store.migrate import BASELINE_TABLES, migrate

DATABASE_BACKENDS = BOTH


def test_upgrade_from_empty_matches_the_declared_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_a_database_from_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old = [
        t
        for name, t in Base.metadata.tables.items()
        if name in BASELINE_TABLES | {"toxicity_assessment", "toxicity_grade"}
    ]
    Base.metadata.create_all(engine, tables=old)
    migrate(engine)
    names = set(inspect(engine).get_table_names())
    assert {"alembic_version", "app_user", "patient", "audit_event"} <= names
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    migrate(create_engine(url))
    migrate(create_engine(url))
    assert "app_user" in inspect(create_engine(url)).get_table_names()
