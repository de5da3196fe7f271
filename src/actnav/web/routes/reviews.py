"""Multidisciplinary review records: the team's decision for one patient, its reasons, who signed, when.

Pages (care team only): ``GET /patients/{id}/reviews`` lists the signed records (newest first) and
holds the form of a new one; ``POST /patients/{id}/reviews`` signs it as the signed-in account.
API: ``GET`` and ``POST /api/patients/{id}/reviews``.

Rules:

* Signed records are never edited or deleted (there is no route for it); a correction is a new
  record, shown above the one it corrects.
* Who may sign: a decision to treat or not to treat (``proceed``, ``proceed_trial``,
  ``not_candidate``) is a medical decision and needs a physician's signature; any member of the care
  team may record ``more_workup`` or ``defer``, which only say the team has not decided yet. A
  coordinator asking to sign a treatment decision gets 403 and the attempt is audited.
* ``proceed`` and ``proceed_trial`` must name the therapy decided on (a product indication or a
  trial from the evaluation, or free text). The meeting date cannot be after today nor before
  2000-01-01 (a typing error).
* The menu offers the indications the evaluation found eligible or needing information, and the
  trials (not excluded) whose relevance to the patient's diagnosis is high; anything else is
  written as free text.
* ``proceed`` with a product the evaluation found not eligible for every indication is clinical
  judgement the physician may exercise, but only with ``override_confirmed`` ticked and an
  ``override_reason``; the record then shows "signed against the evaluation's verdict: not
  eligible" and the signature is audited as an override.
* The record rests on an evaluation of the same patient: the latest one unless another is named.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from actnav.care.plan import TRIAL_MIN_RELEVANCE
from actnav.errors import InputError
from actnav.store.accounts import Account, Role, audit
from actnav.store.patients import (
    EvaluationRow,
    PatientRow,
    ReviewDecision,
    ReviewRow,
    decode_attendees,
    encode_attendees,
    latest_evaluation,
    reviews_of,
)
from actnav.web.deps import StaffAccount, StaffWriter, patient_for, today, transaction
from actnav.web.fields import OneLine, Paragraphs, form_errors, show_time
from actnav.web.routes.api import PROBLEMS
from actnav.web.templating import page

router = APIRouter()

PHYSICIAN_DECISIONS = frozenset(
    {ReviewDecision.PROCEED, ReviewDecision.PROCEED_TRIAL, ReviewDecision.NOT_CANDIDATE}
)
NEEDS_THERAPY = frozenset({ReviewDecision.PROCEED, ReviewDecision.PROCEED_TRIAL})
DECISION_LABELS = {
    ReviewDecision.PROCEED: "Proceed with an approved therapy",
    ReviewDecision.PROCEED_TRIAL: "Proceed in a clinical trial",
    ReviewDecision.MORE_WORKUP: "More work-up needed",
    ReviewDecision.DEFER: "Decision deferred",
    ReviewDecision.NOT_CANDIDATE: "Not a candidate",
}
ATTENDEE_ROWS = 8  # empty rows the form offers
MAX_THERAPY = 200
MAX_TRIAL_OPTIONS = 25
EARLIEST_MEETING = dt.date(2000, 1, 1)  # earlier dates are typing errors (year 1, 0202...)
AGAINST_VERDICT = "signed against the evaluation's verdict: not eligible"


class Attendee(BaseModel):
    """One person at the meeting."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[OneLine, Field(min_length=1, max_length=200)]
    role: Annotated[OneLine, Field(min_length=1, max_length=100, description="e.g. haematologist")]


class ReviewIn(BaseModel):
    """A review record to sign."""

    model_config = ConfigDict(extra="forbid")

    meeting_date: dt.date = Field(description="Date of the meeting; from 2000-01-01, not after today.")
    decision: ReviewDecision = Field(
        description="proceed, proceed_trial and not_candidate need a physician's signature."
    )
    therapy: Annotated[OneLine, Field(max_length=MAX_THERAPY)] | None = Field(
        default=None, description="The product indication or trial decided on; required to proceed."
    )
    reasons: Annotated[Paragraphs, Field(min_length=1, max_length=5000)]
    attendees: list[Attendee] = Field(min_length=1, max_length=40)
    evaluation_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Evaluation it rests on; default: the latest."
    )
    override_confirmed: bool = Field(
        default=False,
        description="The physician confirms signing 'proceed' with a product the evaluation found not eligible.",
    )
    override_reason: Annotated[Paragraphs, Field(max_length=2000)] | None = Field(
        default=None, description="Why the team proceeds against the evaluation's verdict (needed then)."
    )

    @field_validator("meeting_date")
    @classmethod
    def _plausible_date(cls, value: dt.date) -> dt.date:
        if value < EARLIEST_MEETING:
            raise ValueError(f"must be on or after {EARLIEST_MEETING.isoformat()}")
        return value


class ReviewOut(BaseModel):
    """A signed review record."""

    id: int
    meeting_date: dt.date
    decision: ReviewDecision
    decision_label: str
    therapy: str | None
    reasons: str
    attendees: list[Attendee]
    evaluation_id: int | None
    signed_by_name: str
    signed_role: str
    signed_at: dt.datetime
    against_verdict: list[str] = Field(
        default_factory=list,
        description="Products decided on that the evaluation found not eligible (signed as an override).",
    )


@dataclass(frozen=True)
class TherapyOption:
    """A therapy the team can choose: an indication or trial the evaluation did not rule out."""

    text: str  # stored as the record's therapy, at most 200 characters
    kind: str  # "label" or "trial"
    verdict: str  # eligible or needs_information


def _short(text: str) -> str:
    return text if len(text) <= MAX_THERAPY else text[: MAX_THERAPY - 1] + "…"


def therapy_options(report: dict[str, Any] | None) -> list[TherapyOption]:
    """Indications (eligible or needing information) and matched trials of an evaluation report.

    Args:
        report: the stored evaluation (JSON of :class:`actnav.eligibility.report_model.Evaluation`).

    Returns:
        Label indications first (``"Tecartus (brexucabtagene autoleucel) — <indication>"``), then up to
        25 trials in ranked order (``"NCT01234567 — <title>"``) whose relevance to the patient's
        diagnosis is at least :data:`actnav.care.plan.TRIAL_MIN_RELEVANCE`, each text at most 200
        characters.
    """
    if not report:
        return []
    wanted = ("eligible", "needs_information")
    found: list[TherapyOption] = []
    for product in report.get("products") or []:
        for ind in product.get("indications") or []:
            if ind.get("verdict") in wanted:
                text = f"{product.get('brand')} ({product.get('product')}) — {ind.get('name')}"
                found.append(TherapyOption(_short(text), "label", str(ind["verdict"])))
    seen: set[str] = set()
    for trial in report.get("trials") or []:
        nct = str(trial.get("nct_id"))
        # High relevance needs a diagnosis match (actnav.care.plan.TRIAL_MIN_RELEVANCE): a study
        # sharing only the modality or target is not offered; it can still be written as free text.
        relevant = float(trial.get("relevance") or 0.0) >= TRIAL_MIN_RELEVANCE
        if trial.get("verdict") in wanted and relevant and nct not in seen and len(seen) < MAX_TRIAL_OPTIONS:
            seen.add(nct)
            found.append(
                TherapyOption(_short(f"{nct} — {trial.get('title')}"), "trial", str(trial["verdict"]))
            )
    return found


def not_eligible_products(report: dict[str, Any] | None) -> list[dict[str, str]]:
    """Approved products the evaluation found not eligible for every indication.

    Returns:
        ``[{"name": "Amtagvi (lifileucel)", "id": "lifileucel", "brand", "product"}]``, in the
        report's order.
    """
    found: list[dict[str, str]] = []
    for product in (report or {}).get("products") or []:
        indications = product.get("indications") or []
        if indications and all(ind.get("verdict") == "not_eligible" for ind in indications):
            brand, inn = str(product.get("brand") or ""), str(product.get("product") or "")
            found.append(
                {
                    "name": f"{brand} ({inn})",
                    "id": str(product.get("id") or ""),
                    "brand": brand,
                    "product": inn,
                }
            )
    return found


def products_against_verdict(
    report: dict[str, Any] | None, decision: ReviewDecision, therapy: str | None
) -> list[dict[str, str]]:
    """The not-eligible products a decision to proceed names (brand, INN or id in the therapy text)."""
    if decision is not ReviewDecision.PROCEED or not therapy:
        return []
    text = therapy.casefold()
    named = []
    for product in not_eligible_products(report):
        names = (product["brand"], product["product"], product["id"].replace("_", " "))
        if any(name and name.casefold() in text for name in names):
            named.append(product)
    return named


def may_sign(account: Account, decision: ReviewDecision) -> bool:
    """Physicians sign every decision; other care-team members only more_workup and defer."""
    return account.is_staff and (account.role is Role.PHYSICIAN or decision not in PHYSICIAN_DECISIONS)


def refused_message(decision: ReviewDecision) -> str:
    return (
        f"only a physician can sign the decision {DECISION_LABELS[decision]!r}; "
        "a coordinator can record 'More work-up needed' or 'Decision deferred'"
    )


def _evaluation_for(session: Session, patient: PatientRow, evaluation_id: int | None) -> EvaluationRow | None:
    if evaluation_id is None:
        return latest_evaluation(session, patient.id)
    found = session.get(EvaluationRow, evaluation_id)
    if found is None or found.patient_id != patient.id:
        raise InputError("no evaluation with this id for this patient", where="evaluation_id")
    return found


def sign_review(
    session: Session, account: Account, patient: PatientRow, data: ReviewIn, *, on: dt.date
) -> ReviewRow:
    """Store a signed review record (in the caller's transaction) and audit it.

    Args:
        on: today's date (the app's clock); the meeting cannot be later.

    Raises:
        HTTPException: 403 when ``account`` may not sign this decision (see :func:`may_sign`).
        InputError: meeting date after ``on``, no therapy for a decision to proceed, an evaluation
            of another patient, or a decision to proceed with a product the evaluation found not
            eligible without ``override_confirmed`` and ``override_reason`` (names
            ``meeting_date``, ``therapy``, ``evaluation_id``, ``override_confirmed`` or
            ``override_reason``).
    """
    if not may_sign(account, data.decision):
        raise HTTPException(status_code=403, detail=refused_message(data.decision))
    if data.meeting_date > on:
        raise InputError(f"cannot be after today ({on.isoformat()})", where="meeting_date")
    if data.decision in NEEDS_THERAPY and not data.therapy:
        raise InputError("name the product or trial the team decided on", where="therapy")
    evaluation = _evaluation_for(session, patient, data.evaluation_id)
    against = products_against_verdict(evaluation.report if evaluation else None, data.decision, data.therapy)
    reasons = data.reasons
    if against:
        names = ", ".join(p["name"] for p in against)
        if not data.override_confirmed:
            raise InputError(
                f"the evaluation found {names} not eligible: tick the box to confirm that you sign "
                "against its verdict, and give the reason",
                where="override_confirmed",
            )
        if not data.override_reason:
            raise InputError(
                f"give the reason for proceeding with {names} against the evaluation's verdict",
                where="override_reason",
            )
        reasons = (
            f"{reasons}\n\nReason for proceeding against the evaluation's verdict: {data.override_reason}"
        )
    row = ReviewRow(
        patient_id=patient.id,
        meeting_date=data.meeting_date,
        decision=data.decision.value,
        therapy=data.therapy or None,
        reasons=reasons,
        attendees=encode_attendees([(a.name, a.role) for a in data.attendees]),
        evaluation_id=evaluation.id if evaluation else None,
        signed_by=account.id,
        signed_by_name=account.display_name,
        signed_role=account.role.value,
        signed_at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    session.flush()
    detail = data.decision.value
    if against:
        ids = ",".join(p["id"] for p in against)
        detail += f"; against the evaluation's verdict (not eligible: {ids})"
        audit(
            session,
            account,
            "override",
            "review",
            row.id,
            patient_id=patient.id,
            detail=f"not_eligible: {ids}",
        )
    audit(session, account, "sign", "review", row.id, patient_id=patient.id, detail=detail)
    return row


def _audit_refusal(request: Request, account: Account, patient_id: int, decision: ReviewDecision) -> None:
    # Own transaction: the refused request's transaction is rolled back.
    with transaction(request) as session:
        audit(
            session, account, "sign", "review", patient_id=patient_id, outcome="denied", detail=decision.value
        )


def _against_verdict(session: Session, row: ReviewRow) -> list[str]:
    """The record's not-eligible products, read again from the evaluation it rests on."""
    if row.evaluation_id is None:
        return []
    evaluation = session.get(EvaluationRow, row.evaluation_id)
    report = evaluation.report if evaluation else None
    return [p["name"] for p in products_against_verdict(report, ReviewDecision(row.decision), row.therapy)]


def _out(row: ReviewRow, session: Session | None = None) -> ReviewOut:
    decision = ReviewDecision(row.decision)
    return ReviewOut(
        id=row.id,
        meeting_date=row.meeting_date,
        decision=decision,
        decision_label=DECISION_LABELS[decision],
        therapy=row.therapy,
        reasons=row.reasons,
        attendees=[Attendee(name=n or "?", role=r or "?") for n, r in decode_attendees(row.attendees)],
        evaluation_id=row.evaluation_id,
        signed_by_name=row.signed_by_name,
        signed_role=row.signed_role,
        signed_at=row.signed_at if row.signed_at.tzinfo else row.signed_at.replace(tzinfo=dt.UTC),
        against_verdict=_against_verdict(session, row) if session is not None else [],
    )


# --- pages -------------------------------------------------------------------------------------


def _render(
    request: Request,
    session: Session,
    account: Account,
    row: PatientRow,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    evaluation = latest_evaluation(session, row.id)
    records = []
    for review in reviews_of(session, row.id):
        out = _out(review, session)
        records.append({**out.model_dump(), "signed_at_text": show_time(out.signed_at)})
    on = today(request)
    blank = {
        "meeting_date": on.isoformat(),
        "decision": "",
        "therapy": "",
        "therapy_other": "",
        "reasons": "",
        "attendees": [],
        "override_confirmed": False,
        "override_reason": "",
    }
    form = {**blank, **(values or {})}
    attendees = list(form["attendees"])[:ATTENDEE_ROWS]
    attendees += [("", "")] * (ATTENDEE_ROWS - len(attendees))
    form["attendees"] = attendees
    return page(
        request,
        "reviews/page.html.j2",
        title=f"Team review · {row.label}",
        status_code=status_code,
        active="patients",
        patient_tabs={"label": row.label, "public_id": row.public_id, "active": "reviews"},
        public_id=row.public_id,
        records=records,
        evaluation={"id": evaluation.id, "as_of": evaluation.as_of.isoformat()} if evaluation else None,
        options=therapy_options(evaluation.report if evaluation else None),
        not_eligible=[p["name"] for p in not_eligible_products(evaluation.report if evaluation else None)],
        against_verdict=AGAINST_VERDICT,
        decisions=[
            {"value": d.value, "label": DECISION_LABELS[d], "physician": d in PHYSICIAN_DECISIONS}
            for d in ReviewDecision
        ],
        is_physician=account.role is Role.PHYSICIAN,
        today=on.isoformat(),
        form=form,
        errors=errors or {},
    )


@router.get("/patients/{public_id}/reviews", include_in_schema=False)
def reviews_page(request: Request, public_id: str, account: StaffAccount) -> Response:
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        audit(session, account, "view", "reviews", patient_id=row.id)
        return _render(request, session, account, row)


@router.post("/patients/{public_id}/reviews", include_in_schema=False)
def sign_review_page(
    request: Request,
    public_id: str,
    account: StaffWriter,
    meeting_date: Annotated[str, Form(max_length=40)] = "",
    decision: Annotated[str, Form(max_length=40)] = "",
    therapy: Annotated[str, Form(max_length=1000)] = "",
    therapy_other: Annotated[str, Form(max_length=1000)] = "",
    reasons: Annotated[str, Form(max_length=20000)] = "",
    attendee_name: Annotated[list[str] | None, Form()] = None,
    attendee_role: Annotated[list[str] | None, Form()] = None,
    evaluation_id: Annotated[str, Form(max_length=20)] = "",
    override_confirmed: Annotated[str, Form(max_length=5)] = "",
    override_reason: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    names = (attendee_name or [])[:100]
    roles = (attendee_role or [])[:100]
    width = max(len(names), len(roles))
    names, roles = names + [""] * (width - len(names)), roles + [""] * (width - len(roles))
    pairs = [(n.strip(), r.strip()) for n, r in zip(names, roles, strict=True) if n.strip() or r.strip()]
    chosen = therapy_other.strip() or therapy.strip()
    values: dict[str, Any] = {
        "meeting_date": meeting_date,
        "decision": decision,
        "therapy": therapy,
        "therapy_other": therapy_other,
        "reasons": reasons,
        "attendees": pairs,
        "override_confirmed": bool(override_confirmed),
        "override_reason": override_reason,
    }
    raw = {
        "meeting_date": meeting_date or None,
        "decision": decision or None,
        "therapy": chosen or None,
        "reasons": reasons,
        "attendees": [{"name": n, "role": r} for n, r in pairs],
        "evaluation_id": evaluation_id.strip() or None,
        "override_confirmed": bool(override_confirmed),
        "override_reason": override_reason.strip() or None,
    }
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        patient_id = row.id
        try:
            data = ReviewIn.model_validate(raw)
            if not therapy_other.strip() and data.therapy:
                # A choice from the menu must be one the evaluation offered.
                evaluation = _evaluation_for(session, row, data.evaluation_id)
                offered = {o.text for o in therapy_options(evaluation.report if evaluation else None)}
                if data.therapy not in offered:
                    raise InputError("choose a listed therapy, or write it under 'Other'", where="therapy")
            if may_sign(account, data.decision):
                sign_review(session, account, row, data, on=today(request))
                return RedirectResponse(f"/patients/{public_id}/reviews#review-records", status_code=303)
        except ValidationError as err:
            return _render(
                request, session, account, row, values=values, errors=form_errors(err), status_code=422
            )
        except InputError as err:
            errors = {err.where or "request": err.message}
            return _render(request, session, account, row, values=values, errors=errors, status_code=422)
    _audit_refusal(request, account, patient_id, data.decision)
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        errors = {"decision": refused_message(data.decision)}
        return _render(request, session, account, row, values=values, errors=errors, status_code=403)


# --- API ---------------------------------------------------------------------------------------


@router.get(
    "/api/patients/{patient_id}/reviews",
    tags=["reviews"],
    response_model=list[ReviewOut],
    responses=PROBLEMS,
)
def list_reviews(request: Request, patient_id: str, account: StaffAccount) -> list[ReviewOut]:
    """Signed review records of a patient, newest first (care team only)."""
    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        audit(session, account, "view", "reviews", patient_id=row.id)
        return [_out(r, session) for r in reviews_of(session, row.id)]


@router.post(
    "/api/patients/{patient_id}/reviews",
    tags=["reviews"],
    response_model=ReviewOut,
    status_code=201,
    responses=PROBLEMS,
)
def create_review(request: Request, patient_id: str, account: StaffWriter, body: ReviewIn) -> ReviewOut:
    """Sign a review record as the signed-in account (care team; a decision to treat or not to treat
    needs a physician: 403 otherwise). Records are never changed afterwards."""
    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        patient_row_id = row.id
        if may_sign(account, body.decision):
            return _out(sign_review(session, account, row, body, on=today(request)), session)
    _audit_refusal(request, account, patient_row_id, body.decision)
    raise HTTPException(status_code=403, detail=refused_message(body.decision))
