"""Pages: home, patient list, intake (upload a FHIR Bundle), the evaluation of one patient."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select

from actnav.eligibility.report_model import Evaluation
from actnav.store.accounts import Account, audit
from actnav.store.patients import EvaluationRow, PatientRow, latest_evaluation
from actnav.web.deps import (
    CurrentAccount,
    StaffAccount,
    StaffWriter,
    engine_of,
    optional_account,
    patient_for,
    today,
    transaction,
)
from actnav.web.fields import OneLine
from actnav.web.templating import page, templates

router = APIRouter(include_in_schema=False)

MAX_BUNDLE_BYTES = 20 * 1024 * 1024
MAX_UNPACKED_BYTES = 100 * 1024 * 1024  # a gzip upload may unpack to this much


@router.get("/")
def home(request: Request) -> Response:
    account = optional_account(request)
    if account is None:
        return RedirectResponse("/login", status_code=303)
    if account.is_staff:
        return RedirectResponse("/patients", status_code=303)
    with transaction(request) as session:
        row = session.get(PatientRow, account.patient_id) if account.patient_id else None
        target = f"/patients/{row.public_id}/plan" if row else "/login"
    return RedirectResponse(target, status_code=303)


@router.get("/patients")
def patient_list(request: Request, account: StaffAccount) -> Response:
    with transaction(request) as session:
        latest = (
            select(EvaluationRow.patient_id, func.max(EvaluationRow.id).label("eid"))
            .group_by(EvaluationRow.patient_id)
            .subquery()
        )
        rows = session.execute(
            select(PatientRow, EvaluationRow)
            .outerjoin(latest, latest.c.patient_id == PatientRow.id)
            .outerjoin(EvaluationRow, EvaluationRow.id == latest.c.eid)
            .order_by(PatientRow.created_at.desc(), PatientRow.id.desc())
        ).all()
        items = [_list_item(p, e) for p, e in rows]
        audit(session, account, "view", "patient_list")
    return page(request, "patients/list.html.j2", title="Patients", patients=items)


def _list_item(patient: PatientRow, evaluation: EvaluationRow | None) -> dict[str, object]:
    counts = {"eligible": 0, "needs_information": 0, "not_eligible": 0}
    summary: list[str] = []
    as_of = None
    if evaluation is not None:
        report = evaluation.report
        as_of = evaluation.as_of
        summary = list(report.get("summary") or [])[:3]
        for product in report.get("products") or []:
            for ind in product.get("indications") or []:
                verdict = ind.get("verdict")
                if verdict in counts:
                    counts[verdict] += 1
    return {
        "public_id": patient.public_id,
        "label": patient.label,
        "source": patient.source,
        "created_at": patient.created_at,
        "as_of": as_of,
        "counts": counts,
        "summary": summary,
    }


@router.get("/patients/new")
def intake_form(request: Request, account: StaffAccount) -> Response:
    return page(request, "patients/new.html.j2", title="New patient", error=None)


@router.post("/patients")
async def intake_upload(
    request: Request,
    account: StaffWriter,
    bundle: Annotated[UploadFile, File(description="FHIR R4 Bundle (JSON)")],
    label: Annotated[OneLine, Form(max_length=200)] = "",
) -> Response:
    from actnav.care.intake import register_patient
    from actnav.errors import ActnavError
    from actnav.patient.fhir import parse_bundle_json

    raw = await bundle.read(MAX_BUNDLE_BYTES + 1)
    try:
        if len(raw) > MAX_BUNDLE_BYTES:
            raise HTTPException(status_code=413, detail="the bundle is larger than 20 MB")
        if not raw:
            from actnav.errors import InputError

            raise InputError("the file is empty", where="bundle")
        data = parse_bundle_json(raw, where="bundle", max_bytes=MAX_UNPACKED_BYTES)
        done = register_patient(
            engine_of(request), data, as_of=today(request), actor=account, source="upload", label=label
        )
    except ActnavError as err:
        return page(request, "patients/new.html.j2", title="New patient", status_code=422, error=str(err))
    return RedirectResponse(f"/patients/{done.public_id}", status_code=303)


def app_bar(request: Request, account: Account, public_id: str, label: str, active: str) -> Markup:
    """The application's navigation bar placed at the top of a full-page report."""
    html = (
        templates()
        .get_template("_appbar.html.j2")
        .render(
            account=account, csrf_token=account.csrf_token, public_id=public_id, label=label, active=active
        )
    )
    return Markup(html)


@router.get("/patients/{public_id}")
def evaluation_page(request: Request, public_id: str, account: CurrentAccount) -> Response:
    if not account.is_staff:
        # Patients read their plan; the clinical report is the care team's working document.
        with transaction(request) as session:
            patient_for(session, account, public_id)
        return RedirectResponse(f"/patients/{public_id}/plan", status_code=303)
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        found = latest_evaluation(session, row.id)
        audit(session, account, "view", "evaluation", found.id if found else None, patient_id=row.id)
        label = row.label
        report = found.report if found else None
    if report is None:
        raise HTTPException(status_code=404, detail="this patient has no evaluation yet")
    from actnav.care.report import render_html

    evaluation = Evaluation.model_validate(report)
    html = render_html(evaluation, app_header=app_bar(request, account, public_id, label, "evaluation"))
    return HTMLResponse(html)


@router.post("/patients/{public_id}/evaluate")
def evaluate_again(request: Request, public_id: str, account: StaffWriter) -> Response:
    from actnav.care.intake import reevaluate

    with transaction(request) as session:
        row_id = patient_for(session, account, public_id).id
    reevaluate(engine_of(request), row_id, as_of=today(request), actor=account)
    return RedirectResponse(f"/patients/{public_id}", status_code=303)
