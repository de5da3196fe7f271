"""Consultation requests: a patient or caregiver asks, a coordinator schedules or declines.

Source of the requirement: shared reference patient-support.md section 3 — a patient or caregiver can
ask for a consultation with a preferred time and channel and must see who will answer and when;
urgent symptoms always go to the treatment centre's emergency numbers, never to this queue (the
patient page says so above the form).

Pages: ``GET/POST /patients/{id}/consults`` (the patient, or the care team on their behalf);
``GET /consults`` (the care team's queue); ``POST /consults/{n}/schedule|decline|complete``
(coordinators). API: ``GET/POST /api/patients/{id}/consults``, ``GET /api/consults``,
``PATCH /api/consults/{n}``.

Status moves (anything else answers 409 with the reason)::

    requested --schedule--> scheduled --complete--> completed
    requested --decline---> declined
    scheduled --decline---> declined      (an appointment cancelled, with the reason)

Times are shown and read in UTC (a ``datetime-local`` input without an offset is UTC). A scheduled
time must be in the future and within a year.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from actnav.errors import InputError
from actnav.store.accounts import Account, Role, UserRow, audit, staff_accounts
from actnav.store.patients import ConsultChannel, ConsultRow, ConsultStatus, PatientRow, consults_of
from actnav.web.deps import (
    CurrentAccount,
    StaffAccount,
    WritingAccount,
    patient_for,
    transaction,
)
from actnav.web.fields import OneLine, Paragraphs, form_errors, show_time, utc_time
from actnav.web.routes.api import PROBLEMS
from actnav.web.templating import page

router = APIRouter()

CONSULT_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    404: {"description": "no such patient or consultation request (problem details)"},
    409: {"description": "the request's status does not allow this action (problem details)"},
}
CHANNEL_LABELS = {
    ConsultChannel.PHONE: "Phone call",
    ConsultChannel.VIDEO: "Video call",
    ConsultChannel.MESSAGE: "Written message",
    ConsultChannel.IN_PERSON: "In person",
}
STATUS_LABELS = {
    ConsultStatus.REQUESTED: "requested",
    ConsultStatus.SCHEDULED: "scheduled",
    ConsultStatus.DECLINED: "declined",
    ConsultStatus.COMPLETED: "completed",
}
STATUS_BADGE = {
    ConsultStatus.REQUESTED: "warn",
    ConsultStatus.SCHEDULED: "ok",
    ConsultStatus.DECLINED: "bad",
    ConsultStatus.COMPLETED: "",
}
MAX_AHEAD = dt.timedelta(days=366)
QUEUE_LIMIT = 500


class Action(StrEnum):
    SCHEDULE = "schedule"
    DECLINE = "decline"
    COMPLETE = "complete"


MOVES: dict[ConsultStatus, dict[Action, ConsultStatus]] = {
    ConsultStatus.REQUESTED: {
        Action.SCHEDULE: ConsultStatus.SCHEDULED,
        Action.DECLINE: ConsultStatus.DECLINED,
    },
    ConsultStatus.SCHEDULED: {
        Action.COMPLETE: ConsultStatus.COMPLETED,
        Action.DECLINE: ConsultStatus.DECLINED,
    },
    ConsultStatus.DECLINED: {},
    ConsultStatus.COMPLETED: {},
}
_CONFLICT = {
    ConsultStatus.REQUESTED: "it has not been scheduled yet",
    ConsultStatus.SCHEDULED: "it is already scheduled (it can be completed, or declined with a reason)",
    ConsultStatus.DECLINED: "it was declined; the patient can send a new request",
    ConsultStatus.COMPLETED: "it is completed; the patient can send a new request",
}


class ConsultIn(BaseModel):
    """A request for a consultation. Give a preferred time as text, as a date and time, or both."""

    model_config = ConfigDict(extra="forbid")

    preferred_time: Annotated[OneLine, Field(max_length=200)] = Field(
        default="", description="Free text, e.g. 'weekday mornings'."
    )
    preferred_at: dt.datetime | None = Field(
        default=None, description="A preferred date and time (UTC when no offset is given); in the future."
    )
    channel: ConsultChannel
    topic: Annotated[Paragraphs, Field(min_length=1, max_length=2000)]


class ConsultAction(BaseModel):
    """A coordinator's action on a request: schedule (time required), decline (reason required), complete."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    scheduled_for: dt.datetime | None = Field(
        default=None, description="For schedule: the time given (UTC when no offset), future, within a year."
    )
    reply: Annotated[Paragraphs, Field(max_length=2000)] | None = Field(
        default=None, description="Message to the patient; for decline, the reason (required)."
    )
    responder_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="For schedule: the care-team account who will answer (default: the coordinator).",
    )


class ConsultOut(BaseModel):
    """A consultation request and where it stands."""

    id: int
    patient: str = Field(description="Public id of the patient record.")
    patient_label: str | None = Field(description="The care team's label (null for patient accounts).")
    requested_at: dt.datetime
    requested_by_name: str | None = Field(description="Who sent the request (the patient or the care team).")
    preferred_time: str
    channel: ConsultChannel
    topic: str
    status: ConsultStatus
    scheduled_for: dt.datetime | None = Field(description="When the consultation takes place (UTC).")
    responder_name: str | None = Field(description="Who will answer.")
    reply: str | None
    updated_at: dt.datetime


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    return None if when is None else utc_time(when)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def request_consult(session: Session, account: Account, patient: PatientRow, data: ConsultIn) -> ConsultRow:
    """Store a new request (status ``requested``) in the caller's transaction and audit it.

    Raises:
        InputError: no preferred time at all (names ``preferred_time``), or a preferred date and time
            that is past or more than a year ahead (names ``preferred_at``).
    """
    now = _now()
    parts = []
    if data.preferred_at is not None:
        when = utc_time(data.preferred_at)
        if when <= now or when > now + MAX_AHEAD:
            raise InputError("must be in the future and within a year", where="preferred_at")
        parts.append(show_time(when))
    if data.preferred_time:
        parts.append(data.preferred_time)
    if not parts:
        raise InputError("say when suits you (text, or a date and time)", where="preferred_time")
    row = ConsultRow(
        patient_id=patient.id,
        requested_by=account.id,
        requested_at=now,
        preferred_time="; ".join(parts)[:200],
        channel=data.channel.value,
        topic=data.topic,
        status=ConsultStatus.REQUESTED.value,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    audit(session, account, "create", "consult", row.id, patient_id=patient.id)
    return row


def act_on_consult(session: Session, account: Account, consult_id: int, data: ConsultAction) -> ConsultRow:
    """Apply a coordinator's action to request ``consult_id`` (caller's transaction) and audit it.

    Raises:
        HTTPException: 404 for an unknown request; 409 when its status does not allow the action.
        InputError: schedule without a future time (``scheduled_for``) or with an unknown responder
            (``responder_id``); decline without a reason (``reply``).
    """
    row = session.get(ConsultRow, consult_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no such consultation request")
    status = ConsultStatus(row.status)
    target = MOVES[status].get(data.action)
    if target is None:
        raise HTTPException(
            status_code=409, detail=f"cannot {data.action.value} this request: {_CONFLICT[status]}"
        )
    now = _now()
    if data.action is Action.SCHEDULE:
        if data.scheduled_for is None:
            raise InputError("give the date and time of the consultation", where="scheduled_for")
        when = utc_time(data.scheduled_for)
        if when <= now or when > now + MAX_AHEAD:
            raise InputError("must be in the future and within a year", where="scheduled_for")
        responder = session.get(UserRow, data.responder_id or account.id)
        if responder is None or not responder.active or responder.role == Role.PATIENT.value:
            raise InputError("not an active care-team account", where="responder_id")
        row.scheduled_for = when
        row.responder_id = responder.id
        row.responder_name = responder.display_name
    elif data.action is Action.DECLINE:
        if not data.reply:
            raise InputError("give the patient the reason", where="reply")
        if row.responder_name is None:
            row.responder_id, row.responder_name = account.id, account.display_name
    if data.reply:
        row.reply = data.reply
    row.status = target.value
    row.updated_at = now
    audit(session, account, data.action.value, "consult", row.id, patient_id=row.patient_id)
    return row


def _out(row: ConsultRow, patient: PatientRow, names: dict[int, str], *, staff: bool) -> ConsultOut:
    return ConsultOut(
        id=row.id,
        patient=patient.public_id,
        patient_label=patient.label if staff else None,
        requested_at=utc_time(row.requested_at),
        requested_by_name=names.get(row.requested_by),
        preferred_time=row.preferred_time,
        channel=ConsultChannel(row.channel),
        topic=row.topic,
        status=ConsultStatus(row.status),
        scheduled_for=_aware(row.scheduled_for),
        responder_name=row.responder_name,
        reply=row.reply,
        updated_at=utc_time(row.updated_at),
    )


def _names(session: Session, rows: list[ConsultRow]) -> dict[int, str]:
    ids = {r.requested_by for r in rows}
    if not ids:
        return {}
    found = session.execute(select(UserRow.id, UserRow.display_name).where(UserRow.id.in_(ids)))
    return {user_id: name for user_id, name in found}


def _view(out: ConsultOut) -> dict[str, Any]:
    """A request as the templates show it (labels and UTC times as text)."""
    return {
        **out.model_dump(),
        "channel_label": CHANNEL_LABELS[out.channel],
        "status_label": STATUS_LABELS[out.status],
        "badge": STATUS_BADGE[out.status],
        "requested_at_text": show_time(out.requested_at),
        "scheduled_for_text": show_time(out.scheduled_for),
    }


def queue(session: Session, status: ConsultStatus | None, limit: int) -> list[tuple[ConsultRow, PatientRow]]:
    """The care team's queue: requested first (oldest first), then scheduled (soonest first), then
    declined and completed (latest change first)."""
    rank = case(
        (ConsultRow.status == ConsultStatus.REQUESTED.value, 0),
        (ConsultRow.status == ConsultStatus.SCHEDULED.value, 1),
        else_=2,
    )
    query = select(ConsultRow, PatientRow).join(PatientRow, PatientRow.id == ConsultRow.patient_id)
    if status is not None:
        query = query.where(ConsultRow.status == status.value)
    query = query.order_by(
        rank,
        case((ConsultRow.status == ConsultStatus.REQUESTED.value, ConsultRow.requested_at)),
        case((ConsultRow.status == ConsultStatus.SCHEDULED.value, ConsultRow.scheduled_for)),
        ConsultRow.updated_at.desc(),
        ConsultRow.id,
    ).limit(limit)
    return [(c, p) for c, p in session.execute(query)]


def coordinator_writer(account: WritingAccount) -> Account:
    """A coordinator sending a write with a valid CSRF token; 403 otherwise (physicians only view)."""
    if account.role is not Role.COORDINATOR:
        raise HTTPException(status_code=403, detail="only coordinators act on consultation requests")
    return account


CoordinatorWriter = Annotated[Account, Depends(coordinator_writer)]
ConsultId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# --- pages -------------------------------------------------------------------------------------


def _patient_page(
    request: Request,
    session: Session,
    account: Account,
    row: PatientRow,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    rows = consults_of(session, row.id)
    names = _names(session, rows)
    items = [_view(_out(c, row, names, staff=account.is_staff)) for c in rows]
    blank = {"preferred_time": "", "preferred_at": "", "channel": "", "topic": ""}
    return page(
        request,
        "consults/patient.html.j2",
        title="Consultations" if not account.is_staff else f"Consultations · {row.label}",
        status_code=status_code,
        active="plan" if not account.is_staff else "patients",
        patient_tabs={
            "label": row.label if account.is_staff else "My record",
            "public_id": row.public_id,
            "active": "consults",
        },
        public_id=row.public_id,
        consults=items,
        channels=[{"value": c.value, "label": CHANNEL_LABELS[c]} for c in ConsultChannel],
        form={**blank, **(form or {})},
        errors=errors or {},
    )


@router.get("/patients/{public_id}/consults", include_in_schema=False)
def consults_page(request: Request, public_id: str, account: CurrentAccount) -> Response:
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        audit(session, account, "view", "consults", patient_id=row.id)
        return _patient_page(request, session, account, row)


@router.post("/patients/{public_id}/consults", include_in_schema=False)
def request_consult_page(
    request: Request,
    public_id: str,
    account: WritingAccount,
    preferred_time: Annotated[str, Form(max_length=1000)] = "",
    preferred_at: Annotated[str, Form(max_length=40)] = "",
    channel: Annotated[str, Form(max_length=40)] = "",
    topic: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    form = {
        "preferred_time": preferred_time,
        "preferred_at": preferred_at,
        "channel": channel,
        "topic": topic,
    }
    raw = {
        "preferred_time": preferred_time,
        "preferred_at": preferred_at.strip() or None,
        "channel": channel or None,
        "topic": topic,
    }
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        try:
            request_consult(session, account, row, ConsultIn.model_validate(raw))
        except ValidationError as err:
            errors = form_errors(err)
        except InputError as err:
            errors = {err.where or "request": err.message}
        else:
            return RedirectResponse(f"/patients/{public_id}/consults#consult-list", status_code=303)
        return _patient_page(request, session, account, row, form=form, errors=errors, status_code=422)


@router.get("/consults", include_in_schema=False)
def queue_page(
    request: Request,
    account: StaffAccount,
    status_filter: Annotated[str, Query(alias="status", max_length=20)] = "",
) -> Response:
    if status_filter and status_filter not in {s.value for s in ConsultStatus}:
        raise InputError("choose requested, scheduled, declined or completed", where="status")
    status = ConsultStatus(status_filter) if status_filter else None
    now = _now()
    with transaction(request) as session:
        found = queue(session, status, QUEUE_LIMIT)
        names = _names(session, [c for c, _ in found])
        items = [_view(_out(c, p, names, staff=True)) for c, p in found]
        staff = [{"id": u.id, "name": u.display_name, "role": u.role} for u in staff_accounts(session)]
        audit(session, account, "view", "consult_queue", detail=f"status={status.value if status else 'any'}")
    return page(
        request,
        "consults/queue.html.j2",
        title="Consultation requests",
        active="consults",
        consults=items,
        status=status.value if status else "",
        statuses=[s.value for s in ConsultStatus],
        staff=staff,
        can_act=account.role is Role.COORDINATOR,
        min_time=(now + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"),
    )


def _act_page(request: Request, account: Account, consult_id: int, raw: dict[str, Any]) -> Response:
    try:
        data = ConsultAction.model_validate(raw)
    except ValidationError as err:
        field, problem = next(iter(form_errors(err).items()))
        raise InputError(problem, where=field) from err
    with transaction(request) as session:
        act_on_consult(session, account, consult_id, data)
    return RedirectResponse(f"/consults#consult-{consult_id}", status_code=303)


@router.post("/consults/{consult_id}/schedule", include_in_schema=False)
def schedule_page(
    request: Request,
    consult_id: ConsultId,
    account: CoordinatorWriter,
    scheduled_for: Annotated[str, Form(max_length=40)] = "",
    responder_id: Annotated[str, Form(max_length=20)] = "",
    reply: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    raw = {
        "action": "schedule",
        "scheduled_for": scheduled_for.strip() or None,
        "responder_id": responder_id.strip() or None,
        "reply": reply.strip() or None,
    }
    return _act_page(request, account, consult_id, raw)


@router.post("/consults/{consult_id}/decline", include_in_schema=False)
def decline_page(
    request: Request,
    consult_id: ConsultId,
    account: CoordinatorWriter,
    reply: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    return _act_page(request, account, consult_id, {"action": "decline", "reply": reply.strip() or None})


@router.post("/consults/{consult_id}/complete", include_in_schema=False)
def complete_page(
    request: Request,
    consult_id: ConsultId,
    account: CoordinatorWriter,
    reply: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    return _act_page(request, account, consult_id, {"action": "complete", "reply": reply.strip() or None})


# --- API ---------------------------------------------------------------------------------------


@router.get(
    "/api/patients/{patient_id}/consults",
    tags=["consults"],
    response_model=list[ConsultOut],
    responses=CONSULT_PROBLEMS,
)
def list_patient_consults(request: Request, patient_id: str, account: CurrentAccount) -> list[ConsultOut]:
    """A patient's consultation requests, newest first: status, who will answer and when."""
    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        audit(session, account, "view", "consults", patient_id=row.id)
        rows = consults_of(session, row.id)
        names = _names(session, rows)
        return [_out(c, row, names, staff=account.is_staff) for c in rows]


@router.post(
    "/api/patients/{patient_id}/consults",
    tags=["consults"],
    response_model=ConsultOut,
    status_code=201,
    responses=CONSULT_PROBLEMS,
)
def create_consult(request: Request, patient_id: str, account: WritingAccount, body: ConsultIn) -> ConsultOut:
    """Ask for a consultation (the patient for their own record, or the care team on their behalf).

    Not for urgent symptoms: those go to the emergency number of the treatment centre."""
    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        made = request_consult(session, account, row, body)
        return _out(made, row, _names(session, [made]), staff=account.is_staff)


@router.get("/api/consults", tags=["consults"], response_model=list[ConsultOut], responses=CONSULT_PROBLEMS)
def list_queue(
    request: Request,
    account: StaffAccount,
    status: Annotated[ConsultStatus | None, Query(description="Only requests with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=QUEUE_LIMIT)] = 200,
) -> list[ConsultOut]:
    """The care team's queue: requested (oldest first), then scheduled (soonest first), then the rest."""
    with transaction(request) as session:
        found = queue(session, status, limit)
        names = _names(session, [c for c, _ in found])
        audit(session, account, "view", "consult_queue", detail=f"status={status.value if status else 'any'}")
        return [_out(c, p, names, staff=True) for c, p in found]


@router.patch(
    "/api/consults/{consult_id}",
    tags=["consults"],
    response_model=ConsultOut,
    responses=CONSULT_PROBLEMS,
)
def update_consult(
    request: Request, consult_id: ConsultId, account: CoordinatorWriter, body: ConsultAction
) -> ConsultOut:
    """Schedule, decline or complete a request (coordinators only; 409 when the status forbids it)."""
    with transaction(request) as session:
        row = act_on_consult(session, account, consult_id, body)
        patient = session.get(PatientRow, row.patient_id)
        assert patient is not None  # the foreign key cascades deletes
        return _out(row, patient, _names(session, [row]), staff=True)
