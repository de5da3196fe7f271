"""``actnav users`` and ``actnav patients`` commands on a temporary SQLite database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from tests.unit.web.conftest import ALL_BUNDLE, MELANOMA_BUNDLE
from typer.testing import CliRunner

from actnav.cli import app
from actnav.store.accounts import AuditEventRow, UserRow
from actnav.store.db import get_engine, session_scope

runner = CliRunner()


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_users_create_hashes_the_password_and_audits(tmp_path: Path) -> None:
    url = _url(tmp_path)
    done = runner.invoke(
        app,
        ["users", "create", "coord", "--role", "coordinator", "--password-stdin", "--database-url", url],
        input="a long enough password\n",
    )
    assert done.exit_code == 0, done.output
    with session_scope(get_engine(url)) as session:
        user = session.scalars(select(UserRow)).one()
        assert user.role == "coordinator"
        assert user.password_hash.startswith("$argon2id$")
        assert "a long enough password" not in user.password_hash
        events = session.scalars(select(AuditEventRow)).all()
        assert [(e.action, e.resource_type) for e in events] == [("create", "user")]


def test_users_create_refuses_a_short_password_and_an_unknown_role(tmp_path: Path) -> None:
    url = _url(tmp_path)
    short = runner.invoke(
        app,
        ["users", "create", "coord", "--role", "coordinator", "--password-stdin", "--database-url", url],
        input="short\n",
    )
    assert short.exit_code == 2
    assert "password: must have at least 10 characters" in short.output
    role = runner.invoke(
        app,
        ["users", "create", "coord", "--role", "nurse", "--password-stdin", "--database-url", url],
        input="x" * 12 + "\n",
    )
    assert role.exit_code == 2
    assert "--role: unknown role 'nurse'" in role.output


def test_patient_account_needs_an_existing_record(tmp_path: Path) -> None:
    url = _url(tmp_path)
    done = runner.invoke(
        app,
        [
            "users",
            "create",
            "pat",
            "--role",
            "patient",
            "--patient",
            "nope",
            "--password-stdin",
            "--database-url",
            url,
        ],
        input="a long enough password\n",
    )
    assert done.exit_code == 2
    assert "--patient: no patient 'nope'" in done.output


def test_patients_load_examples_once(tmp_path: Path) -> None:
    url = _url(tmp_path)
    args = ["patients", "load", "--example", "--as-of", "2026-11-29", str(ALL_BUNDLE), str(MELANOMA_BUNDLE)]
    first = runner.invoke(app, [*args, "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "Loaded 2 patient(s); 0 already present." in first.output
    again = runner.invoke(app, [*args, "--database-url", url])
    assert "Loaded 0 patient(s); 2 already present." in again.output
    listed = runner.invoke(app, ["patients", "list", "--database-url", url])
    assert listed.output.count("example") == 2


def test_patients_load_a_bad_file_names_it_and_stores_nothing(tmp_path: Path) -> None:
    url = _url(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "entry": []}')
    done = runner.invoke(app, ["patients", "load", str(bad), "--as-of", "2026-11-29", "--database-url", url])
    assert done.exit_code == 2
    assert "no Patient" in done.output
    listed = runner.invoke(app, ["patients", "list", "--database-url", url])
    assert listed.output.strip() == ""
