"""Database tables of the toxicity capability, and recording a course for a case.

Three tables:

* ``toxicity_course``: one recorded course for a case reference (weight, infusion date, maximum
  grades, the grading-table versions used, when it was recorded; the product id and the CRS and
  ICANS summaries over time are kept in ``summary``, JSON, so no column was added). Recording the
  same case again adds a new course; :func:`read_course` returns the latest unless asked for another.
* ``toxicity_assessment``: its assessments in time order; the input as given (``payload``, JSON)
  and a few columns for queries (time, day, temperature, oxygen device, ICE and CAPD scores).
* ``toxicity_grade``: the CRS and the ICANS grade of each assessment with the reason, the inputs
  that set it and the whole result (``detail``, JSON).

:func:`record_course` writes all of it in one transaction (nothing is written if anything fails);
:func:`read_course` reads it back as the validated :class:`~actnav.toxicity.models.Course` and the
stored grades. :func:`add_course` and :func:`latest_course` do the same in the caller's session
(the web application writes the course and its audit event in one transaction). Case references
are pseudonymous (a case or study id), never a patient's name: they must match
``[A-Za-z0-9._:-]{1,100}``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from actnav.errors import InputError
from actnav.store.db import Base, create_schema, session_scope
from actnav.toxicity.course import AssessmentGrade, CourseGrade, SyndromeSummary, grade_course
from actnav.toxicity.crs import CrsGrade, load_crs_table
from actnav.toxicity.icans import IcansGrade, load_capd_table, load_icans_table
from actnav.toxicity.ice import load_ice_table
from actnav.toxicity.models import Course

CASE_REF = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class ToxicityCourseRow(Base):
    """A recorded course after infusion for one case."""

    __tablename__ = "toxicity_course"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(100), index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    weight_kg: Mapped[float] = mapped_column(Float)
    infusion_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    age_years: Mapped[float | None] = mapped_column(Float, nullable=True)
    crs_max_grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    icans_max_grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grading_tables: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    assessments: Mapped[list[ToxicityAssessmentRow]] = relationship(
        back_populates="course", cascade="all, delete-orphan", order_by="ToxicityAssessmentRow.seq"
    )


class ToxicityAssessmentRow(Base):
    """One assessment of a recorded course (``seq`` = position in time order)."""

    __tablename__ = "toxicity_assessment"
    __table_args__ = (UniqueConstraint("course_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("toxicity_course.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    input_index: Mapped[int] = mapped_column(Integer)
    time_utc: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    days_since_infusion: Mapped[float | None] = mapped_column(Float, nullable=True)
    temp_c: Mapped[float | None] = mapped_column(Float, nullable=True)
    oxygen_device: Mapped[str] = mapped_column(String(40))
    ice_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    capd_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    course: Mapped[ToxicityCourseRow] = relationship(back_populates="assessments")
    grades: Mapped[list[ToxicityGradeRow]] = relationship(
        back_populates="assessment", cascade="all, delete-orphan", order_by="ToxicityGradeRow.syndrome"
    )


class ToxicityGradeRow(Base):
    """The CRS or ICANS grade of one recorded assessment, with why and the inputs that set it."""

    __tablename__ = "toxicity_grade"
    __table_args__ = (UniqueConstraint("assessment_id", "syndrome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(
        ForeignKey("toxicity_assessment.id", ondelete="CASCADE"), index=True
    )
    syndrome: Mapped[str] = mapped_column(String(10))
    grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    deciding: Mapped[str | None] = mapped_column(String(100), nullable=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    assessment: Mapped[ToxicityAssessmentRow] = relationship(back_populates="grades")


@dataclass(frozen=True)
class StoredCourse:
    """A course read back from the database.

    Attributes:
        id: the course's database id.
        case_ref: the case reference it was recorded for.
        recorded_at: when it was recorded.
        course: the input, validated again.
        grades: the stored grades of each assessment, in time order.
        max_grades: ``{"crs": ..., "icans": ...}`` as stored.
        grading_tables: the grading-table versions used.
        crs / icans: CRS and ICANS over the course (maximum, onset, episodes) as stored, or
            ``None`` for a record without them.
    """

    id: int
    case_ref: str
    recorded_at: dt.datetime
    course: Course
    grades: tuple[AssessmentGrade, ...]
    max_grades: dict[str, int | None]
    grading_tables: str
    crs: SyndromeSummary | None = None
    icans: SyndromeSummary | None = None


def record_course(
    engine: Engine,
    case_ref: str,
    course: Course,
    *,
    recorded_at: dt.datetime,
    graded: CourseGrade | None = None,
) -> int:
    """Grade a course and record it with its grades for a case, in one transaction.

    Args:
        engine: the database (:func:`actnav.store.db.get_engine`); the tables are created if missing.
        case_ref: pseudonymous case reference, ``[A-Za-z0-9._:-]{1,100}`` (never a patient's name).
        course: the validated course.
        recorded_at: when it is recorded (the caller reads the clock).
        graded: the course's grades, if already computed (otherwise computed here).

    Returns:
        The id of the new course record.

    Raises:
        InputError: the case reference is malformed, or the database cannot be opened.
        DataFileError: a grading table under ``data/toxicity/`` is invalid.

    Source:
        Grades: ASTCT 2019 (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638).
    """
    _check_case_ref(case_ref)
    graded = graded if graded is not None else grade_course(course)
    create_schema(engine)
    with session_scope(engine) as session:
        return add_course(session, case_ref, course, recorded_at=recorded_at, graded=graded).id


def add_course(
    session: Session,
    case_ref: str,
    course: Course,
    *,
    recorded_at: dt.datetime,
    graded: CourseGrade | None = None,
) -> ToxicityCourseRow:
    """Grade a course and add it with its grades for a case, in the caller's transaction.

    The same record as :func:`record_course`, for callers that write other rows (an audit event)
    in the same transaction.

    Args:
        session: an open session on a database at the newest schema (the caller commits).
        case_ref: pseudonymous case reference, ``[A-Za-z0-9._:-]{1,100}`` (never a patient's name).
        course: the validated course.
        recorded_at: when it is recorded.
        graded: the course's grades, if already computed (otherwise computed here).

    Returns:
        The new course row (flushed: its ``id`` is set).

    Raises:
        InputError: the case reference is malformed.
        DataFileError: a grading table under ``data/toxicity/`` is invalid.

    Source:
        Grades: ASTCT 2019 (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638).
    """
    _check_case_ref(case_ref)
    graded = graded if graded is not None else grade_course(course)
    tables = "; ".join(
        table.label for table in (load_crs_table(), load_icans_table(), load_ice_table(), load_capd_table())
    )
    row = ToxicityCourseRow(
        case_ref=case_ref,
        recorded_at=recorded_at,
        weight_kg=course.weight_kg,
        infusion_date=course.infusion_date,
        age_years=course.age_years,
        crs_max_grade=graded.max_grades["crs"],
        icans_max_grade=graded.max_grades["icans"],
        grading_tables=tables,
        summary={
            "product": course.product,
            "crs": graded.crs.model_dump(mode="json"),
            "icans": graded.icans.model_dump(mode="json"),
        },
    )
    for seq, grade in enumerate(graded.assessments):
        assessment = course.assessments[grade.index]
        time = assessment.time
        if time is not None and time.utcoffset() is not None:
            time = (time - (time.utcoffset() or dt.timedelta(0))).replace(tzinfo=None)
        stored = ToxicityAssessmentRow(
            seq=seq,
            input_index=grade.index,
            time_utc=time,
            day=grade.day,
            days_since_infusion=grade.days_since_infusion,
            temp_c=assessment.temperature_c,
            oxygen_device=assessment.oxygen_device,
            ice_score=assessment.ice_total,
            capd_score=assessment.capd_score,
            payload=assessment.model_dump(mode="json", exclude_unset=True),
        )
        stored.grades.append(
            ToxicityGradeRow(
                syndrome="crs",
                grade=grade.crs.grade,
                status=grade.crs.status,
                reason=grade.crs.reason,
                deciding=",".join(grade.crs.set_by) or None,
                inputs=grade.crs.model_dump(mode="json")["inputs"],
                detail=grade.crs.model_dump(mode="json"),
            )
        )
        stored.grades.append(
            ToxicityGradeRow(
                syndrome="icans",
                grade=grade.icans.grade,
                status=grade.icans.status,
                reason=grade.icans.reason,
                deciding=grade.icans.deciding_domain,
                inputs=grade.icans.model_dump(mode="json")["inputs"],
                detail=grade.icans.model_dump(mode="json"),
            )
        )
        row.assessments.append(stored)
    session.add(row)
    session.flush()
    return row


def read_course(engine: Engine, case_ref: str, *, course_id: int | None = None) -> StoredCourse:
    """Read back the latest course recorded for a case (or the one with ``course_id``).

    Args:
        engine: the database.
        case_ref: the case reference.
        course_id: a specific course record of this case, or ``None`` for the latest.

    Returns:
        The :class:`StoredCourse`.

    Raises:
        InputError: the case reference is malformed, or nothing is recorded for it.
    """
    _check_case_ref(case_ref)
    create_schema(engine)
    with session_scope(engine) as session:
        stored = latest_course(session, case_ref, course_id=course_id)
    if stored is None:
        what = f"course {course_id}" if course_id is not None else "no toxicity course"
        raise InputError(f"{what} recorded for this case", where=f"case {case_ref}")
    return stored


def latest_course(session: Session, case_ref: str, *, course_id: int | None = None) -> StoredCourse | None:
    """The latest course recorded for a case (or the one with ``course_id``), in the caller's session.

    Args:
        session: an open session on a database at the newest schema.
        case_ref: the case reference.
        course_id: a specific course record of this case, or ``None`` for the latest.

    Returns:
        The :class:`StoredCourse`, or ``None`` when nothing is recorded (or no such course).

    Raises:
        InputError: the case reference is malformed.
    """
    _check_case_ref(case_ref)
    query = select(ToxicityCourseRow).where(ToxicityCourseRow.case_ref == case_ref)
    if course_id is not None:
        query = query.where(ToxicityCourseRow.id == course_id)
    row = session.scalars(query.order_by(ToxicityCourseRow.id.desc()).limit(1)).first()
    if row is None:
        return None
    by_index = sorted(row.assessments, key=lambda a: a.input_index)
    course = Course.model_validate(
        {
            "weight_kg": row.weight_kg,
            "infusion_date": row.infusion_date.isoformat() if row.infusion_date else None,
            "age_years": row.age_years,
            "product": (row.summary or {}).get("product"),
            "assessments": [a.payload for a in by_index],
        }
    )
    grades = []
    for stored in row.assessments:
        details = {g.syndrome: g.detail for g in stored.grades}
        grades.append(
            AssessmentGrade(
                index=stored.input_index,
                time=course.assessments[stored.input_index].time,
                day=stored.day,
                days_since_infusion=stored.days_since_infusion,
                crs=CrsGrade.model_validate(details["crs"]),
                icans=IcansGrade.model_validate(details["icans"]),
            )
        )
    return StoredCourse(
        id=row.id,
        case_ref=row.case_ref,
        recorded_at=row.recorded_at,
        course=course,
        grades=tuple(grades),
        max_grades={"crs": row.crs_max_grade, "icans": row.icans_max_grade},
        grading_tables=row.grading_tables,
        crs=_summary(row.summary, "crs"),
        icans=_summary(row.summary, "icans"),
    )


def _summary(summary: dict[str, Any] | None, name: str) -> SyndromeSummary | None:
    stored = (summary or {}).get(name)
    return SyndromeSummary.model_validate(stored) if isinstance(stored, dict) else None


def _check_case_ref(case_ref: str) -> None:
    if not CASE_REF.match(case_ref):
        raise InputError(
            "a case reference is 1-100 letters, digits or . _ : - (a pseudonymous id, never a name)",
            where="case_ref",
        )
