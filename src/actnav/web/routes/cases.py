"""Vein-to-vein pages and API: the case board, one patient's case, the patient's cell journey.

Every rule lives in :mod:`actnav.logistics.service` (lifecycle, chain of custody, bedside check,
schedule, labelled dose, certificate check); these routes read forms and bodies, call it, and show
what it returns — refusals with the service's own reasons.

Which case belongs to a patient: the case reference is derived from the patient's public id,
``web:<public id>`` (:func:`case_ref_of`; the same scheme as the toxicity course of
:mod:`actnav.web.routes.toxicity`). It matches the pseudonymous case-reference rule, names no
person, and needs no change to the logistics tables; one patient has one case. Cases opened with
the command line under another reference are on the board without a patient link.

Pages (care team only unless said otherwise; a patient account gets 403):

* ``GET /cases``: the case board, a section per lifecycle step (``#stage-<step>``), one card per
  case (``#case-<public id>``): patient, product, days in the step, next milestone, conflicts.
  ``?all=1`` adds closed and withdrawn cases.
* ``GET /patients/{id}/case``: one case: open it, its step and the allowed next steps (forms),
  records (evaluation report, identity, bridging, lymphodepletion), collections and custody
  events, the schedule with conflicts and slips, the labelled dose (``?weight_kg=``), the
  certificate check, the bedside check, the custody log with the chain status, the history.
* ``POST /patients/{id}/case`` (open), ``.../case/transitions``, ``.../case/report``,
  ``.../case/identity``, ``.../case/bridging``, ``.../case/lymphodepletion``,
  ``.../case/collections``, ``.../case/custody``, ``.../case/schedule`` (a slip),
  ``.../case/certificate``, ``.../case/bedside``: each redirects (303) to the case page when
  stored; invalid input re-renders the page with 422 and the problem; a refused transition
  re-renders it with 409 and every reason the lifecycle gives. A certificate check that is not
  recorded is shown at once (nothing stored).
* ``GET /patients/{id}/custody`` (the patient and the care team): the cell journey in plain words,
  without internal codes or hashes, and the dates ahead.

API (``/api``, problem details on errors, 409 with ``reasons`` for a refused transition):
``GET /api/cases``, ``GET``/``POST /api/patients/{id}/case``,
``POST /api/patients/{id}/case/transitions``, ``GET /api/patients/{id}/case/custody`` (care team),
``GET /api/patients/{id}/case/schedule`` and ``GET /api/patients/{id}/case/journey`` (the patient
too).

Privacy: patient identifiers typed for the identity registration, the bedside check or the
infusion are passed to the service (which keeps an Argon2id hash of the registered identity and,
for checks, only which fields differed) and never shown again, logged or audited; the forms are
always rendered empty. Audit: every page and API call that shows or changes a case is audited with
the patient's id (refused and invalid writes with their outcome); details name steps and record
kinds only. The service writes in its own transaction, so the audit event follows in the next one
(atomic write-and-audit would need session-taking variants of :mod:`actnav.store.logistics`).
Times: forms take UTC (``datetime-local`` without an offset is read as UTC) and blank means now;
every page shows UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select

from actnav.errors import InputError
from actnav.logistics import service
from actnav.logistics.bedside import FIELDS as IDENTIFIER_FIELDS
from actnav.logistics.bedside import BagLabel, PatientIdentifiers
from actnav.logistics.custody import EVENTS, canonical_json
from actnav.logistics.dose import Certificate, CertificateCheck, LabelledDose, cells_text
from actnav.logistics.lifecycle import BRIDGING_STEPS, ORDER, Step, TransitionRefused
from actnav.logistics.lifecycle import TITLES as STEP_TITLES
from actnav.logistics.schedule import CHAIN, Schedule, lymphodepletion_row
from actnav.logistics.schedule import TITLES as MILESTONE_TITLES
from actnav.store.accounts import Account, audit
from actnav.store.logistics import CaseView, CustodyEntryView, TransitionView
from actnav.store.patients import PatientRow, latest_evaluation, reviews_of
from actnav.web.deps import (
    CurrentAccount,
    StaffAccount,
    StaffWriter,
    engine_of,
    patient_for,
    today,
    transaction,
)
from actnav.web.fields import OneLine, Paragraphs, show_time, utc_time
from actnav.web.problems import problem
from actnav.web.routes.api import PROBLEMS
from actnav.web.templating import page

router = APIRouter()

CASE_PREFIX = "web:"
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2100, 12, 31)
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "refused: the case exists already, or the lifecycle does not allow the move "
        "(problem details; a refused transition adds `reasons`)"
    },
}
_ORDER_INDEX = {s.value: i for i, s in enumerate(ORDER)}
CUSTODY_EVENTS_BY_HAND = tuple(e for e in EVENTS if e not in ("collected", "infused"))
PATHS = {
    "TIL": "tumour resection (TIL: the T cells are grown from a piece of tumour removed in surgery)",
    "CAR-T": "apheresis (CAR-T: white blood cells collected from the blood and engineered)",
    "TCR-T": "apheresis (TCR-T: white blood cells collected from the blood and engineered)",
}


def case_ref_of(public_id: str) -> str:
    """The pseudonymous case reference of a patient's vein-to-vein case: ``web:<public id>``."""
    return f"{CASE_PREFIX}{public_id}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------------------
# Input models (JSON bodies and forms)
# ---------------------------------------------------------------------------------------------


def _day_in_range(day: dt.date) -> dt.date:
    if not EARLIEST <= day <= LATEST:
        raise ValueError(f"must be between {EARLIEST} and {LATEST}")
    return day


def _moment_in_range(moment: dt.datetime) -> dt.datetime:
    if not EARLIEST.year <= moment.year <= LATEST.year:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year}")
    return utc_time(moment)


Day = Annotated[dt.date, AfterValidator(_day_in_range)]
Moment = Annotated[dt.datetime, AfterValidator(_moment_in_range)]
Reason = Annotated[Paragraphs, Field(min_length=1, max_length=2000, description="Why (recorded).")]
Name = Annotated[OneLine, Field(min_length=1, max_length=100)]
Text = Annotated[Paragraphs, Field(min_length=1, max_length=2000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Form(BaseModel):
    """A page form: blank fields count as not given; other fields (``csrf_token``) are ignored."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data


class CaseOpenIn(_Body):
    """Open the patient's case at the referral step."""

    product: Name = Field(description="Product id, INN, brand or short name (lifileucel, Yescarta).")
    indication: Name | None = Field(default=None, description="The product's indication id, if known.")
    reason: Reason = "referral received"
    at: Moment | None = Field(default=None, description="When the referral arrived (default: now).")


class LymphodepletionIn(_Body):
    start: Day
    end: Day
    regimen: Annotated[OneLine, Field(max_length=500)] | None = None


class TransitionIn(_Body):
    """Move the case to another step; the lifecycle decides (409 with every reason when refused)."""

    to_stage: Step
    reason: Reason
    at: Moment | None = Field(default=None, description="When it happened (default: now).")
    decision: Literal["proceed", "not_proceed"] | None = Field(
        default=None, description="review -> authorisation: proceed; review -> withdrawn: not_proceed."
    )
    product: Name | None = Field(default=None, description="-> authorisation: the product decided on.")
    indication: Name | None = Field(default=None, description="-> authorisation: its indication id.")
    lymphodepletion: LymphodepletionIn | None = Field(default=None, description="-> lymphodepletion.")
    deviation: Text | None = Field(
        default=None, description="-> infused outside the label's window: why, and who agreed."
    )
    bag: BagLabel | None = Field(default=None, description="-> infused: the bag label (never stored).")
    wristband: PatientIdentifiers | None = Field(
        default=None, description="-> infused: the wristband (never stored)."
    )


class _OpenForm(_Form):
    therapy: Annotated[str, Field(min_length=1, max_length=220)]
    reason: Reason = "referral received"
    at: Moment | None = None


class _ReasonForm(_Form):
    reason: Reason
    at: Moment | None = None


class _BridgingForm(_ReasonForm):
    regimen: Annotated[OneLine, Field(min_length=1, max_length=500)]
    start: Day
    end: Day | None = None


class _LymphodepletionForm(_ReasonForm):
    start: Day
    end: Day
    regimen: Annotated[OneLine, Field(max_length=500)] | None = None


class _CollectionForm(_Form):
    facility: Annotated[OneLine, Field(min_length=1, max_length=10)]
    location: Annotated[OneLine, Field(max_length=200)] | None = None
    at: Moment | None = None


class _CustodyForm(_Form):
    din: Annotated[OneLine, Field(min_length=1, max_length=40)]
    event: Literal["labelled", "shipped", "received", "stored", "thawed"]
    location: Annotated[OneLine, Field(max_length=200)] | None = None
    at: Moment | None = None


class _SlipForm(_Form):
    milestone: Annotated[str, Field(min_length=1, max_length=40)]
    date: Day
    reason: Reason


class _CertificateForm(_Form):
    weight_kg: Annotated[float, Field(gt=0, le=400)]
    cells: Annotated[float, Field(gt=0, le=1e13)]
    lot: Annotated[OneLine, Field(max_length=100)] | None = None
    meets_release_specifications: Literal["yes", "no"] | None = None
    record: Literal["yes"] | None = None
    din: Annotated[OneLine, Field(max_length=40)] | None = None
    accept_oos: Text | None = None
    reason: Reason = "certificate checked against the labelled dose"
    at: Moment | None = None


# ---------------------------------------------------------------------------------------------
# Output models of the API
# ---------------------------------------------------------------------------------------------


class CaseCardOut(service.BoardCard):
    """A case on the board, with the patient it belongs to (None for a case opened elsewhere)."""

    patient_id: str | None = Field(description="The patient's public id.")
    patient_label: str | None = Field(description="The care team's name for the record.")


class ChainStatus(BaseModel):
    """The verification of the whole custody log (``actnav chain verify``)."""

    status: Literal["intact", "broken"]
    entries: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None


class CustodyOut(BaseModel):
    """A case's custody entries (sequence order) and the status of the hash chain."""

    case_ref: str
    entries: list[CustodyEntryView]
    chain: ChainStatus


class JourneyEvent(BaseModel):
    """Something that happened to the patient's cells, in plain words."""

    date: dt.date
    text: str
    place: str | None = None


class JourneyStep(BaseModel):
    """A date ahead, in plain words."""

    date: dt.date
    text: str
    estimate: bool = Field(description="Computed from usual durations, not yet confirmed.")
    late: bool = Field(default=False, description="The planned day has passed and it has not happened yet.")


class JourneyOut(BaseModel):
    """The patient's cell journey in plain words (no codes, no hashes)."""

    started: bool
    now: str
    path: str | None
    events: list[JourneyEvent]
    ahead: list[JourneyStep]


# ---------------------------------------------------------------------------------------------
# Plain words for the patient
# ---------------------------------------------------------------------------------------------

NOW_TEXT: dict[str, str] = {
    "referral": "Your doctors have asked the cell therapy team to consider you for treatment.",
    "evaluation": "Your care team is checking whether this treatment suits you (tests and records).",
    "review": "A team of specialists is reviewing your case together to decide on the treatment.",
    "authorisation": "The team is waiting for your insurance to approve the treatment.",
    "collection": "The next step is collecting the cells your treatment will be made from.",
    "shipped_to_manufacturing": "Your cells are on their way to the manufacturing site.",
    "manufacturing": "Your cells are being grown into your treatment at the manufacturing site.",
    "release_testing": "Your treatment is being tested to make sure it is safe and right for you.",
    "shipped_back": "Your treatment is on its way back to your treatment centre.",
    "received": "Your treatment has arrived at your treatment centre and is kept frozen until you need it.",
    "lymphodepletion": (
        "You are having lymphodepletion: a few days of chemotherapy that make room in your body "
        "for the new cells."
    ),
    "infused": "You have received your treatment (the infusion, called day 0).",
    "monitoring": "You are in the close-watch period after the infusion: stay near your treatment centre.",
    "follow_up": "You are in follow-up: regular visits to see how you are doing.",
    "closed": "Your treatment journey with this team is complete.",
    "withdrawn": "The treatment is not going ahead. Your care team will explain why and what comes next.",
}

AHEAD_TEXT: dict[str, str] = {
    "shipped_to_manufacturing": "Your cells are sent to the manufacturing site",
    "release": "Your treatment finishes its safety and quality tests",
    "shipped_back": "Your treatment is sent back to your treatment centre",
    "received": "Your treatment arrives at your treatment centre",
    "lymphodepletion_start": "Lymphodepletion starts (chemotherapy that makes room for the new cells)",
    "lymphodepletion_end": "Last day of lymphodepletion",
    "infusion": "Your infusion: you receive your treatment (day 0)",
    "monitoring_end": "End of the time you need to stay near your treatment centre",
    "no_driving_end": "End of the time you must not drive",
}


def _collection_text(modality: str) -> tuple[str, str]:
    """(what happened, what is ahead) for the collection of this product's cells."""
    if modality == "TIL":
        return (
            "Your cells were collected on {day}: surgeons removed a piece of tumour that holds your "
            "T cells (immune cells that can fight the cancer).",
            "Surgery to remove a piece of tumour, from which your T cells will be grown",
        )
    return (
        "Your cells were collected on {day}: a machine took white blood cells from your blood "
        "(this is called apheresis).",
        "Collection of your white blood cells (apheresis: a machine takes them from your blood)",
    )


def plain_day(day: dt.date) -> str:
    """``12 November 2026``."""
    return f"{day.day} {day:%B %Y}"


def _event_text(event: str, count: int, shipped_before: bool, modality: str) -> str:
    """The sentence for the ``count``-th occurrence (1-based) of a custody event of one collection."""
    if event == "collected":
        return _collection_text(modality)[0]
    if event == "labelled":
        if count == 1:
            return (
                "Your cells were labelled on {day} with their own donation number, so they can never "
                "be mixed up with anyone else's."
            )
        return "Your treatment was labelled on {day} with the same donation number as your cells."
    if event == "shipped":
        if count == 1:
            return "They were sent to the manufacturing site on {day}."
        return "Your treatment was sent back to your treatment centre on {day}."
    if event == "received":
        if count == 1:
            return "They arrived at the manufacturing site on {day}."
        return "Your treatment arrived at your treatment centre on {day}."
    if event == "stored":
        if not shipped_before:
            return "Your cells were put into frozen storage on {day} until they could be sent."
        return "Your treatment was put into frozen storage on {day}, where it stays until your infusion."
    if event == "thawed":
        return "Your treatment was thawed (warmed from frozen) on {day}, ready for your infusion."
    return "You received your treatment on {day}. This is the infusion, called day 0."


def journey(
    case: CaseView | None,
    entries: list[CustodyEntryView],
    schedule: Schedule | None,
    modality: str | None,
    as_of: dt.date,
) -> JourneyOut:
    """The patient's cell journey: what happened (custody events and bedside checks, in time order)
    and the dates ahead (steps up to the infusion that are running late included), in plain words.
    No donation numbers, staff ids or hashes.
    """
    if case is None or modality is None:
        return JourneyOut(
            started=False,
            now="Your care team has not started tracking your cells yet.",
            path=None,
            events=[],
            ahead=[],
        )
    found: list[tuple[dt.datetime, JourneyEvent]] = []
    counts: dict[tuple[str, str], int] = {}
    shipped: set[str] = set()
    for entry in entries:
        key = (entry.din, entry.event)
        counts[key] = counts.get(key, 0) + 1
        when = dt.datetime.fromisoformat(entry.at)
        text = _event_text(entry.event, counts[key], entry.din in shipped, modality)
        if entry.event == "shipped":
            shipped.add(entry.din)
        day = when.date()
        found.append(
            (when, JourneyEvent(date=day, text=text.format(day=plain_day(day)), place=entry.location))
        )
    for record in case.records:
        if record.kind != "bedside_check":
            continue
        on = plain_day(record.at.date())
        if record.payload.get("passed"):
            text = (
                f"Before the infusion on {on}, your cells were checked against your wristband: your "
                "name, date of birth and hospital number matched the bag."
            )
        else:
            text = (
                f"On {on}, a check before the infusion found that something on the bag did not match "
                "your wristband, so the bag was not given. This check is there to protect you; your "
                "care team can explain what happened."
            )
        found.append((record.at, JourneyEvent(date=record.at.date(), text=text)))
    found.sort(key=lambda item: item[0])
    ahead: list[JourneyStep] = []
    if schedule is not None and case.step not in ("closed", "withdrawn"):
        for m in schedule.milestones:
            late = m.status == "overdue" and m.key in CHAIN
            if m.date is None or m.status == "done" or (m.date < as_of and not late):
                continue
            if m.key == "collection":
                text = _collection_text(modality)[1]
            elif m.key.startswith("follow_up_"):
                text = f"Follow-up visit ({m.day} days after the infusion)" if m.day else "Follow-up visit"
            else:
                text = AHEAD_TEXT.get(m.key, MILESTONE_TITLES.get(m.key, m.title))
            estimate = m.basis not in ("recorded", "expected (set by a user)")
            ahead.append(JourneyStep(date=m.date, text=text, estimate=estimate, late=late))
    return JourneyOut(
        started=True,
        now=NOW_TEXT[case.step],
        path="tumour surgery" if modality == "TIL" else "apheresis",
        events=[event for _, event in found],
        ahead=ahead,
    )


# ---------------------------------------------------------------------------------------------
# Reading helpers
# ---------------------------------------------------------------------------------------------


def _patient(request: Request, account: Account, public_id: str) -> tuple[int, str, str]:
    """(row id, public id, label) of a patient the account may see; 404 otherwise."""
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        return row.id, row.public_id, row.label


def _audit(
    request: Request,
    account: Account,
    action: str,
    resource: str,
    patient_id: int | None,
    *,
    resource_id: str | None = None,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    with transaction(request) as session:
        audit(
            session,
            account,
            action,
            resource,
            resource_id,
            patient_id=patient_id,
            outcome=outcome,
            detail=detail,
        )


def _case_or_404(request: Request, public_id: str) -> CaseView:
    found = service.find_case(engine_of(request), case_ref_of(public_id))
    if found is None:
        raise HTTPException(status_code=404, detail="this patient has no vein-to-vein case yet")
    return found


def _modality(product_id: str) -> str:
    from actnav.toxicity.guidance import resolve_product

    return resolve_product(product_id, where="product").modality


def _chain_status(request: Request) -> ChainStatus:
    report = service.verify_custody_chain(engine_of(request))
    return ChainStatus(
        status=report.status,
        entries=report.entries,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        first_broken_seq=report.first_broken_seq,
        problem=report.problem,
    )


def _board_cards(request: Request, active_only: bool) -> list[tuple[service.BoardColumn, list[CaseCardOut]]]:
    """The service's board with each card's patient (public id and label) where the case is a web one."""
    columns = service.case_board(engine_of(request), today(request), active_only=active_only)
    ids = [
        card.case_ref[len(CASE_PREFIX) :]
        for column in columns
        for card in column.cards
        if card.case_ref.startswith(CASE_PREFIX)
    ]
    with transaction(request) as session:
        rows = session.execute(
            select(PatientRow.public_id, PatientRow.label).where(PatientRow.public_id.in_(ids))
        )
        labels = {public_id: label for public_id, label in rows}
    found = []
    for column in columns:
        cards = []
        for card in column.cards:
            public_id = card.case_ref[len(CASE_PREFIX) :] if card.case_ref.startswith(CASE_PREFIX) else None
            label = labels.get(public_id) if public_id else None
            cards.append(
                CaseCardOut(
                    **card.model_dump(),
                    patient_id=public_id if label is not None else None,
                    patient_label=label,
                )
            )
        found.append((column, cards))
    return found


# ---------------------------------------------------------------------------------------------
# Pages: the board
# ---------------------------------------------------------------------------------------------


@router.get("/cases", include_in_schema=False)
def board_page(
    request: Request,
    account: StaffAccount,
    all_cases: Annotated[bool, Query(alias="all")] = False,
) -> Response:
    columns = _board_cards(request, active_only=not all_cases)
    _audit(request, account, "view", "case_board", None)
    return page(
        request,
        "cases/board.html.j2",
        title="Cases by step",
        active="cases",
        columns=columns,
        all_cases=all_cases,
        total=sum(len(cards) for _, cards in columns),
        as_of=today(request),
    )


# ---------------------------------------------------------------------------------------------
# Pages: one case
# ---------------------------------------------------------------------------------------------


def _therapy_options(report: dict[str, Any] | None, on: dt.date) -> dict[str, Any]:
    """Choices of the open-case form: the evaluation's eligible (or needing information) product
    indications first, then every product and indication in force, grouped by collection path.
    Values are ``<product id>`` or ``<product id>:<indication id>``."""
    from actnav.knowledge.loader import load_knowledge

    suggested = []
    for product in (report or {}).get("products") or []:
        for ind in product.get("indications") or []:
            if ind.get("verdict") in ("eligible", "needs_information"):
                suggested.append(
                    {
                        "value": f"{product.get('id')}:{ind.get('id')}",
                        "text": f"{product.get('brand')} ({product.get('product')}) — {ind.get('name')}",
                        "verdict": str(ind.get("verdict")).replace("_", " "),
                    }
                )
    verdicts: dict[str, str] = {}
    for product in (report or {}).get("products") or []:
        for ind in product.get("indications") or []:
            verdicts[f"{product.get('id')}:{ind.get('id')}"] = str(ind.get("verdict")).replace("_", " ")
    groups: dict[str, list[dict[str, str]]] = {}
    for product in load_knowledge().products:
        options = groups.setdefault(product.modality, [])
        name = f"{product.brand} ({product.id.replace('_', ' ')})"
        options.append(
            {"value": product.id, "text": f"{name} — indication chosen at the review", "verdict": ""}
        )
        for ind in product.indications:
            if ind.effective_from <= on and (ind.effective_until is None or on < ind.effective_until):
                value = f"{product.id}:{ind.id}"
                options.append(
                    {"value": value, "text": f"{name} — {ind.name}", "verdict": verdicts.get(value, "")}
                )
    return {
        "suggested": suggested,
        "groups": [(PATHS.get(modality, modality), options) for modality, options in sorted(groups.items())],
    }


def _evaluation_attachment(
    report: dict[str, Any], evaluation_id: int, as_of: dt.date
) -> tuple[str, str, int]:
    """(SHA-256, name, size) of a stored evaluation report as canonical JSON (what is attached)."""
    data = canonical_json(report).encode("utf-8")
    return hashlib.sha256(data).hexdigest(), f"evaluation-{evaluation_id}-{as_of.isoformat()}.json", len(data)


def _render_case(
    request: Request,
    account: Account,
    public_id: str,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    failed: str | None = None,
    failed_form: str | None = None,
    values: Mapping[str, str] | None = None,
    refusal: dict[str, Any] | None = None,
    certificate: CertificateCheck | None = None,
    weight: str = "",
    audit_view: bool = False,
) -> Response:
    from actnav.toxicity.guidance import resolve_product

    engine = engine_of(request)
    on = today(request)
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        patient_id, label = row.id, row.label
        evaluation = latest_evaluation(session, row.id)
        report = evaluation.report if evaluation else None
        evaluation_info = {"id": evaluation.id, "as_of": evaluation.as_of} if evaluation else None
        reviews = reviews_of(session, row.id)
        review = (
            {"decision": reviews[0].decision, "therapy": reviews[0].therapy, "date": reviews[0].meeting_date}
            if reviews
            else None
        )
    case = service.find_case(engine, case_ref_of(public_id))
    ctx: dict[str, Any] = {
        "public_id": public_id,
        "case": case,
        "errors": errors or {},
        "failed": failed,
        "failed_form": failed_form,
        "values": dict(values or {}),
        "refusal": refusal,
        "certificate": certificate,
        "weight": weight,
        "evaluation": evaluation_info,
        "review": review,
        "show_time": show_time,
        "cells_text": cells_text,
        "identifier_fields": IDENTIFIER_FIELDS,
        "titles": {s.value: t for s, t in STEP_TITLES.items()},
        "milestone_titles": MILESTONE_TITLES,
        "chain_keys": CHAIN,
        "custody_events": CUSTODY_EVENTS_BY_HAND,
        "options": _therapy_options(report, on),
        "as_of": on,
    }
    dose: LabelledDose | None = None
    dose_error: str | None = None
    if case is not None:
        product = resolve_product(case.product_id, where="product")
        schedule = service.case_schedule(engine, case.case_ref, as_of=on)
        entries = service.read_custody_log(engine, case_ref=case.case_ref)
        if weight:
            try:
                dose = service.case_dose(engine, case.case_ref, _weight(weight))
            except InputError as exc:
                dose_error = exc.message
        step = Step(case.step)
        before_infusion = ORDER.index(step) < ORDER.index(Step.INFUSED) if step in ORDER else False
        bedside = case.latest("bedside_check")
        ctx.update(
            product=product,
            path=PATHS.get(product.modality, product.modality),
            indications=[
                i
                for i in product.indications
                if i.effective_from <= on and (i.effective_until is None or on < i.effective_until)
            ],
            products=_all_products(),
            schedule=schedule,
            conflict_keys={c.milestone for c in schedule.conflicts if c.severity == "conflict"},
            warning_keys={c.milestone for c in schedule.conflicts if c.severity == "warning"},
            entries=entries,
            chain=_chain_status(request),
            entered=service.step_entered_at(case),
            days_in_step=max(0, (on - service.step_entered_at(case).date()).days),
            next_milestone=service.next_milestone(schedule),
            moves=[
                {
                    **n.model_dump(),
                    "back": n.step in _ORDER_INDEX and _ORDER_INDEX[n.step] < _ORDER_INDEX[case.step],
                }
                for n in case.next_steps
                if n.step != Step.INFUSED.value
            ],
            infusion_next=any(n.step == Step.INFUSED.value for n in case.next_steps),
            before_infusion=before_infusion,
            bridging_open=step in BRIDGING_STEPS,
            report_open=step in (Step.REFERRAL, Step.EVALUATION, Step.REVIEW),
            bedside=bedside,
            bridging=[r for r in case.records if r.kind == "bridging"],
            lymphodepletion=case.latest("lymphodepletion"),
            release=case.latest("release"),
            reports=[r for r in case.records if r.kind == "report"],
            ld_row=lymphodepletion_row(product, case.indication_id),
        )
    ctx.update(dose=dose, dose_error=dose_error)
    if audit_view:
        _audit(request, account, "view", "case", patient_id, resource_id=case.case_ref if case else None)
    return page(
        request,
        "cases/case.html.j2",
        title=f"Vein-to-vein · {label}",
        status_code=status_code,
        active="patients",
        patient_tabs={"label": label, "public_id": public_id, "active": "case"},
        **ctx,
    )


def _all_products() -> list[dict[str, str]]:
    from actnav.knowledge.loader import load_knowledge

    return [{"id": p.id, "text": f"{p.brand} ({p.id.replace('_', ' ')})"} for p in load_knowledge().products]


def _weight(text: str) -> float:
    """A body weight typed on the dose form (the range is checked by the dose service)."""
    from actnav.toxicity.cli import parse_number

    value = parse_number(text, "weight_kg", positive=True)
    assert value is not None
    return value


@router.get("/patients/{public_id}/case", include_in_schema=False)
def case_page(
    request: Request,
    public_id: str,
    account: StaffAccount,
    weight_kg: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    return _render_case(request, account, public_id, weight=weight_kg, audit_view=True)


async def _form_fields(request: Request) -> dict[str, str]:
    """The submitted form's text fields (files ignored); empty for a body that is not a form."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormFields = Annotated[dict[str, str], Depends(_form_fields)]


def _field_errors(error: ValidationError, prefixes: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{form field: problem}``: nested locations joined by ``_`` (``bag.din`` -> ``bag_din``), the
    first part renamed by ``prefixes``. Messages only: an input value is never repeated."""
    found: dict[str, str] = {}
    for item in error.errors(include_input=False, include_url=False):
        loc = [str(p) for p in item.get("loc") or ("request",)]
        if prefixes and loc[0] in prefixes:
            loc[0] = prefixes[loc[0]]
        found.setdefault("_".join(p for p in loc if p), str(item.get("msg", "invalid")))
    return found


def _write(
    request: Request,
    account: Account,
    public_id: str,
    form: str,
    anchor: str,
    fields: Mapping[str, str],
    run: Callable[[str], str],
    *,
    needs_case: bool = True,
    action: str = "update",
) -> Response:
    """Run a write for the patient's case and redirect to the case page (``#anchor``); on a
    problem, show the page again with the form's values (never identifiers) and the problem.

    ``run(case_ref)`` calls the service and returns the audit detail (step or record kind, no
    patient data); ValidationError/InputError give 422, TransitionRefused 409.
    """
    patient_id, public_id, _ = _patient(request, account, public_id)
    ref = case_ref_of(public_id)

    def again(status: int, **problem: Any) -> Response:
        return _render_case(
            request,
            account,
            public_id,
            status_code=status,
            failed_form=form,
            failed=anchor,
            values=_kept_values(fields),
            **problem,
        )

    try:
        if needs_case and service.find_case(engine_of(request), ref) is None:
            raise InputError("open the case first", where="case")
        detail = run(ref)
    except ValidationError as exc:
        _audit(request, account, action, "case", patient_id, resource_id=ref, outcome="invalid", detail=form)
        return again(422, errors=_field_errors(exc, _PREFIXES))
    except TransitionRefused as exc:
        _audit(request, account, action, "case", patient_id, resource_id=ref, outcome="refused", detail=form)
        return again(409, refusal={"message": _refusal_title(exc), "reasons": list(exc.reasons)})
    except InputError as exc:
        _audit(request, account, action, "case", patient_id, resource_id=ref, outcome="invalid", detail=form)
        return again(422, errors={exc.where or "request": exc.message})
    _audit(request, account, action, "case", patient_id, resource_id=ref, detail=detail)
    return RedirectResponse(f"/patients/{public_id}/case#{anchor}", status_code=303)


_IDENTIFIER_KEYS = frozenset(
    {*IDENTIFIER_FIELDS, *(f"{p}_{k}" for p in ("bag", "wristband") for k in (*IDENTIFIER_FIELDS, "din"))}
)


def _kept_values(fields: Mapping[str, str]) -> dict[str, str]:
    """The submitted values shown again in a form with a problem: never identifiers or the token."""
    return {k: v for k, v in fields.items() if k not in _IDENTIFIER_KEYS and k != "csrf_token"}


def _refusal_title(exc: TransitionRefused) -> str:
    """``cannot move from Release testing to Infusion (day 0)`` (the steps' titles)."""
    titles = {s.value: t for s, t in STEP_TITLES.items()}
    found = re.match(r"cannot move from (\w+) to (\w+)", exc.message)
    if found and found[1] in titles and found[2] in titles:
        return f"cannot move from {titles[found[1]]} to {titles[found[2]]}"
    return exc.message.split(":", 1)[0]


# Nested input models named by their form fields.
_PREFIXES = {"lymphodepletion": "ld", "bag": "bag", "wristband": "wristband"}


@router.post("/patients/{public_id}/case", include_in_schema=False)
def open_case_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    def run(ref: str) -> str:
        data = _OpenForm.model_validate(fields)
        product, _, indication = data.therapy.partition(":")
        body = CaseOpenIn(product=product, indication=indication or None, reason=data.reason, at=data.at)
        _open(request, account, ref, body)
        return "opened"

    return _write(
        request, account, public_id, "open", "case-stage", fields, run, needs_case=False, action="create"
    )


def _open(request: Request, account: Account, ref: str, body: CaseOpenIn) -> CaseView:
    if service.find_case(engine_of(request), ref) is not None:
        raise InputError("this patient has a case already", where="case")
    return service.open_case(
        engine_of(request),
        ref,
        body.product,
        at=body.at or _now(),
        recorded_at=_now(),
        actor=account.username,
        reason=body.reason,
        indication_id=body.indication,
    )


def _transition_body(fields: Mapping[str, str]) -> TransitionIn:
    """A transition form as the API's body (``ld_*``, ``bag_*``, ``wristband_*`` nested)."""
    raw: dict[str, Any] = {
        key: fields[key]
        for key in ("to_stage", "reason", "at", "decision", "product", "indication", "deviation")
        if fields.get(key, "").strip()
    }
    if any(fields.get(f"ld_{k}", "").strip() for k in ("start", "end")):
        raw["lymphodepletion"] = {
            "start": fields.get("ld_start", ""),
            "end": fields.get("ld_end", ""),
            "regimen": fields.get("ld_regimen", "").strip() or None,
        }
    for prefix, names in (("bag", (*IDENTIFIER_FIELDS, "din")), ("wristband", tuple(IDENTIFIER_FIELDS))):
        if any(fields.get(f"{prefix}_{name}", "").strip() for name in names):
            raw[prefix] = {name: fields.get(f"{prefix}_{name}", "").strip() for name in names}
    return TransitionIn.model_validate(raw)


def _advance(request: Request, account: Account, ref: str, body: TransitionIn) -> TransitionView:
    ld = (
        (body.lymphodepletion.start, body.lymphodepletion.end, body.lymphodepletion.regimen)
        if body.lymphodepletion
        else None
    )
    return service.advance(
        engine_of(request),
        ref,
        body.to_stage,
        at=body.at or _now(),
        recorded_at=_now(),
        actor=account.username,
        reason=body.reason,
        decision=body.decision,
        product_id=body.product,
        indication_id=body.indication,
        lymphodepletion=ld,
        deviation=body.deviation,
        bag=body.bag,
        wristband=body.wristband,
    )


@router.post("/patients/{public_id}/case/transitions", include_in_schema=False)
def transition_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    target = fields.get("to_stage", "")
    infusion = target == Step.INFUSED.value
    known = target if target in {s.value for s in Step} else "step"
    form, anchor = ("infusion", "infusion") if infusion else (f"move-{known}", "case-stage")

    def run(ref: str) -> str:
        body = _transition_body(fields)
        done = _advance(request, account, ref, body)
        return f"transition {done.from_step} -> {done.to_step}"

    return _write(request, account, public_id, form, anchor, fields, run)


@router.post("/patients/{public_id}/case/report", include_in_schema=False)
def report_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    def run(ref: str) -> str:
        with transaction(request) as session:
            row = patient_for(session, account, public_id)
            found = latest_evaluation(session, row.id)
            if found is None:
                raise InputError("this patient has no evaluation to attach", where="report")
            sha, name, size = _evaluation_attachment(found.report, found.id, found.as_of)
        service.attach_report(
            engine_of(request),
            ref,
            sha256=sha,
            name=name,
            size=size,
            at=_now(),
            recorded_at=_now(),
            actor=account.username,
        )
        return "report attached"

    return _write(request, account, public_id, "report", "records", fields, run)


def _identifiers(fields: Mapping[str, str], prefix: str, *, bag: bool = False) -> dict[str, str]:
    names = (*IDENTIFIER_FIELDS, "din") if bag else tuple(IDENTIFIER_FIELDS)
    return {name: fields.get(f"{prefix}{name}", "").strip() for name in names}


@router.post("/patients/{public_id}/case/identity", include_in_schema=False)
def identity_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    def run(ref: str) -> str:
        person = PatientIdentifiers.model_validate(_identifiers(fields, ""))
        data = _ReasonForm.model_validate(fields)
        service.register_identity(
            engine_of(request),
            ref,
            person,
            at=data.at or _now(),
            recorded_at=_now(),
            actor=account.username,
            reason=data.reason,
        )
        return "identity registered"

    return _write(request, account, public_id, "identity", "identity", fields, run)


@router.post("/patients/{public_id}/case/bridging", include_in_schema=False)
def bridging_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    def run(ref: str) -> str:
        data = _BridgingForm.model_validate(fields)
        service.record_bridging(
            engine_of(request),
            ref,
            regimen=data.regimen,
            start=data.start,
            end=data.end,
            at=data.at or _now(),
            recorded_at=_now(),
            actor=account.username,
            reason=data.reason,
        )
        return "bridging recorded"

    return _write(request, account, public_id, "bridging", "bridging", fields, run)


@router.post("/patients/{public_id}/case/lymphodepletion", include_in_schema=False)
def lymphodepletion_page(
    request: Request, public_id: str, account: StaffWriter, fields: FormFields
) -> Response:
    def run(ref: str) -> str:
        data = _LymphodepletionForm.model_validate(fields)
        service.record_lymphodepletion(
            engine_of(request),
            ref,
            start=data.start,
            end=data.end,
            regimen=data.regimen,
            at=data.at or _now(),
            recorded_at=_now(),
            actor=account.username,
            reason=data.reason,
        )
        return "lymphodepletion recorded"

    return _write(request, account, public_id, "ld", "lymphodepletion-record", fields, run)


@router.post("/patients/{public_id}/case/collections", include_in_schema=False)
def collection_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    def run(ref: str) -> str:
        data = _CollectionForm.model_validate(fields)
        service.add_collection(
            engine_of(request),
            ref,
            facility=data.facility,
            at=data.at or _now(),
            recorded_at=_now(),
            actor=account.username,
            location=data.location,
        )
        return "collection recorded"

    return _write(request, account, public_id, "collection", "collections", fields, run)


@router.post("/patients/{public_id}/case/custody", include_in_schema=False)
def custody_event_page(
    request: Request, public_id: str, account: StaffWriter, fields: FormFields
) -> Response:
    def run(ref: str) -> str:
        data = _CustodyForm.model_validate(fields)
        entry = service.append_custody_event(
            engine_of(request),
            ref,
            data.din,
            data.event,
            at=data.at or _now(),
            recorded_at=_now(),
            actor=account.username,
            location=data.location,
        )
        return f"custody {entry.event}"

    return _write(request, account, public_id, "custody", "collections", fields, run)


@router.post("/patients/{public_id}/case/schedule", include_in_schema=False)
def slip_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    def run(ref: str) -> str:
        data = _SlipForm.model_validate(fields)
        service.record_expected_date(
            engine_of(request),
            ref,
            data.milestone,
            data.date,
            at=_now(),
            recorded_at=_now(),
            actor=account.username,
            reason=data.reason,
            today=today(request),
        )
        return f"expected date of {data.milestone}"

    return _write(request, account, public_id, "slip", "schedule", fields, run)


@router.post("/patients/{public_id}/case/certificate", include_in_schema=False)
def certificate_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    """Check a certificate against the labelled dose; with ``record=yes`` record it as the release."""
    holder: dict[str, CertificateCheck] = {}

    def run(ref: str) -> str:
        data = _CertificateForm.model_validate(fields)
        meets = {"yes": True, "no": False}.get(data.meets_release_specifications or "")
        try:
            certificate = Certificate(cells=data.cells, lot=data.lot, meets_release_specifications=meets)
        except ValidationError as exc:
            raise InputError(str(exc.errors(include_input=False)[0]["msg"]), where="cells") from None
        holder["check"] = service.case_certificate(
            engine_of(request),
            ref,
            data.weight_kg,
            certificate,
            record=data.record == "yes",
            din=data.din,
            accepted_deviation=data.accept_oos,
            at=data.at or _now(),
            recorded_at=_now(),
            actor=account.username,
            reason=data.reason,
        )
        return f"certificate {holder['check'].status}{' recorded as release' if data.record else ''}"

    response = _write(request, account, public_id, "certificate", "certificate", fields, run, action="check")
    if response.status_code == 303 and fields.get("record") != "yes":
        # Nothing stored: show the result at once.
        return _render_case(
            request, account, public_id, certificate=holder["check"], weight=fields.get("weight_kg", "")
        )
    return response


@router.post("/patients/{public_id}/case/bedside", include_in_schema=False)
def bedside_page(request: Request, public_id: str, account: StaffWriter, fields: FormFields) -> Response:
    """The bedside identity check without infusing; its result (no identifiers) is recorded and shown."""

    def run(ref: str) -> str:
        data = _BedsideForm.model_validate(
            {"bag": _identifiers(fields, "bag_", bag=True), "wristband": _identifiers(fields, "wristband_")}
        )
        result = service.run_bedside_check(
            engine_of(request),
            ref,
            data.bag,
            data.wristband,
            at=_now(),
            recorded_at=_now(),
            actor=account.username,
        )
        return "bedside check passed" if result.passed else "bedside check refused"

    return _write(request, account, public_id, "bedside", "bedside", fields, run, action="check")


class _BedsideForm(BaseModel):
    bag: BagLabel
    wristband: PatientIdentifiers


# ---------------------------------------------------------------------------------------------
# Page: the patient's cell journey
# ---------------------------------------------------------------------------------------------


def _journey(request: Request, public_id: str) -> JourneyOut:
    engine = engine_of(request)
    case = service.find_case(engine, case_ref_of(public_id))
    if case is None:
        return journey(None, [], None, None, today(request))
    entries = service.read_custody_log(engine, case_ref=case.case_ref)
    schedule = service.case_schedule(engine, case.case_ref, as_of=today(request))
    return journey(case, entries, schedule, _modality(case.product_id), today(request))


@router.get("/patients/{public_id}/custody", include_in_schema=False)
def journey_page(request: Request, public_id: str, account: CurrentAccount) -> Response:
    patient_id, public_id, label = _patient(request, account, public_id)
    found = _journey(request, public_id)
    _audit(request, account, "view", "custody_journey", patient_id)
    return page(
        request,
        "cases/journey.html.j2",
        title=f"Cell journey · {label}" if account.is_staff else "Your cells' journey",
        active="patients" if account.is_staff else "",
        patient_tabs={"label": label, "public_id": public_id, "active": "custody"},
        journey=found,
        plain_day=plain_day,
        is_staff=account.is_staff,
    )


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


@router.get("/api/cases", tags=["cases"], response_model=list[CaseCardOut], responses=PROBLEMS)
def list_cases_api(
    request: Request,
    account: StaffAccount,
    all_cases: Annotated[bool, Query(alias="all", description="Include closed and withdrawn cases.")] = False,
) -> list[CaseCardOut]:
    """Every case with its step, days in the step, next milestone and conflicts, in lifecycle order
    (care team only)."""
    cards = [card for _, column in _board_cards(request, active_only=not all_cases) for card in column]
    _audit(request, account, "view", "case_board", None)
    return cards


@router.get("/api/patients/{patient_id}/case", tags=["cases"], response_model=CaseView, responses=PROBLEMS)
def get_case_api(request: Request, patient_id: str, account: StaffAccount) -> CaseView:
    """The patient's case: step, every transition (who, when, why), records, collections and what
    each next step still needs (care team only; 404 when there is no case)."""
    row_id, public_id, _ = _patient(request, account, patient_id)
    found = _case_or_404(request, public_id)
    _audit(request, account, "view", "case", row_id, resource_id=found.case_ref)
    return found


@router.post(
    "/api/patients/{patient_id}/case",
    tags=["cases"],
    response_model=CaseView,
    status_code=201,
    responses={**PROBLEMS, **REFUSED},
)
def open_case_api(
    request: Request, patient_id: str, account: StaffWriter, body: CaseOpenIn
) -> Response | CaseView:
    """Open the patient's case at the referral step (care team; 409 when it exists already)."""
    row_id, public_id, _ = _patient(request, account, patient_id)
    ref = case_ref_of(public_id)
    if service.find_case(engine_of(request), ref) is not None:
        return problem(409, "this patient has a case already")
    try:
        opened = _open(request, account, ref, body)
    except InputError:
        _audit(request, account, "create", "case", row_id, resource_id=ref, outcome="invalid")
        raise
    _audit(request, account, "create", "case", row_id, resource_id=ref, detail="opened")
    return opened


@router.post(
    "/api/patients/{patient_id}/case/transitions",
    tags=["cases"],
    response_model=TransitionView,
    status_code=201,
    responses={**PROBLEMS, **REFUSED},
)
def transition_api(
    request: Request, patient_id: str, account: StaffWriter, body: TransitionIn
) -> Response | TransitionView:
    """Move the case to another step. Refused (409, every reason in ``reasons``) when the lifecycle
    does not allow it; the bag and wristband of an infusion are checked and never stored."""
    row_id, public_id, _ = _patient(request, account, patient_id)
    ref = _case_or_404(request, public_id).case_ref
    try:
        done = _advance(request, account, ref, body)
    except TransitionRefused as exc:
        _audit(
            request,
            account,
            "update",
            "case",
            row_id,
            resource_id=ref,
            outcome="refused",
            detail="transition",
        )
        return problem(409, str(exc), reasons=list(exc.reasons))
    except InputError:
        _audit(
            request,
            account,
            "update",
            "case",
            row_id,
            resource_id=ref,
            outcome="invalid",
            detail="transition",
        )
        raise
    detail = f"transition {done.from_step} -> {done.to_step}"
    _audit(request, account, "update", "case", row_id, resource_id=ref, detail=detail)
    return done


@router.get(
    "/api/patients/{patient_id}/case/custody", tags=["cases"], response_model=CustodyOut, responses=PROBLEMS
)
def custody_api(request: Request, patient_id: str, account: StaffAccount) -> CustodyOut:
    """The case's chain-of-custody entries with their hashes, and the verification of the whole
    hash-chained log (care team only)."""
    row_id, public_id, _ = _patient(request, account, patient_id)
    ref = _case_or_404(request, public_id).case_ref
    entries = service.read_custody_log(engine_of(request), case_ref=ref)
    out = CustodyOut(case_ref=ref, entries=entries, chain=_chain_status(request))
    _audit(request, account, "view", "custody", row_id, resource_id=ref)
    return out


@router.get(
    "/api/patients/{patient_id}/case/schedule", tags=["cases"], response_model=Schedule, responses=PROBLEMS
)
def schedule_api(
    request: Request,
    patient_id: str,
    account: CurrentAccount,
    as_of: Annotated[Day | None, Query(description="Today (default: the server's date).")] = None,
) -> Schedule:
    """The case's calendar: recorded, expected and computed dates, label-window conflicts
    (the patient may read its own)."""
    row_id, public_id, _ = _patient(request, account, patient_id)
    ref = _case_or_404(request, public_id).case_ref
    found = service.case_schedule(engine_of(request), ref, as_of=as_of or today(request))
    _audit(request, account, "view", "schedule", row_id, resource_id=ref)
    return found


@router.get(
    "/api/patients/{patient_id}/case/journey", tags=["cases"], response_model=JourneyOut, responses=PROBLEMS
)
def journey_api(request: Request, patient_id: str, account: CurrentAccount) -> JourneyOut:
    """The cell journey in plain words, as the patient's page shows it (the patient may read its own)."""
    row_id, public_id, _ = _patient(request, account, patient_id)
    found = _journey(request, public_id)
    _audit(request, account, "view", "custody_journey", row_id)
    return found
