"""The same store on SQLite and PostgreSQL: lookups, refused text and connection errors.

PostgreSQL text and JSONB cannot hold the NUL character (U+0000); SQLite can. A lookup by a value
holding it matches nothing on both; writing it on PostgreSQL is an input error, not a crash.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from tests.pg import BOTH, POSTGRESQL

from actnav.errors import InputError
from actnav.store.accounts import Role, audit, audit_events, authenticate, create_user, user_by_username
from actnav.store.db import create_schema, get_engine, session_scope, storable
from actnav.store.patients import PatientRow, patient_by_public_id

DATABASE_BACKENDS = BOTH
PASSWORD = "correct horse battery"


@pytest.fixture
def engine(migrated_database_url: str) -> Engine:
    made = get_engine(migrated_database_url)
    create_schema(made)
    with session_scope(made) as session:
        create_user(session, username="coord", password=PASSWORD, role=Role.COORDINATOR)
        session.add(
            PatientRow(
                public_id="abcDEF123456",
                label="test record",
                source="example",
                bundle={"resourceType": "Bundle"},
                created_at=dt.datetime(2026, 11, 29, tzinfo=dt.UTC),
            )
        )
        audit(session, None, "view", "patient", "abcDEF123456")
    return made


def test_storable_text_has_no_nul() -> None:
    assert storable("CASE-0001")
    assert not storable("CASE\x00-0001")


def test_lookups_by_a_value_with_nul_match_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert patient_by_public_id(session, "abcDEF123456") is not None
        assert patient_by_public_id(session, "abcDEF\x00123456") is None
        assert user_by_username(session, " Coord ") is not None
        assert user_by_username(session, "coo\x00rd") is None
        assert authenticate(session, "coord", PASSWORD) is not None
        assert authenticate(session, "coo\x00rd", PASSWORD) is None
        assert audit_events(session, action="view")[1] == 1
        assert audit_events(session, action="vi\x00ew") == ([], 0)


@pytest.mark.parametrize("database_backend", [POSTGRESQL], indirect=True)  # SQLite stores NUL
def test_text_with_nul_is_an_input_error_on_postgresql(engine: Engine) -> None:
    for field, value in (("label", "a\x00b"), ("bundle", {"resourceType": "Bundle", "id": "a\x00b"})):
        row = PatientRow(
            public_id=f"nul{field}",
            label="test record",
            source="example",
            bundle={"resourceType": "Bundle"},
            created_at=dt.datetime(2026, 11, 29, tzinfo=dt.UTC),
        )
        setattr(row, field, value)
        with pytest.raises(InputError, match="NUL character") as caught, session_scope(engine) as session:
            session.add(row)
        assert caught.value.where == "text"
    with session_scope(engine) as session:  # nothing was written; the connection is still usable
        assert patient_by_public_id(session, "nullabel") is None


def test_an_unreachable_server_is_an_input_error_without_the_password() -> None:
    url = "postgresql+psycopg://actnav:s3cret-pw@/actnav?host=/nonexistent-actnav-socket-dir&port=1"
    with pytest.raises(InputError) as caught:
        create_schema(get_engine(url))
    shown = f"{caught.value} {caught.value.where}"
    assert "s3cret-pw" not in shown
    assert "postgresql+psycopg://actnav:***@/actnav" in shown


def test_a_malformed_url_is_an_input_error_without_the_text() -> None:
    with pytest.raises(InputError) as caught:
        get_engine("not a url with s3cret-pw")
    assert "s3cret-pw" not in str(caught.value)
    assert caught.value.where == "--database-url / ACTNAV_DATABASE_URL"
