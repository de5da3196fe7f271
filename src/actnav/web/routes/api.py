"""REST API under ``/api`` for patients and their evaluations (JSON; errors as problem details).

Authentication: the session cookie (writes also need the ``X-CSRF-Token`` header) or
``Authorization: Bearer <token>`` from ``POST /api/session``. A patient account sees only its own
record: every other patient id answers 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from actnav.eligibility.report_model import Evaluation
from actnav.store.accounts import audit
from actnav.store.patients import PatientRow, latest_evaluation
from actnav.web.deps import (
    CurrentAccount,
    StaffAccount,
    StaffWriter,
    engine_of,
    patient_for,
    today,
    transaction,
)
from actnav.web.fields import OneLine, utc_time

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not signed in (problem details)"},
    403: {"description": "not allowed for this role, or missing CSRF token (problem details)"},
    404: {"description": "no such patient, or not this account's (problem details)"},
    422: {"description": "invalid input, naming the field (problem details)"},
}

router = APIRouter(prefix="/api", tags=["patients"], responses=PROBLEMS)


class PatientOut(BaseModel):
    """A stored patient (no clinical content; see the evaluation)."""

    id: str = Field(description="Public id used in every address.")
    label: str = Field(description="The care team's name for the record.")
    source: str = Field(description="upload, form, api or example")
    created_at: dt.datetime
    evaluated_as_of: dt.date | None = Field(description="Date of the latest evaluation, if any.")


def patient_out(row: PatientRow, as_of: dt.date | None) -> PatientOut:
    """The API form of a stored patient; ``as_of`` is the date of its latest evaluation."""
    return PatientOut(
        id=row.public_id,
        label=row.label,
        source=row.source,
        created_at=utc_time(row.created_at),
        evaluated_as_of=as_of,
    )


@router.get("/patients", response_model=list[PatientOut])
def list_patients(
    request: Request,
    account: CurrentAccount,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[PatientOut]:
    """Patients the account may see: all for the care team, the own record for a patient."""
    with transaction(request) as session:
        query = select(PatientRow).order_by(PatientRow.id.desc()).limit(limit)
        if not account.is_staff:
            query = query.where(PatientRow.id == (account.patient_id or -1))
        rows = list(session.scalars(query))
        out = []
        for row in rows:
            found = latest_evaluation(session, row.id)
            out.append(patient_out(row, found.as_of if found else None))
        audit(session, account, "view", "patient_list")
    return out


@router.post("/patients", response_model=PatientOut, status_code=201)
def create_patient(
    request: Request,
    account: StaffWriter,
    bundle: Annotated[
        dict[str, Any], Body(description="A FHIR R4 Bundle (JSON object) holding one patient.")
    ],
    label: Annotated[OneLine | None, Query(max_length=200)] = None,
) -> PatientOut:
    """Register a patient from a FHIR R4 Bundle and evaluate it (care team only)."""
    from actnav.care.intake import register_patient

    on = today(request)
    done = register_patient(engine_of(request), bundle, as_of=on, actor=account, source="api", label=label)
    with transaction(request) as session:
        row = patient_for(session, account, done.public_id)
        return patient_out(row, on)


@router.get("/patients/{patient_id}", response_model=PatientOut)
def get_patient(request: Request, patient_id: str, account: CurrentAccount) -> PatientOut:
    """One patient."""
    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        found = latest_evaluation(session, row.id)
        audit(session, account, "view", "patient", row.public_id, patient_id=row.id)
        return patient_out(row, found.as_of if found else None)


@router.get("/patients/{patient_id}/evaluation", response_model=Evaluation)
def get_evaluation(request: Request, patient_id: str, account: StaffAccount) -> Evaluation:
    """The latest evaluation (label verdicts, fitness, work-up, trials) — care team only."""
    from fastapi import HTTPException

    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        found = latest_evaluation(session, row.id)
        audit(session, account, "view", "evaluation", found.id if found else None, patient_id=row.id)
        report = found.report if found else None
    if report is None:
        raise HTTPException(status_code=404, detail="this patient has no evaluation yet")
    return Evaluation.model_validate(report)


@router.post("/patients/{patient_id}/evaluation", response_model=Evaluation, status_code=201)
def evaluate_patient_again(request: Request, patient_id: str, account: StaffWriter) -> Evaluation:
    """Evaluate the stored record again as of today and store the result (care team only)."""
    from actnav.care.intake import reevaluate

    with transaction(request) as session:
        row_id = patient_for(session, account, patient_id).id
    return reevaluate(engine_of(request), row_id, as_of=today(request), actor=account)
