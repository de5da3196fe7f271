"""Database engine, schema creation and transactional sessions.

Every capability that stores data declares its tables on :class:`Base` in its own module of
``actnav.store`` and writes inside :func:`session_scope`, which commits on success and rolls
back on any error, so a failed operation never half-writes stored data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from actnav.errors import InputError


class Base(DeclarativeBase):
    """Declarative base of every actnav table."""


@cache
def get_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL; creates the SQLite file's folder if needed.

    Raises:
        InputError: the URL is not a valid SQLAlchemy URL (names ``--database-url``).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(
            f"not a SQLAlchemy URL: {url!r}", where="--database-url / ACTNAV_DATABASE_URL"
        ) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, future=True)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_schema(engine: Engine) -> None:
    """Bring the database to the newest schema by running the Alembic migrations.

    See :mod:`actnav.store.migrate`; a database from before migrations is stamped and upgraded.

    Raises:
        InputError: the database cannot be reached or written (names the URL without password).
    """
    from actnav.store.migrate import migrate

    migrate(engine)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: commit when the block ends, roll back if it raises."""
    session = sessionmaker(bind=engine, future=True)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
