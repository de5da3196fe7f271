"""Commands of the web application: ``actnav serve``, ``actnav users ...``, ``actnav patients ...``.

::

    actnav serve [--host 127.0.0.1] [--port 8000] [--database-url URL]
    actnav users create USERNAME --role coordinator|physician|patient [--name TEXT]
                        [--patient PUBLIC_ID] [--password-stdin] [--database-url URL]
    actnav users list [--database-url URL]
    actnav patients load BUNDLE... [--as-of YYYY-MM-DD] [--example] [--database-url URL]
    actnav patients list [--database-url URL]

Passwords are asked twice at the terminal (not echoed) or read from standard input with
``--password-stdin``; they never appear on the command line.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from actnav.clikit import guard
from actnav.errors import InputError

users_app = typer.Typer(help="Accounts of the web application.", no_args_is_help=True, rich_markup_mode=None)
patients_app = typer.Typer(
    help="Patients stored for the web application.", no_args_is_help=True, rich_markup_mode=None
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL. Default: ACTNAV_DATABASE_URL, else a SQLite file in the user data folder.",
        show_default=False,
    ),
]


def _engine(database_url: str | None):  # type: ignore[no-untyped-def]
    from actnav.config import get_settings
    from actnav.store.db import create_schema, get_engine

    engine = get_engine(get_settings(database_url).database_url)
    create_schema(engine)
    return engine


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = None,
) -> None:
    """Start the web application (care team and patients) at http://HOST:PORT/.

    The database is created or upgraded first. Make the first account with
    ``actnav users create``. Outside localhost, put the server behind HTTPS: its cookies are Secure.
    """

    def run() -> None:
        import uvicorn

        from actnav.web.app import create_app

        app = create_app(database_url)
        typer.echo(f"actnav web application: http://{host}:{port}/  (Ctrl+C to stop)")
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

    guard(run)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
        if not text:
            raise InputError("no password on standard input", where="--password-stdin")
        return text
    first = typer.prompt("Password", hide_input=True)
    second = typer.prompt("Repeat the password", hide_input=True)
    if first != second:
        raise InputError("the two passwords differ", where="password")
    return str(first)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="3-64 characters: a-z, 0-9, '.', '_' or '-'.")],
    role: Annotated[str, typer.Option("--role", help="coordinator, physician or patient.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the username).")] = None,
    patient: Annotated[
        str | None,
        typer.Option("--patient", metavar="PUBLIC_ID", help="For a patient account: the record it may see."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an account (the first one is usually a coordinator)."""

    def run() -> None:
        from actnav.store.accounts import Role, audit, create_user
        from actnav.store.db import session_scope
        from actnav.store.patients import patient_by_public_id

        try:
            chosen = Role(role.strip().lower())
        except ValueError:
            raise InputError(
                f"unknown role {role!r}", where="--role", hint="coordinator, physician or patient"
            ) from None
        engine = _engine(database_url)
        password = _read_password(password_stdin)
        with session_scope(engine) as session:
            patient_id = None
            if patient is not None:
                row = patient_by_public_id(session, patient.strip())
                if row is None:
                    raise InputError(
                        f"no patient {patient!r}", where="--patient", hint="see actnav patients list"
                    )
                patient_id = row.id
            user = create_user(
                session,
                username=username,
                password=password,
                role=chosen,
                display_name=name,
                patient_id=patient_id,
            )
            audit(session, None, "create", "user", user.id, detail=f"role={chosen.value}")
            typer.echo(f"Created {chosen.value} account {user.username!r}.")

    guard(run)


@users_app.command("list")
def users_list(database_url: DatabaseUrl = None) -> None:
    """List accounts: username, role, active."""

    def run() -> None:
        from sqlalchemy import select

        from actnav.store.accounts import UserRow
        from actnav.store.db import session_scope

        with session_scope(_engine(database_url)) as session:
            for user in session.scalars(select(UserRow).order_by(UserRow.username)):
                state = "active" if user.active else "inactive"
                typer.echo(f"{user.username}  {user.role}  {state}")

    guard(run)


@patients_app.command("load")
def patients_load(
    bundles: Annotated[list[Path], typer.Argument(help="FHIR R4 Bundle files.", metavar="BUNDLE...")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", metavar="YYYY-MM-DD", help="Evaluation date (default today).")
    ] = None,
    example: Annotated[
        bool, typer.Option("--example", help="Mark them as synthetic examples; skip files already loaded.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Store patients from FHIR Bundles and evaluate them (all or nothing per file)."""

    def run() -> None:
        from sqlalchemy import select

        from actnav.care.intake import register_patient
        from actnav.cli import parse_as_of
        from actnav.patient.fhir import parse_bundle_json
        from actnav.store.db import session_scope
        from actnav.store.patients import PatientRow

        on = parse_as_of(as_of) if as_of else dt.date.today()
        engine = _engine(database_url)
        with session_scope(engine) as session:
            known = {
                row.label for row in session.scalars(select(PatientRow).where(PatientRow.source == "example"))
            }
        loaded = skipped = 0
        for path in bundles:
            if not path.is_file():
                raise InputError("no such file", where=str(path))
            data = parse_bundle_json(path.read_bytes(), where=str(path))
            label = f"{path.stem} (synthetic)" if example else None
            if example and label in known:
                skipped += 1
                continue
            done = register_patient(
                engine, data, as_of=on, actor=None, source="example" if example else "upload", label=label
            )
            loaded += 1
            typer.echo(f"{done.public_id}  {path.name}")
        typer.echo(f"Loaded {loaded} patient(s); {skipped} already present.")

    guard(run)


@patients_app.command("list")
def patients_list(database_url: DatabaseUrl = None) -> None:
    """List stored patients: public id, label, source."""

    def run() -> None:
        from sqlalchemy import select

        from actnav.store.db import session_scope
        from actnav.store.patients import PatientRow

        with session_scope(_engine(database_url)) as session:
            for row in session.scalars(select(PatientRow).order_by(PatientRow.id)):
                typer.echo(f"{row.public_id}  {row.label}  {row.source}")

    guard(run)
