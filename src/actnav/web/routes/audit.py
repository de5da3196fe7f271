"""The audit log for coordinators: who (username, role) did what (action, resource) when, to which record.

Page ``GET /audit`` and API ``GET /api/audit``, both coordinators only, newest first, filtered by
patient (public id), user (username) and action, 50 events a page by default. The patient column
shows the record's label: this view is for the care team; the stored events hold only the internal
record id, never a name (see :func:`actnav.store.accounts.audit`). Opening the log is itself audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from actnav.store.accounts import AuditEventRow, UserRow, audit, audit_actions, audit_events, user_by_username
from actnav.store.patients import PatientRow, patient_by_public_id
from actnav.web.deps import CoordinatorAccount, transaction
from actnav.web.fields import show_time, utc_time
from actnav.web.routes.api import PROBLEMS
from actnav.web.templating import page

router = APIRouter()

PER_PAGE = 50
MAX_PAGE = 100_000


class AuditEventOut(BaseModel):
    """One audit event."""

    id: int
    at: dt.datetime = Field(description="When (UTC).")
    username: str | None = Field(description="Who; null for a failed sign-in.")
    role: str | None
    action: str = Field(description="view, create, sign, schedule, decline, complete, login, ...")
    resource_type: str
    resource_id: str | None
    patient: str | None = Field(description="Public id of the patient record concerned, if any.")
    patient_label: str | None = Field(description="The care team's label of that record.")
    outcome: str = Field(description="ok, failed or denied")
    detail: str | None


class AuditPage(BaseModel):
    """A page of the audit log, newest first."""

    total: int = Field(description="Events matching the filters.")
    page: int
    per_page: int
    events: list[AuditEventOut]


def _search(session: Session, patient: str, user: str, action: str, page_no: int, per_page: int) -> AuditPage:
    """Events matching the filters; an unknown patient or username matches nothing."""
    patient_id = user_id = None
    if patient:
        found = patient_by_public_id(session, patient)
        patient_id = found.id if found else -1
    if user:
        account = user_by_username(session, user)
        user_id = account.id if account else -1
    rows, total = audit_events(
        session,
        patient_id=patient_id,
        user_id=user_id,
        action=action or None,
        offset=(page_no - 1) * per_page,
        limit=per_page,
    )
    return AuditPage(total=total, page=page_no, per_page=per_page, events=_events(session, rows))


def _events(session: Session, rows: list[AuditEventRow]) -> list[AuditEventOut]:
    user_ids = {r.user_id for r in rows if r.user_id is not None}
    patient_ids = {r.patient_id for r in rows if r.patient_id is not None}
    found = session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(user_ids)))
    users = {user_id: name for user_id, name in found} if user_ids else {}
    patients = (
        {p.id: p for p in session.scalars(select(PatientRow).where(PatientRow.id.in_(patient_ids)))}
        if patient_ids
        else {}
    )
    out = []
    for r in rows:
        record = patients.get(r.patient_id) if r.patient_id is not None else None
        out.append(
            AuditEventOut(
                id=r.id,
                at=utc_time(r.at),
                username=users.get(r.user_id) if r.user_id is not None else None,
                role=r.role,
                action=r.action,
                resource_type=r.resource_type,
                resource_id=r.resource_id,
                patient=record.public_id if record else None,
                patient_label=record.label if record else None,
                outcome=r.outcome,
                detail=r.detail,
            )
        )
    return out


PatientFilter = Annotated[str, Query(max_length=24, description="Public id of a patient record.")]
UserFilter = Annotated[str, Query(max_length=64, description="Username.")]
ActionFilter = Annotated[str, Query(max_length=40, description="Action, e.g. view or sign.")]
PageNo = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@router.get("/audit", include_in_schema=False)
def audit_page(
    request: Request,
    account: CoordinatorAccount,
    patient: PatientFilter = "",
    user: UserFilter = "",
    action: ActionFilter = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    with transaction(request) as session:
        found = _search(session, patient.strip(), user.strip(), action.strip(), page_no, PER_PAGE)
        actions = audit_actions(session)
        audit(session, account, "view", "audit_log")
    events: list[dict[str, Any]] = [
        {**e.model_dump(), "at_text": show_time(e.at, seconds=True)} for e in found.events
    ]
    filters = {"patient": patient.strip(), "user": user.strip(), "action": action.strip()}
    query = urlencode({k: v for k, v in filters.items() if v})
    last = max(1, -(-found.total // PER_PAGE))
    return page(
        request,
        "audit/log.html.j2",
        title="Audit log",
        active="audit",
        events=events,
        total=found.total,
        page_no=page_no,
        last_page=last,
        filters=filters,
        query=query,
        actions=actions,
    )


@router.get("/api/audit", tags=["audit"], response_model=AuditPage, responses=PROBLEMS)
def audit_api(
    request: Request,
    account: CoordinatorAccount,
    patient: PatientFilter = "",
    user: UserFilter = "",
    action: ActionFilter = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = PER_PAGE,
) -> AuditPage:
    """Audit events, newest first (coordinators only): who, what, when, which record."""
    with transaction(request) as session:
        found = _search(session, patient.strip(), user.strip(), action.strip(), page_no, per_page)
        audit(session, account, "view", "audit_log")
    return found
