"""Patient records of the web application, their evaluations, review decisions and consult requests.

Tables:

* ``patient``: one person under evaluation. ``public_id`` (random, 16 URL-safe characters) is the
  only id that appears in addresses, so ids cannot be guessed in turn; ``label`` is the care
  team's name for the record (shown on pages, never logged); ``bundle`` is the FHIR R4 Bundle as
  received (JSON); ``source`` says how it came (``upload``, ``form``, ``example``).
* ``evaluation``: each evaluation of a patient (the report of ``actnav evaluate`` as JSON, with
  its date and who ran it). The latest one is shown.
* ``mdt_review``: a multidisciplinary review record: meeting date, decision, the product or trial
  decided on, reasons, attendees, who signed and when. Signed records are never edited; a new
  decision is a new record.
* ``consult_request``: a patient's or caregiver's request for a consultation: preferred time and
  contact channel, topic, status (``requested``, ``scheduled``, ``declined``, ``completed``),
  the time given, the coordinator's reply.
"""

from __future__ import annotations

import datetime as dt
import secrets
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from actnav.store.db import Base, storable

_JSON = JSON().with_variant(JSONB(), "postgresql")


class ReviewDecision(StrEnum):
    """Decisions a multidisciplinary review can record."""

    PROCEED = "proceed"
    PROCEED_TRIAL = "proceed_trial"
    MORE_WORKUP = "more_workup"
    DEFER = "defer"
    NOT_CANDIDATE = "not_candidate"


class ConsultChannel(StrEnum):
    PHONE = "phone"
    VIDEO = "video"
    MESSAGE = "message"
    IN_PERSON = "in_person"


class ConsultStatus(StrEnum):
    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    DECLINED = "declined"
    COMPLETED = "completed"


class PatientRow(Base):
    """A patient under evaluation (table ``patient``)."""

    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))
    bundle: Mapped[dict[str, Any]] = mapped_column(_JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class EvaluationRow(Base):
    """One evaluation of a patient (table ``evaluation``)."""

    __tablename__ = "evaluation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    evaluated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    evaluated_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(_JSON)


class ReviewRow(Base):
    """A signed multidisciplinary review record (table ``mdt_review``)."""

    __tablename__ = "mdt_review"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    meeting_date: Mapped[dt.date] = mapped_column(Date)
    decision: Mapped[str] = mapped_column(String(30))
    therapy: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reasons: Mapped[str] = mapped_column(Text)
    attendees: Mapped[str] = mapped_column(Text)
    evaluation_id: Mapped[int | None] = mapped_column(
        ForeignKey("evaluation.id", ondelete="SET NULL"), nullable=True
    )
    signed_by: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    signed_by_name: Mapped[str] = mapped_column(String(200))
    signed_role: Mapped[str] = mapped_column(String(20))
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ConsultRow(Base):
    """A consultation request (table ``consult_request``)."""

    __tablename__ = "consult_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    preferred_time: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    responder_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    responder_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


def new_public_id() -> str:
    """A random, unguessable record id for addresses (96 bits)."""
    return secrets.token_urlsafe(12)


def patient_by_public_id(session: Session, public_id: str) -> PatientRow | None:
    """The patient with this public id, or None."""
    if not public_id or len(public_id) > 24 or not storable(public_id):
        return None
    return session.scalar(select(PatientRow).where(PatientRow.public_id == public_id))


def latest_evaluation(session: Session, patient_id: int) -> EvaluationRow | None:
    """The most recent evaluation of a patient, or None."""
    return session.scalar(
        select(EvaluationRow)
        .where(EvaluationRow.patient_id == patient_id)
        .order_by(EvaluationRow.evaluated_at.desc(), EvaluationRow.id.desc())
        .limit(1)
    )


def reviews_of(session: Session, patient_id: int) -> list[ReviewRow]:
    """The signed review records of a patient, newest signature first."""
    return list(
        session.scalars(
            select(ReviewRow)
            .where(ReviewRow.patient_id == patient_id)
            .order_by(ReviewRow.signed_at.desc(), ReviewRow.id.desc())
        )
    )


def consults_of(session: Session, patient_id: int) -> list[ConsultRow]:
    """The consultation requests of a patient, newest request first."""
    return list(
        session.scalars(
            select(ConsultRow)
            .where(ConsultRow.patient_id == patient_id)
            .order_by(ConsultRow.requested_at.desc(), ConsultRow.id.desc())
        )
    )


def encode_attendees(attendees: list[tuple[str, str]]) -> str:
    """The ``mdt_review.attendees`` text for ``[(name, role), ...]``: a JSON list of
    ``{"name", "role"}`` objects (names may hold commas, so no delimited text)."""
    import json

    return json.dumps([{"name": name, "role": role} for name, role in attendees], ensure_ascii=False)


def decode_attendees(text: str) -> list[tuple[str, str]]:
    """``[(name, role), ...]`` from an ``mdt_review.attendees`` text (see :func:`encode_attendees`).

    Text that is not such a list (written by hand) comes back as one attendee with an empty role.
    """
    import json

    try:
        items = json.loads(text)
    except ValueError:
        return [(text, "")]
    if not isinstance(items, list):
        return [(text, "")]
    return [
        (str(i.get("name", "")), str(i.get("role", ""))) if isinstance(i, dict) else (str(i), "")
        for i in items
    ]
