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
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from actnav.errors import InputError


class Base(DeclarativeBase):
    """Declarative base of every actnav table."""


NUL = "\x00"


@cache
def get_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL; creates the SQLite file's folder if needed.

    SQLite (``sqlite:///path``) and PostgreSQL (``postgresql+psycopg://user:password@host/db``,
    the psycopg 3 driver) are supported and migrated alike (:func:`create_schema`).

    Raises:
        InputError: the URL is not a valid SQLAlchemy URL, or names a driver that is not installed
            (names ``--database-url``; the password is never shown).
    """
    where = "--database-url / ACTNAV_DATABASE_URL"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        # The text may hold a password: show only that it is not a URL.
        raise InputError(
            "not a SQLAlchemy URL (expected e.g. sqlite:///path/actnav.db)", where=where
        ) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, future=True)
    except (ArgumentError, ImportError) as exc:
        safe = parsed.render_as_string(hide_password=True)
        raise InputError(f"cannot use the database URL {safe}: {exc}", where=where) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine, "handle_error", _refuse_nul)
    return engine


def storable(text: str) -> bool:
    """False when ``text`` holds a NUL character (U+0000), which no stored text can hold.

    PostgreSQL text and JSONB cannot hold it (a query with it fails there); a lookup by such a
    value matches nothing on every backend.
    """
    return NUL not in text


def _refuse_nul(context: ExceptionContext) -> None:
    # PostgreSQL refuses NUL in text ("cannot contain NUL (0x00) bytes") and in JSONB ("\u0000
    # cannot be converted to text"): input a form or file let through, not an internal error.
    message = str(context.original_exception)
    if "NUL (0x00)" in message or "\\u0000 cannot be converted" in message:
        raise InputError(
            "text cannot contain the NUL character (U+0000): remove it and try again", where="text"
        ) from context.original_exception


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
