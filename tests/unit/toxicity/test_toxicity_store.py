"""Recording a course for a case and reading it back (a temporary SQLite file and PostgreSQL database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from tests.pg import BOTH

from actnav.errors import InputError
from actnav.store.db import create_schema
from actnav.store.toxicity import ToxicityCourseRow, ToxicityGradeRow, read_course, record_course
from actnav.toxicity import Assessment, Course, grade_course, parse_input

DATABASE_BACKENDS = BOTH

RECORDED = dt.datetime(2025, 6, 5, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url)
    yield made
    made.dispose()


def _course() -> Course:
    parsed = parse_input(
        {
            "weight_kg": 71.5,
            "infusion_date": "2025-06-01",
            "age_years": 58,
            "assessments": [
                {"time": "2025-06-03T08:00:00+02:00", "temp_c": 38.9, "hypotension": True, "ice_score": 9},
                {
                    "time": "2025-06-02T08:00:00+02:00",
                    "temp_f": 98.6,
                    "ice": {"orientation": 4, "naming": 3, "commands": 1, "writing": 1, "attention": 1},
                },
                {
                    "time": "2025-06-04T08:00:00+02:00",
                    "temp_c": 37.0,
                    "vasopressors": ["Noradrenaline"],
                    "drugs_given": [
                        {"drug": "tocilizumab", "dose_mg": 572, "time": "2025-06-03T09:00:00+02:00"}
                    ],
                    "labs": [{"name": "ferritin", "value": 2400, "unit": "ng/mL"}],
                    "seizure": "resolved_rapidly",
                },
            ],
        }
    )
    assert isinstance(parsed, Course)
    return parsed


def test_a_recorded_course_reads_back_equal(engine: Engine) -> None:
    course = _course()
    course_id = record_course(engine, "CASE-0042", course, recorded_at=RECORDED)
    stored = read_course(engine, "CASE-0042")
    assert stored.id == course_id
    assert stored.course == course
    assert stored.grades == grade_course(course).assessments
    assert stored.max_grades == {"crs": 3, "icans": 3}
    assert "astct-crs version" in stored.grading_tables
    assert stored.recorded_at.replace(tzinfo=dt.UTC) == RECORDED


def test_the_grades_and_their_inputs_are_stored_as_rows(engine: Engine) -> None:
    record_course(engine, "CASE-0042", _course(), recorded_at=RECORDED)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(ToxicityGradeRow)) == 6
        top = session.scalars(
            select(ToxicityGradeRow).where(ToxicityGradeRow.syndrome == "crs", ToxicityGradeRow.grade == 3)
        ).one()
        assert top.inputs["vasopressors"] == ["norepinephrine"]
        assert top.deciding == "fever_not_required,hypotension"


def test_the_latest_course_of_a_case_is_read_unless_another_is_asked_for(engine: Engine) -> None:
    first = record_course(engine, "CASE-7", _course(), recorded_at=RECORDED)
    later = parse_input(
        {"weight_kg": 70, "assessments": [{"time": "2025-06-06T08:00:00+02:00", "temp_c": 37.0}]}
    )
    assert isinstance(later, Course)
    second = record_course(engine, "CASE-7", later, recorded_at=RECORDED)
    assert read_course(engine, "CASE-7").id == second
    assert read_course(engine, "CASE-7", course_id=first).course == _course()


def test_an_unknown_case_is_an_input_error(engine: Engine) -> None:
    create_schema(engine)
    with pytest.raises(InputError, match="no toxicity course recorded"):
        read_course(engine, "CASE-NONE")


@pytest.mark.parametrize("case_ref", ["", "Jane Doe", "x" * 101, "a/b"])
def test_a_malformed_case_reference_is_refused(engine: Engine, case_ref: str) -> None:
    with pytest.raises(InputError) as caught:
        record_course(engine, case_ref, _course(), recorded_at=RECORDED)
    assert caught.value.where == "case_ref"


def test_a_failed_record_writes_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    course = _course()
    graded = grade_course(course)
    calls = {"n": 0}
    real_dump = Assessment.model_dump

    def dump_then_break(self: Assessment, **kwargs: Any) -> dict[str, Any]:
        calls["n"] += 1
        data = real_dump(self, **kwargs)
        # The third assessment cannot be stored as JSON: the flush fails after two were added.
        return {**data, "broken": object()} if calls["n"] == 3 else data

    monkeypatch.setattr(Assessment, "model_dump", dump_then_break)
    # SQLAlchemy encodes JSON for SQLite (StatementError); psycopg encodes it itself (TypeError).
    with pytest.raises((StatementError, TypeError)):
        record_course(engine, "CASE-9", course, recorded_at=RECORDED, graded=graded)
    monkeypatch.undo()
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(ToxicityCourseRow)) == 0
        assert session.scalar(select(func.count()).select_from(ToxicityGradeRow)) == 0
