"""Bedside toxicity pages: a patient's course after infusion, graded at every time point.

Pages (care team only; a patient account gets 403):

* ``GET /patients/{public_id}/toxicity``: the current CRS and ICANS grades (latest assessment),
  the management for them and the product's monitoring plan, the course so far (every time point
  with its grades and why), the time chart, and the form for the next time point.
* ``POST /patients/{public_id}/toxicity/assessments``: add a time point. The form is validated by
  the toxicity input models (:class:`~actnav.toxicity.models.Course`,
  :class:`~actnav.toxicity.models.Assessment`); a problem is shown beside its field with 422 and
  nothing is stored. The course header (product, infusion date, weight, age) is part of the same
  form, prefilled; it is given once and changed only to correct it.
* ``GET /patients/{public_id}/toxicity/chart.svg``: the time chart
  (:func:`actnav.toxicity.chart.render_chart`).

API: ``GET /api/patients/{id}/toxicity`` (the course, its grade report and the current grades) and
``POST /api/patients/{id}/toxicity/assessments`` (``{"assessment": {...}, "course": {...}}``).

Storage: each added time point records the whole course again for the case reference
``web:<public id>`` (:func:`actnav.store.toxicity.add_course`, pseudonymous: never a name), with
the audit event in the same transaction; the latest record is the course. Grades, guidance and the
monitoring plan come from :func:`actnav.toxicity.report.grade_report` (ASTCT 2019, Lee DW et al.,
Biol Blood Marrow Transplant 2019;25:625-638); nothing is graded here.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import threading
import typing
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from actnav.errors import InputError
from actnav.store.accounts import Account, audit
from actnav.store.patients import PatientRow
from actnav.store.toxicity import StoredCourse, add_course, latest_course
from actnav.toxicity.models import Assessment, Course, OxygenDevice, input_errors
from actnav.toxicity.models import Drug as DrugName
from actnav.toxicity.report import AssessmentReport, CourseReport, grade_report, short_source, summary_text
from actnav.web.deps import StaffAccount, StaffWriter, patient_for, today, transaction
from actnav.web.problems import problem
from actnav.web.routes.api import PROBLEMS
from actnav.web.templating import page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["toxicity"], responses=PROBLEMS)

PublicId = Annotated[str, Path(min_length=1, max_length=24, description="The patient's public id.")]

CASE_PREFIX = "web:"
ICE_ITEMS = ("orientation", "naming", "commands", "writing", "attention")
# Display names of the oxygen devices (the codes are the input model's).
OXYGEN_LABELS: dict[str, str] = {
    "none": "None (room air)",
    "low_flow_nasal_cannula": "Low-flow nasal cannula",
    "blow_by": "Blow-by",
    "high_flow_nasal_cannula": "High-flow nasal cannula",
    "facemask": "Facemask",
    "non_rebreather": "Non-rebreather mask",
    "venturi": "Venturi mask",
    "cpap": "CPAP",
    "bipap": "BiPAP",
    "mechanical_ventilation": "Intubation / mechanical ventilation",
}
# Form fields shown with a label in error summaries.
FIELD_LABELS: dict[str, str] = {
    "weight_kg": "Weight (kg)",
    "infusion_date": "Infusion date (day 0)",
    "product": "Product",
    "age_years": "Age (years)",
    "time": "Time of the assessment",
    "temp_c": "Highest temperature (°C)",
    "fever_treatment_given": "Antipyretic or anti-cytokine therapy given",
    "hypotension": "Hypotension",
    "vasopressors": "Vasopressors running",
    "systolic_bp_mmhg": "Systolic blood pressure",
    "oxygen_device": "Oxygen device",
    "oxygen_flow_l_min": "Oxygen flow (L/min)",
    "spo2_percent": "SpO2",
    "ice": "ICE score",
    "ice_score": "ICE score",
    "ice_unable": "Unable to do the ICE",
    **{f"ice_{item}": f"ICE {item}" for item in ICE_ITEMS},
    "capd_score": "CAPD score",
    "developmental_delay": "Developmental delay",
    "consciousness": "Level of consciousness",
    "consciousness_other_cause": "Explained by another cause",
    "seizure": "Seizure",
    "motor_weakness": "Motor findings",
    "cerebral_edema": "Cerebral oedema on imaging",
    "raised_icp_signs": "Signs of raised intracranial pressure",
    "tremor": "Tremor",
    "myoclonus": "Myoclonus",
    "drug": "Drug given",
    "drug_dose_mg": "Dose (mg)",
    "drug_route": "Route",
    "based_on": "Course",
}

_CHART_LOCK = threading.Lock()  # matplotlib's rc_context changes process-wide settings


def case_ref(public_id: str) -> str:
    """The pseudonymous case reference of a patient's toxicity course: ``web:<public id>``."""
    return f"{CASE_PREFIX}{public_id}"


# ---------------------------------------------------------------------------------------------
# The entry form
# ---------------------------------------------------------------------------------------------


class AssessmentForm(BaseModel):
    """The fields of the bedside form, as text (converted and validated by the toxicity models).

    Names are the input model's (``temp_c``, ``oxygen_flow_l_min``...); the ICE items are
    ``ice_orientation`` ... ``ice_attention``; one drug given is ``drug``, ``drug_dose_mg``,
    ``drug_route``. Check boxes send ``yes``.
    """

    model_config = ConfigDict(extra="ignore")

    based_on: str = Field(default="", max_length=20)
    # The course header: a field not sent keeps the recorded value; sent empty, it is cleared.
    weight_kg: str | None = Field(default=None, max_length=20)
    infusion_date: str | None = Field(default=None, max_length=20)
    product: str | None = Field(default=None, max_length=100)
    age_years: str | None = Field(default=None, max_length=20)
    time: str = Field(default="", max_length=40)
    temp_c: str = Field(default="", max_length=20)
    fever_treatment_given: str = Field(default="", max_length=5)
    hypotension: str = Field(default="", max_length=5)
    vasopressors: list[str] = Field(default_factory=list, max_length=10)
    systolic_bp_mmhg: str = Field(default="", max_length=20)
    oxygen_device: str = Field(default="none", max_length=40)
    oxygen_flow_l_min: str = Field(default="", max_length=20)
    spo2_percent: str = Field(default="", max_length=20)
    ice_orientation: str = Field(default="", max_length=5)
    ice_naming: str = Field(default="", max_length=5)
    ice_commands: str = Field(default="", max_length=5)
    ice_writing: str = Field(default="", max_length=5)
    ice_attention: str = Field(default="", max_length=5)
    ice_unable: str = Field(default="", max_length=5)
    capd_score: str = Field(default="", max_length=5)
    developmental_delay: str = Field(default="", max_length=5)
    consciousness: str = Field(default="", max_length=40)
    consciousness_other_cause: str = Field(default="", max_length=5)
    seizure: str = Field(default="", max_length=60)
    motor_weakness: str = Field(default="", max_length=40)
    cerebral_edema: str = Field(default="", max_length=40)
    raised_icp_signs: list[str] = Field(default_factory=list, max_length=10)
    tremor: str = Field(default="", max_length=5)
    myoclonus: str = Field(default="", max_length=5)
    drug: str = Field(default="", max_length=40)
    drug_dose_mg: str = Field(default="", max_length=20)
    drug_route: str = Field(default="", max_length=5)


@dataclass
class FormInput:
    """A form converted to model input: the course header, the new assessment, conversion problems."""

    header: dict[str, Any] = field(default_factory=dict)
    assessment: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _number(text: str, name: str, errors: dict[str, str]) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        errors[name] = f"{text!r} is not a number"
        return None


def _count(text: str, name: str, errors: dict[str, str]) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        errors[name] = f"{text!r} is not a whole number"
        return None


def form_input(form: AssessmentForm) -> FormInput:
    """Turn the form's text into the input of the toxicity models (nothing clinical is decided here).

    Empty fields are left out (absent CRS findings mean none, absent neurological findings mean
    not assessed). "Unable to do the ICE" is an ICE score of 0: the grader tells an unarousable
    patient (grade 4) from an awake one (grade 3) by the level of consciousness.
    """
    out = FormInput()
    errors = out.errors
    if form.weight_kg is not None:
        out.header["weight_kg"] = _number(form.weight_kg, "weight_kg", errors)  # required: None is reported
    if form.infusion_date is not None:
        out.header["infusion_date"] = form.infusion_date.strip() or None
    if form.product is not None:
        out.header["product"] = form.product.strip() or None
    if form.age_years is not None:
        out.header["age_years"] = _number(form.age_years, "age_years", errors)

    a = out.assessment
    if form.time.strip():
        a["time"] = form.time.strip()
    for name in ("temp_c", "systolic_bp_mmhg", "oxygen_flow_l_min", "spo2_percent"):
        value = _number(getattr(form, name), name, errors)
        if value is not None:
            a[name] = value
    for name in (
        "fever_treatment_given",
        "hypotension",
        "developmental_delay",
        "consciousness_other_cause",
        "tremor",
        "myoclonus",
    ):
        if getattr(form, name):
            a[name] = True
    if form.vasopressors:
        a["vasopressors"] = list(form.vasopressors)
    if form.oxygen_device.strip():
        a["oxygen_device"] = form.oxygen_device.strip()
    items = {item: _count(getattr(form, f"ice_{item}"), f"ice_{item}", errors) for item in ICE_ITEMS}
    given = {item: value for item, value in items.items() if value is not None}
    if form.ice_unable:
        if given:
            errors["ice_unable"] = "give the ICE items, or tick 'unable to do the ICE', not both"
        a["ice_score"] = 0
    elif given:
        a["ice"] = given  # a missing item is reported by the model, naming it
    capd = _count(form.capd_score, "capd_score", errors)
    if capd is not None:
        a["capd_score"] = capd
    for name in ("consciousness", "seizure", "motor_weakness", "cerebral_edema"):
        if getattr(form, name).strip():
            a[name] = getattr(form, name).strip()
    if form.raised_icp_signs:
        a["raised_icp_signs"] = list(form.raised_icp_signs)
    if form.drug.strip():
        drug: dict[str, Any] = {"drug": form.drug.strip()}
        dose = _number(form.drug_dose_mg, "drug_dose_mg", errors)
        if dose is not None:
            drug["dose_mg"] = dose
        if form.drug_route.strip():
            drug["route"] = form.drug_route.strip()
        a["drugs_given"] = [drug]
    elif form.drug_dose_mg.strip():
        errors["drug"] = "name the drug the dose is for"
    return out


_ICE_RANGE = re.compile(
    r"^(?P<value>\S+) is outside the ICE (?P<item>\w+) item range \((?P<low>\d+)-(?P<high>\d+) points\)"
)


def named_message(name: str, message: str) -> str:
    """A form problem that names its field, as a screen reader reads it beside the field
    ("ICE orientation: must be 0 to 4 (99 given)"); the ranges are the model's (ASTCT ICE)."""
    label = FIELD_LABELS.get(name, name.replace("_", " "))
    found = _ICE_RANGE.match(message)
    if found:
        return f"ICE {found['item']}: must be {found['low']} to {found['high']} ({found['value']} given)"
    if name.startswith("ice_") and name != "ice_unable" and "required" in message.lower():
        return f"{label}: required with the other ICE items (or tick 'Unable to do the ICE')"
    if message.startswith(label):
        return message
    return f"{label}: {message}"


def form_field(where: str | None, new_index: int) -> str:
    """The form field an error location of the course names (``assessments[3].ice.naming`` ->
    ``ice_naming``); other locations are returned as they are."""
    if not where:
        return "form"
    prefix = f"assessments[{new_index}]."
    if where.startswith(prefix):
        rest = where[len(prefix) :]
        if rest.startswith("ice."):
            return "ice_" + rest[4:]
        if rest == "ice_score":  # the form gives the ICE as items, or "unable" (a score of 0)
            return "ice"
        if rest.startswith("drugs_given[0]."):
            inner = rest[len("drugs_given[0].") :]
            return "drug" if inner == "drug" else f"drug_{inner}"
        return rest.split("[", 1)[0]
    return where


# ---------------------------------------------------------------------------------------------
# Course updates (shared by the page and the API)
# ---------------------------------------------------------------------------------------------


class CourseProblems(Exception):
    """The course with the new assessment is invalid; ``problems`` name the fields (course paths)."""

    def __init__(self, problems: list[InputError]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def header_of(course: Course | None) -> dict[str, Any]:
    """The course header as input values (``weight_kg``, ``infusion_date``, ``product``, ``age_years``)."""
    if course is None:
        return {}
    return {
        "weight_kg": course.weight_kg,
        "infusion_date": course.infusion_date.isoformat() if course.infusion_date else None,
        "product": course.product,
        "age_years": course.age_years,
    }


def extended_course(
    stored: Course | None, header: dict[str, Any], assessment: dict[str, Any], *, on: dt.date | None = None
) -> tuple[Course, CourseReport]:
    """The stored course with a new assessment appended (and header fields replaced), graded.

    Args:
        stored: the latest recorded course, or None.
        header: header fields to set (``weight_kg``, ``infusion_date``, ``product``, ``age_years``);
            a value of None clears an optional field.
        assessment: the new assessment as model input (JSON-like values).
        on: today's date (the app's clock): the infusion date and the new time point may not be
            later (the rest of today is allowed). None: not checked.

    Returns:
        The validated course and its grade report.

    Raises:
        CourseProblems: every problem, ``where`` naming the course path
            (``assessments[3].temp_c``, ``weight_kg``).
    """
    data = header_of(stored)
    old_age = data.get("age_years")
    data.update(header)
    previous: list[dict[str, Any]] = []
    for item in stored.assessments if stored is not None else ():
        payload = item.model_dump(mode="json", exclude_unset=True)
        if data.get("age_years") != old_age and "age_years" in payload and payload["age_years"] == old_age:
            payload.pop("age_years")  # it was the course's age: take the corrected one
        previous.append(payload)
    data = {key: value for key, value in data.items() if value is not None}
    data["assessments"] = [*previous, assessment]
    try:
        course = Course.model_validate(data)
    except ValidationError as exc:
        found = input_errors(Course, exc)
        # An invalid new item also makes pydantic report the list as too short: say it once.
        named = [p for p in found if p.where != "assessments"] or found
        raise CourseProblems(named) from exc
    out_of_range = _dates_out_of_range(course)
    if on is not None:
        out_of_range += _dates_in_the_future(course, len(previous), on)
    if out_of_range:
        raise CourseProblems(out_of_range)
    report = grade_report(course)  # InputError: a bad recorded dose
    if not isinstance(report, CourseReport):  # pragma: no cover - a Course gives a CourseReport
        raise TypeError("expected a course report")
    return course, report


EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2199, 12, 31)


def _dates_out_of_range(course: Course) -> list[InputError]:
    """Dates and times outside 1900-2199: typing errors (and beyond the calendar once shifted to UTC)."""
    found: list[tuple[str, dt.date | dt.datetime | None]] = [("infusion_date", course.infusion_date)]
    for i, item in enumerate(course.assessments):
        found.append((f"assessments[{i}].time", item.time))
        found += [(f"assessments[{i}].drugs_given[{j}].time", d.time) for j, d in enumerate(item.drugs_given)]
        found += [(f"assessments[{i}].labs[{j}].time", lab.time) for j, lab in enumerate(item.labs)]
    return [
        InputError(f"{value.isoformat()} is not a plausible date (1900-2199)", where=where)
        for where, value in found
        if value is not None
        and not EARLIEST <= (value.date() if isinstance(value, dt.datetime) else value) <= LATEST
    ]


def _calendar_date(value: dt.date | dt.datetime) -> dt.date:
    """The date of a time as the pages show it (UTC; a time without an offset is UTC already)."""
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).date()
    return value


def _dates_in_the_future(course: Course, new_index: int, on: dt.date) -> list[InputError]:
    """The infusion date and the new time point (with its drugs and labs) after today: not yet happened."""
    found: list[tuple[str, dt.date | dt.datetime | None]] = [("infusion_date", course.infusion_date)]
    if new_index < len(course.assessments):
        item = course.assessments[new_index]
        found.append((f"assessments[{new_index}].time", item.time))
        found += [
            (f"assessments[{new_index}].drugs_given[{j}].time", d.time)
            for j, d in enumerate(item.drugs_given)
        ]
        found += [(f"assessments[{new_index}].labs[{j}].time", lab.time) for j, lab in enumerate(item.labs)]
    return [
        InputError(f"{value.isoformat()} is in the future (today is {on.isoformat()})", where=where)
        for where, value in found
        if value is not None and _calendar_date(value) > on
    ]


def _record(
    session: Session, account: Account, row: PatientRow, course: Course, *, header_changed: bool
) -> int:
    added = add_course(session, case_ref(row.public_id), course, recorded_at=dt.datetime.now(dt.UTC))
    audit(
        session,
        account,
        "create",
        "toxicity_assessment",
        added.id,
        patient_id=row.id,
        detail=f"time points={len(course.assessments)}"
        + ("; course header changed" if header_changed else ""),
    )
    return added.id


# ---------------------------------------------------------------------------------------------
# What the page shows
# ---------------------------------------------------------------------------------------------


def grade_text(grade: int | None, status: str, syndrome: str) -> str:
    """A grade as the page writes it: ``Grade 3``, or why there is none."""
    if grade is not None:
        return f"Grade {grade}"
    if status == "not_met":
        return f"No {syndrome} (criteria not met)"
    if syndrome == "CRS":
        return "Not judged (no temperature recorded)"
    return "Not assessed"


def _choices() -> dict[str, Any]:
    """The options of the form's lists, from the input models and the ASTCT tables."""
    from actnav.knowledge.loader import load_knowledge
    from actnav.toxicity.crs import load_crs_table
    from actnav.toxicity.icans import load_icans_table

    icans = load_icans_table()
    agents = [
        {
            "id": agent.id,
            "label": agent.id.replace("_", " ")
            + (f" ({', '.join(agent.aliases)})" if agent.aliases else "")
            + ("" if agent.counts_toward_multiple else ": not counted towards multiple vasopressors"),
        }
        for agent in load_crs_table().vasopressor_agents
    ]
    return {
        "oxygen_devices": [(code, OXYGEN_LABELS.get(code, code)) for code in typing.get_args(OxygenDevice)],
        "vasopressor_agents": agents,
        "consciousness_rows": [(r.value, r.text) for r in icans.consciousness],
        "seizure_rows": [(r.value, r.text) for r in icans.seizure],
        "motor_rows": [(r.value, r.text) for r in icans.motor_weakness],
        "edema_rows": [(r.value, r.text) for r in icans.cerebral_edema],
        "icp_rows": [(r.value, r.text) for r in icans.raised_icp_signs],
        "drugs": list(typing.get_args(DrugName)),
        "products": [(p.id, p.brand) for p in load_knowledge().products],
    }


def _form_values(stored: StoredCourse | None) -> dict[str, Any]:
    """The form's initial values: the recorded course header, and the course it is based on."""
    values: dict[str, Any] = {"based_on": str(stored.id) if stored else ""}
    for key, value in header_of(stored.course if stored else None).items():
        values[key] = f"{value:g}" if isinstance(value, float) else value
    return values


BASELINE = "before infusion (baseline)"
_NEGATIVE_DAY = re.compile(r"\bon day -\d+|\bday -\d+")


def day_text(day: int | None) -> str:
    """A day since infusion as the page writes it: ``day 3``, or before the infusion, baseline."""
    if day is None:
        return ""
    return BASELINE if day < 0 else f"day {day}"


def baseline_days(text: str) -> str:
    """A grading text with its negative days (a time point before the infusion) written as baseline:
    the onset of a syndrome is not dated before day 0 on the page."""
    return _NEGATIVE_DAY.sub(BASELINE, text)


def _view(stored: StoredCourse | None) -> dict[str, Any]:
    """The template context of the course: report, current grades, table rows."""
    if stored is None:
        return {"stored": None, "report": None, "current": None, "rows": [], "summaries": []}
    report = grade_report(stored.course)
    assert isinstance(report, CourseReport)
    by_index = {i: a for i, a in enumerate(stored.course.assessments)}
    rows = [
        {
            "time": item.time,
            "day": item.day,
            "day_text": day_text(item.day),
            "baseline": item.day is not None and item.day < 0,
            "assessment": by_index[item.index],
            "crs": grade_text(item.crs.grade, item.crs.status, "CRS"),
            "icans": grade_text(item.icans.grade, item.icans.status, "ICANS"),
            "item": item,
        }
        for item in report.assessments
    ]
    current: AssessmentReport = report.assessments[-1]
    return {
        "stored": stored,
        "report": report,
        "current": current,
        "current_crs": grade_text(current.crs.grade, current.crs.status, "CRS"),
        "current_icans": grade_text(current.icans.grade, current.icans.status, "ICANS"),
        "current_day": day_text(current.day),
        "current_baseline": current.day is not None and current.day < 0,
        "rows": rows,
        "summaries": [
            baseline_days(summary_text("CRS", report.crs)),
            baseline_days(summary_text("ICANS", report.icans)),
        ],
    }


def _render(
    request: Request,
    row_label: str,
    public_id: str,
    stored: StoredCourse | None,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "toxicity/course.html.j2",
        title="Toxicity after infusion",
        status_code=status_code,
        active="patients",
        patient_tabs={"label": row_label, "public_id": public_id, "active": "toxicity"},
        public_id=public_id,
        values=values if values is not None else _form_values(stored),
        errors=errors or {},
        labels=FIELD_LABELS,
        short_source=short_source,
        **_view(stored),
        **_choices(),
    )


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


@pages.get("/patients/{public_id}/toxicity")
def toxicity_page(request: Request, public_id: PublicId, account: StaffAccount) -> Response:
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        stored = latest_course(session, case_ref(row.public_id))
        audit(session, account, "view", "toxicity_course", stored.id if stored else None, patient_id=row.id)
        label = row.label
    return _render(request, label, public_id, stored)


@pages.post("/patients/{public_id}/toxicity/assessments")
def add_assessment_page(
    request: Request,
    public_id: PublicId,
    account: StaffWriter,
    form: Annotated[AssessmentForm, Form()],
) -> Response:
    converted = form_input(form)
    errors = dict(converted.errors)
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        label = row.label
        stored = latest_course(session, case_ref(row.public_id))
        current_id = str(stored.id) if stored else ""
        if form.based_on.strip() != current_id:
            errors["based_on"] = (
                "the course changed since this form was opened (another entry was saved): "
                "check the course below and enter the time point again"
            )
        else:
            # Validated even after a conversion problem, so that every problem is shown at once.
            new_index = len(stored.course.assessments) if stored else 0
            try:
                course, _report = extended_course(
                    stored.course if stored else None,
                    converted.header,
                    converted.assessment,
                    on=today(request),
                )
            except CourseProblems as bad:
                for problem_ in bad.problems:
                    errors.setdefault(form_field(problem_.where, new_index), problem_.message)
            except InputError as bad:
                errors.setdefault(form_field(bad.where, new_index), bad.message)
            else:
                if not errors:
                    changed = header_of(stored.course) != header_of(course) if stored else False
                    _record(session, account, row, course, header_changed=changed)
        if errors:
            audit(
                session, account, "create", "toxicity_assessment", None, patient_id=row.id, outcome="invalid"
            )
    if errors:
        errors = {name: named_message(name, message) for name, message in errors.items()}
        sent = {key: value for key, value in form.model_dump().items() if value is not None}
        values = {**_form_values(stored), **sent}
        if "based_on" in errors:
            values = {**values, "based_on": current_id}
        return _render(request, label, public_id, stored, values=values, errors=errors, status_code=422)
    return RedirectResponse(f"/patients/{public_id}/toxicity#current", status_code=303)


@pages.get("/patients/{public_id}/toxicity/chart.svg")
def toxicity_chart(request: Request, public_id: PublicId, account: StaffAccount) -> Response:
    from actnav.toxicity.chart import render_chart

    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        stored = latest_course(session, case_ref(row.public_id))
        if stored is None:
            raise HTTPException(status_code=404, detail="no toxicity course is recorded for this patient")
        audit(session, account, "view", "toxicity_chart", stored.id, patient_id=row.id)
    with tempfile.TemporaryDirectory(prefix="actnav-chart-") as folder, _CHART_LOCK:
        path = render_chart(stored.course, FilePath(folder) / "chart.svg")
        svg = path.read_bytes()
    return Response(svg, media_type="image/svg+xml")


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


class CurrentGrades(BaseModel):
    """The grades of the latest assessment (in time order)."""

    time: dt.datetime | None
    day: int | None = Field(description="Day since infusion (day 0 = the infusion date), if known.")
    crs_grade: int | None = Field(description="ASTCT CRS grade 0-4; null when not met or not judged.")
    crs_status: str = Field(description="graded, not_met or unknown.")
    crs_reason: str
    icans_grade: int | None = Field(description="ASTCT ICANS grade 0-4; null when not assessed.")
    icans_status: str = Field(description="graded or unknown.")
    icans_reason: str


class ToxicityOut(BaseModel):
    """A patient's toxicity course after infusion with its grade report (null when none is recorded)."""

    patient_id: str = Field(description="The patient's public id.")
    course_id: int | None = Field(description="Id of the latest course record.")
    recorded_at: dt.datetime | None
    course: Course | None = Field(description="The course as recorded (input form).")
    report: CourseReport | None = Field(
        description="Grades at every time point, the course summary, the management and monitoring plan."
    )
    current: CurrentGrades | None


class CourseHeaderIn(BaseModel):
    """Course fields given once (the first time point needs ``weight_kg``); given later, they replace
    the recorded ones (a correction)."""

    model_config = ConfigDict(extra="forbid")

    weight_kg: float | None = Field(default=None, ge=1, le=400, description="Body weight, kg.")
    infusion_date: dt.date | None = Field(default=None, description="Day 0, the day of infusion.")
    product: str | None = Field(
        default=None, max_length=100, description="Product id, INN or brand (e.g. Yescarta)."
    )
    age_years: float | None = Field(default=None, ge=0, le=120, description="Age in years.")


class NewAssessmentIn(BaseModel):
    """One time point to add to the patient's course."""

    model_config = ConfigDict(extra="forbid")

    assessment: Assessment
    course: CourseHeaderIn | None = None


def _out(public_id: str, stored: StoredCourse | None) -> ToxicityOut:
    if stored is None:
        return ToxicityOut(
            patient_id=public_id, course_id=None, recorded_at=None, course=None, report=None, current=None
        )
    report = grade_report(stored.course)
    assert isinstance(report, CourseReport)
    last = report.assessments[-1]
    current = CurrentGrades(
        time=last.time,
        day=last.day,
        crs_grade=last.crs.grade,
        crs_status=last.crs.status,
        crs_reason=last.crs.reason,
        icans_grade=last.icans.grade,
        icans_status=last.icans.status,
        icans_reason=last.icans.reason,
    )
    return ToxicityOut(
        patient_id=public_id,
        course_id=stored.id,
        recorded_at=stored.recorded_at,
        course=stored.course,
        report=report,
        current=current,
    )


def _api_field(where: str | None, new_index: int) -> str:
    if not where:
        return "request"
    prefix = f"assessments[{new_index}]"
    if where.startswith(prefix):
        return "assessment" + where[len(prefix) :]
    if where.split(".")[0].split("[")[0] in CourseHeaderIn.model_fields:
        return f"course.{where}"
    return where


@api.get("/patients/{patient_id}/toxicity", response_model=ToxicityOut)
def get_toxicity(request: Request, patient_id: PublicId, account: StaffAccount) -> ToxicityOut:
    """The patient's course after infusion: every time point graded (ASTCT 2019), the current grades,
    the management and monitoring plan (care team only)."""
    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        stored = latest_course(session, case_ref(row.public_id))
        audit(session, account, "view", "toxicity_course", stored.id if stored else None, patient_id=row.id)
    return _out(patient_id, stored)


@api.post("/patients/{patient_id}/toxicity/assessments", response_model=ToxicityOut, status_code=201)
def post_assessment(
    request: Request, patient_id: PublicId, body: NewAssessmentIn, account: StaffWriter
) -> ToxicityOut | JSONResponse:
    """Add a time point to the patient's course and grade it (care team only). The first time point
    needs ``course.weight_kg``. Invalid input: 422 naming each field; nothing is stored."""
    header = body.course.model_dump(mode="json", exclude_unset=True) if body.course else {}
    assessment = body.assessment.model_dump(mode="json", exclude_unset=True)
    with transaction(request) as session:
        row = patient_for(session, account, patient_id)
        stored = latest_course(session, case_ref(row.public_id))
        new_index = len(stored.course.assessments) if stored else 0
        try:
            course, _report = extended_course(
                stored.course if stored else None, header, assessment, on=today(request)
            )
        except (CourseProblems, InputError) as bad:
            found = bad.problems if isinstance(bad, CourseProblems) else [bad]
            errors = [{"field": _api_field(p.where, new_index), "problem": p.message} for p in found]
            detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
            audit(
                session, account, "create", "toxicity_assessment", None, patient_id=row.id, outcome="invalid"
            )
            return problem(422, detail, errors=errors)
        changed = header_of(stored.course) != header_of(course) if stored else False
        _record(session, account, row, course, header_changed=changed)
        stored = latest_course(session, case_ref(row.public_id))
    return _out(patient_id, stored)


router = APIRouter()
router.include_router(pages)
router.include_router(api)
