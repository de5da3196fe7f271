"""Fixtures of the vein-to-vein tests: a temporary database and a helper that walks a case to a step.

``engine`` and ``infused`` are SQLite, and also PostgreSQL in a module declaring
``DATABASE_BACKENDS = BOTH`` (tests/pg.py).

The walk uses an axicabtagene ciloleucel case for second-line LBCL (label: lymphodepletion on days
-5, -4, -3 and infusion 3 days after it ends; 2 x 10^6 CAR-positive viable T cells/kg, at most
2 x 10^8 — clinical-reference 1.2). Identifiers are invented.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, create_engine, event
from tests.pg import POSTGRESQL, PostgresServer

from actnav.logistics import bedside, service
from actnav.logistics.bedside import BagLabel, PatientIdentifiers
from actnav.logistics.dose import Certificate
from actnav.logistics.lifecycle import Step

UTC = dt.UTC
ACTOR = "nurse.k"
CASE = "CASE-0001"
PRODUCT = "axicabtagene_ciloleucel"
INDICATION = "lbcl-second-line"
FACILITY = "G1234"
WEIGHT_KG = 80.0
PATIENT: dict[str, Any] = {
    "family_name": "Doe",
    "given_name": "Jane",
    "birth_date": "1970-01-02",
    "mrn": "MRN-0001",
}
OTHER_PATIENT: dict[str, Any] = {
    "family_name": "Roe",
    "given_name": "John",
    "birth_date": "1965-07-30",
    "mrn": "MRN-0002",
}

# Day of each step of the walk (UTC noon).
DAYS: dict[Step, dt.date] = {
    Step.REFERRAL: dt.date(2026, 2, 1),
    Step.EVALUATION: dt.date(2026, 2, 2),
    Step.REVIEW: dt.date(2026, 2, 5),
    Step.AUTHORISATION: dt.date(2026, 2, 6),
    Step.COLLECTION: dt.date(2026, 2, 9),
    Step.SHIPPED_TO_MANUFACTURING: dt.date(2026, 2, 12),
    Step.MANUFACTURING: dt.date(2026, 2, 13),
    Step.RELEASE_TESTING: dt.date(2026, 2, 24),
    Step.SHIPPED_BACK: dt.date(2026, 2, 26),
    Step.RECEIVED: dt.date(2026, 2, 27),
    Step.LYMPHODEPLETION: dt.date(2026, 2, 28),
    Step.INFUSED: dt.date(2026, 3, 5),
    Step.MONITORING: dt.date(2026, 3, 6),
    Step.FOLLOW_UP: dt.date(2026, 3, 19),
    Step.CLOSED: dt.date(2027, 3, 5),
}
LD_START, LD_END = dt.date(2026, 2, 28), dt.date(2026, 3, 2)


def noon(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# When the walk is recorded ("now" of every write): after its last step, as a recorded step may not
# be dated in the future.
RECORDED = noon(dt.date(2027, 3, 10))


@pytest.fixture(autouse=True)
def _fast_identity_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap Argon2id parameters in tests (the product keeps argon2-cffi's RFC 9106 defaults)."""
    monkeypatch.setattr(bedside, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An empty database: a SQLite file, or PostgreSQL in modules that declare ``DATABASE_BACKENDS``."""
    made = _engine(database_url)
    yield made
    made.dispose()


def _engine(url: str) -> Engine:
    made = create_engine(url)
    if made.dialect.name == "sqlite":
        event.listen(made, "connect", _no_fsync)
    return made


def _walk_to_infusion(made: Engine) -> None:
    fast, kept = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1), bedside._hasher
    bedside._hasher = fast
    try:
        walk(made, Step.INFUSED)
    finally:
        bedside._hasher = kept
        made.dispose()


@pytest.fixture(scope="session")
def infused_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file holding CASE walked to infusion (9 custody entries), made once per session."""
    path = tmp_path_factory.mktemp("logistics") / "infused.db"
    _walk_to_infusion(_engine(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def infused_postgres(postgres_server: PostgresServer) -> str:
    """Name of a PostgreSQL database holding CASE walked to infusion, made once per session."""
    name = postgres_server.create_database()
    _walk_to_infusion(_engine(postgres_server.url(name)))
    return name


@pytest.fixture
def infused(database_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A fresh copy of the database walked to infusion, on ``database_backend`` (tests may tamper)."""
    if database_backend == POSTGRESQL:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = server.create_database(template=request.getfixturevalue("infused_postgres"))
        made = _engine(server.url(name))
        yield made
        made.dispose()
        server.drop_database(name)
        return
    copy = tmp_path / "infused.db"
    shutil.copyfile(request.getfixturevalue("infused_database"), copy)
    made = _engine(f"sqlite:///{copy}")
    yield made
    made.dispose()


def _no_fsync(dbapi_connection: Any, _record: object) -> None:
    # A throw-away database: skip fsync so the many small transactions of a walk stay fast.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


def person(data: dict[str, Any] | None = None) -> PatientIdentifiers:
    return PatientIdentifiers.model_validate(data or PATIENT)


def bag_for(din: str, data: dict[str, Any] | None = None) -> BagLabel:
    return BagLabel.model_validate({**(data or PATIENT), "din": din})


def move(engine: Engine, target: Step, case_ref: str = CASE, **kwargs: Any) -> None:
    at = kwargs.pop("at", None) or noon(DAYS[target])
    service.advance(
        engine,
        case_ref,
        target,
        at=at,
        recorded_at=RECORDED,
        actor=ACTOR,
        reason=kwargs.pop("reason", f"test: to {target.value}"),
        **kwargs,
    )


def custody(engine: Engine, din: str, event: str, day: dt.date, case_ref: str = CASE, hour: int = 9) -> None:
    service.append_custody_event(
        engine, case_ref, din, event, at=noon(day, hour), recorded_at=RECORDED, actor=ACTOR
    )


def walk(
    engine: Engine,
    until: Step,
    *,
    case_ref: str = CASE,
    patient: dict[str, Any] | None = None,
    facility: str = FACILITY,
    release_cells: float = 1.6e8,
) -> str | None:
    """Open a case and walk it to ``until`` (inclusive) the ordinary way; returns its DIN, if any."""
    service.open_case(
        engine,
        case_ref,
        PRODUCT,
        at=noon(DAYS[Step.REFERRAL]),
        recorded_at=RECORDED,
        actor=ACTOR,
        reason="referral received",
        identity=person(patient),
    )
    din: str | None = None
    order = [s for s in Step if s not in (Step.REFERRAL, Step.WITHDRAWN)]
    for step in order[: order.index(until) + 1]:
        day = DAYS[step]
        if step is Step.REVIEW:
            service.attach_report(
                engine,
                case_ref,
                sha256="ab" * 32,
                name="report.html",
                size=100,
                at=noon(day, 8),
                recorded_at=RECORDED,
                actor=ACTOR,
            )
            move(engine, step, case_ref)
        elif step is Step.AUTHORISATION:
            move(engine, step, case_ref, decision="proceed", indication_id=INDICATION)
        elif step is Step.SHIPPED_TO_MANUFACTURING:
            din = service.add_collection(
                engine, case_ref, facility=facility, at=noon(day, 8), recorded_at=RECORDED, actor=ACTOR
            ).text
            custody(engine, din, "labelled", day, case_ref, 9)
            custody(engine, din, "shipped", day, case_ref, 10)
            move(engine, step, case_ref)
        elif step is Step.MANUFACTURING:
            assert din is not None
            custody(engine, din, "received", day, case_ref, 9)
            move(engine, step, case_ref)
        elif step is Step.SHIPPED_BACK:
            assert din is not None
            service.case_certificate(
                engine,
                case_ref,
                WEIGHT_KG,
                Certificate(cells=release_cells, lot="LOT-1"),
                record=True,
                din=din,
                at=noon(day, 8),
                recorded_at=RECORDED,
                actor=ACTOR,
            )
            custody(engine, din, "shipped", day, case_ref, 10)
            move(engine, step, case_ref)
        elif step is Step.RECEIVED:
            assert din is not None
            custody(engine, din, "received", day, case_ref, 9)
            custody(engine, din, "stored", day, case_ref, 10)
            move(engine, step, case_ref)
        elif step is Step.LYMPHODEPLETION:
            move(engine, step, case_ref, lymphodepletion=(LD_START, LD_END, "Flu/Cy"), at=noon(day, 8))
        elif step is Step.INFUSED:
            assert din is not None
            custody(engine, din, "thawed", day, case_ref, 9)
            move(engine, step, case_ref, bag=bag_for(din, patient), wristband=person(patient))
        else:
            move(engine, step, case_ref)
    return din
