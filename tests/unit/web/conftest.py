"""Fixtures of the web tests: an app on a fresh database with accounts and example patients.

* ``web``: a :class:`WebWorld` — the app, two patients loaded from examples/patients (the ALL and
  the BRAF V600E melanoma bundles), and accounts ``coord`` (coordinator), ``doc`` (physician),
  ``pat-all`` and ``pat-mel`` (patients linked to one record each). Password of all: PASSWORD.
* ``world.client(username)``: a TestClient signed in as that account (cookie), with
  ``client.csrf`` holding the session's CSRF token for writes.
The evaluation date is fixed at 2026-11-29 (the examples are written for it). The database is a
SQLite file; the modules named in ``ON_POSTGRESQL`` run a second time on PostgreSQL (tests/pg.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.pg import BOTH, POSTGRESQL, SQLITE, PostgresServer, dispose

from actnav.care.intake import register_patient
from actnav.store.accounts import Role, create_user
from actnav.store.db import session_scope

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "patients"
AS_OF = dt.date(2026, 11, 29)
PASSWORD = "correct horse battery"
ALL_BUNDLE = EXAMPLES / "all-second-relapse-34f.json"
MELANOMA_BUNDLE = EXAMPLES / "melanoma-braf-v600e-no-braf-inhibitor-42m.json"
# Modules whose ``web`` world also runs on PostgreSQL (tests/pg.py); the rest use SQLite only.
ON_POSTGRESQL = frozenset(
    {"test_foundation", "test_access", "test_consults", "test_reviews", "test_toxicity_pages"}
)


class SignedIn(TestClient):
    csrf: str = ""


@dataclass
class WebWorld:
    app: FastAPI
    patients: dict[str, str] = field(default_factory=dict)  # name -> public id
    clients: list[TestClient] = field(default_factory=list)

    def anonymous(self) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver")
        self.clients.append(client)
        return client

    def client(self, username: str) -> SignedIn:
        client = SignedIn(self.app, base_url="https://testserver")
        self.clients.append(client)
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, "login form has no CSRF token"
        done = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token[1], "next": "/"},
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        me = client.get("/api/me")
        assert me.status_code == 200
        client.csrf = _csrf_of(client)
        return client


def _csrf_of(client: TestClient) -> str:
    # The session's CSRF token, read from the store (pages embed it in their forms).
    from actnav.store.accounts import session_account
    from actnav.web.security import SESSION_COOKIE

    token = client.cookies.get(SESSION_COOKIE)
    app: FastAPI = client.app  # type: ignore[assignment]
    with session_scope(app.state.engine) as session:
        account = session_account(session, token)
    assert account is not None
    return account.csrf_token


def build_world(tmp_path: Path, database_url: str | None = None) -> WebWorld:
    """The app on ``database_url`` (default: a new SQLite file in ``tmp_path``) with the example world."""
    from actnav.web.app import create_app

    app = create_app(database_url or f"sqlite:///{tmp_path / 'web.db'}", clock=lambda: AS_OF)
    world = WebWorld(app=app)
    engine = app.state.engine
    for name, path in (("all", ALL_BUNDLE), ("melanoma", MELANOMA_BUNDLE)):
        done = register_patient(
            engine,
            json.loads(path.read_text()),
            as_of=AS_OF,
            actor=None,
            source="example",
            label=f"{name} example",
        )
        world.patients[name] = done.public_id
    with session_scope(engine) as session:
        from actnav.store.patients import patient_by_public_id

        all_row = patient_by_public_id(session, world.patients["all"])
        mel_row = patient_by_public_id(session, world.patients["melanoma"])
        assert all_row is not None and mel_row is not None
        create_user(
            session,
            username="coord",
            password=PASSWORD,
            role=Role.COORDINATOR,
            display_name="Casey Coordinator",
        )
        create_user(
            session, username="doc", password=PASSWORD, role=Role.PHYSICIAN, display_name="Dr Pat Physician"
        )
        create_user(session, username="pat-all", password=PASSWORD, role=Role.PATIENT, patient_id=all_row.id)
        create_user(session, username="pat-mel", password=PASSWORD, role=Role.PATIENT, patient_id=mel_row.id)
    return world


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The modules of :data:`ON_POSTGRESQL` run once on SQLite and once on PostgreSQL."""
    if "web_backend" in metafunc.fixturenames and metafunc.module.__name__.split(".")[-1] in ON_POSTGRESQL:
        metafunc.parametrize("web_backend", BOTH, indirect=True, scope="module")


@pytest.fixture(scope="module")
def web_backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", SQLITE))


@pytest.fixture(scope="module")
def web(
    web_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[WebWorld]:
    server: PostgresServer | None = None
    database: str | None = None
    if web_backend == POSTGRESQL:
        server = request.getfixturevalue("postgres_server")
        database = server.create_database(template=server.migrated_template())
    world = build_world(tmp_path_factory.mktemp("web"), server.url(database) if server and database else None)
    yield world
    for client in world.clients:
        client.close()
    if server is not None and database is not None:
        dispose(server.url(database))
        server.drop_database(database)
