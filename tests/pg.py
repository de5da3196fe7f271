"""A throw-away PostgreSQL server for the storage and web tests, and the two-backend fixtures.

``postgres_server`` (session): a server of Debian's ``postgresql`` package (``initdb``/``pg_ctl``
under /usr/lib/postgresql/<version>/bin, installed by ``make system-deps``), initialised in a
temporary folder and listening only on a unix socket there; stopped and deleted at session end.
Outside CI a missing PostgreSQL skips the tests that need it; with ``CI=true`` it fails them
(:func:`tests.conftest.require_program`). As root, ``initdb`` and ``pg_ctl`` refuse to run, so the
server runs as the ``postgres`` user the package creates (``nobody`` if it is missing).

``database_backend`` (function): ``sqlite`` by default; a test module runs its database tests on
both by declaring ``DATABASE_BACKENDS = BOTH`` (``pytest_generate_tests`` in tests/conftest.py).
``database_url``: an empty database of that backend for this test only (a file in ``tmp_path``, or
a PostgreSQL database dropped after the test). ``migrated_database_url``: the same at the newest
schema, copied from one migrated once per session (copying is ~10x faster than migrating).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SQLITE, POSTGRESQL = "sqlite", "postgresql"
BOTH = (SQLITE, POSTGRESQL)
PORT = 5432  # only names the socket file in the server's own folder: no clash with other servers
FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


def _version(path: str) -> tuple[int, ...]:
    found = re.search(r"/postgresql/([\d.]+)/", path)
    return tuple(int(p) for p in found[1].split(".")) if found else ()


class PostgresServer:
    """A running throw-away server; databases are made and dropped through ``psql``-free SQL."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="actnav-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.run_as = self._unprivileged_user() if os.geteuid() == 0 else None
        self._names = itertools.count(1)
        self._template: str | None = None
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.folder.chmod(0o700)

    @staticmethod
    def _unprivileged_user() -> str:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            return name
        raise RuntimeError("running as root and neither the postgres nor the nobody user exists")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.folder)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = " ".join(
            [f"-k {self.folder}", "-c listen_addresses=''", f"-p {PORT}", *(f"-c {o}" for o in FAST)]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3 driver, unix socket)."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.folder}&port={PORT}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.folder), port=PORT, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql.encode())

    def create_database(self, template: str | None = None) -> str:
        """A new database (a copy of ``template`` if given); returns its name."""
        name = f"actnav_test_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def migrated_template(self) -> str:
        """Name of a database at the newest schema (made once), to copy with :meth:`create_database`."""
        if self._template is None:
            from actnav.store.db import create_schema, get_engine

            name = self.create_database()
            engine = get_engine(self.url(name))
            create_schema(engine)
            engine.dispose()  # a template must have no connections while it is copied
            self._template = name
        return self._template

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any connection still open to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def find_bindir() -> Path:
    """Folder of ``pg_ctl`` and ``initdb``: the newest /usr/lib/postgresql/<version>/bin, else PATH."""
    from tests.conftest import require_program  # tests.conftest imports this module

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version, reverse=True)
    return Path(os.path.realpath(require_program("pg_ctl", *candidates))).parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(find_bindir())
    try:
        server.start()
        yield server
    finally:
        server.stop()


def dispose(url: str) -> None:
    """Close the pooled connections of the cached engine of ``url`` (before dropping its database)."""
    from actnav.store.db import get_engine

    get_engine(url).dispose()


@pytest.fixture
def database_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (parametrised by tests/conftest.py ``pytest_generate_tests``)."""
    return str(getattr(request, "param", SQLITE))


@pytest.fixture
def database_url(database_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database of ``database_backend``, for this test only."""
    if database_backend == SQLITE:
        yield f"sqlite:///{tmp_path / 'actnav.db'}"
        return
    yield from _postgres_database(request, migrated=False)


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from actnav.store.db import create_schema, get_engine

    path = tmp_path_factory.mktemp("migrated") / "actnav.db"
    url = f"sqlite:///{path}"
    create_schema(get_engine(url))
    dispose(url)
    return path


@pytest.fixture
def migrated_database_url(
    database_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """URL of a database of ``database_backend`` at the newest schema, for this test only."""
    if database_backend == SQLITE:
        copy = tmp_path / "actnav.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), copy)
        yield f"sqlite:///{copy}"
        return
    yield from _postgres_database(request, migrated=True)


def _postgres_database(request: pytest.FixtureRequest, *, migrated: bool) -> Iterator[str]:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(template=server.migrated_template() if migrated else None)
    url = server.url(name)
    try:
        yield url
    finally:
        dispose(url)
        server.drop_database(name)
