"""The patient's plan: the page (printable), the PDF and ``GET /api/patients/{id}/plan``.

Built by :func:`actnav.care.plan.build_plan` from the latest stored evaluation; the patient sees
their own plan, the care team every patient's. Each view and download is audited.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from actnav.care.plan import PatientPlan, build_plan
from actnav.eligibility.report_model import Evaluation
from actnav.store.accounts import Account, audit
from actnav.store.patients import latest_evaluation
from actnav.web.deps import CurrentAccount, patient_for, transaction
from actnav.web.routes.api import PROBLEMS
from actnav.web.routes.patients import app_bar

router = APIRouter()


def _plan(
    request: Request, account: Account, public_id: str, action: str, resource: str
) -> tuple[PatientPlan, str]:
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        found = latest_evaluation(session, row.id)
        audit(session, account, action, resource, found.id if found else None, patient_id=row.id)
        label = row.label
        report = found.report if found else None
    if report is None:
        raise HTTPException(status_code=404, detail="this patient has no evaluation yet, so no plan")
    return build_plan(Evaluation.model_validate(report)), label


@router.get("/patients/{public_id}/plan", include_in_schema=False)
def plan_page(request: Request, public_id: str, account: CurrentAccount) -> Response:
    from actnav.care.plan import render_plan_html

    plan, label = _plan(request, account, public_id, "view", "plan")
    header = app_bar(request, account, public_id, label if account.is_staff else "My plan", "plan")
    return HTMLResponse(render_plan_html(plan, app_header=header))


@router.get("/patients/{public_id}/plan.pdf", include_in_schema=False)
def plan_pdf(request: Request, public_id: str, account: CurrentAccount) -> Response:
    from actnav.care.plan import render_plan_pdf

    plan, _ = _plan(request, account, public_id, "export", "plan_pdf")
    pdf = render_plan_pdf(plan)
    # The file name carries the date only, never the patient's name.
    name = f"actnav-plan-{plan.as_of.isoformat()}.pdf"
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/api/patients/{patient_id}/plan", tags=["plan"], response_model=PatientPlan, responses=PROBLEMS)
def plan_json(request: Request, patient_id: str, account: CurrentAccount) -> PatientPlan:
    """The patient's plan in plain language, built from the latest evaluation (patient: own record only)."""
    plan, _ = _plan(request, account, patient_id, "view", "plan")
    return plan
