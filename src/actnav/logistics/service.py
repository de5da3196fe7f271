"""The vein-to-vein service API: what the CLI and the web pages call.

Every function takes the database engine (:func:`actnav.store.db.get_engine`) and plain inputs, and
returns pydantic models (``model_dump(mode="json")`` gives the JSON a page needs). Times are
timezone-aware datetimes chosen by the caller (the clock is read in the CLI or the web handler);
``recorded_at`` is "now". Errors are :class:`~actnav.errors.InputError` (bad input, a refused
transition: :class:`~actnav.logistics.lifecycle.TransitionRefused`) or
:class:`~actnav.errors.DataFileError`.

Cases and transitions::

    open_case(engine, case_ref, product_id, at=, recorded_at=, actor=, reason=, indication_id=, identity=)
    read_case(engine, case_ref) -> CaseView
    list_cases(engine, active_only=True) -> list[CaseView]
    advance(engine, case_ref, Step, at=, recorded_at=, actor=, reason=, decision=, product_id=,
            indication_id=, lymphodepletion=(start, end, regimen), deviation=, bag=, wristband=)
    attach_report_file(engine, case_ref, path, ...) / attach_report(engine, case_ref, sha256=, ...)
    register_identity(engine, case_ref, PatientIdentifiers, ...)
    record_bridging(engine, case_ref, regimen=, start=, end=, ...)
    record_lymphodepletion(engine, case_ref, start=, end=, regimen=, ...)
    record_expected_date(engine, case_ref, milestone, date, ...)          # a slip

Chain of identity and custody::

    add_collection(engine, case_ref, facility=, at=, ...) -> Din
    append_custody_event(engine, case_ref, din, event, at=, ...) -> CustodyEntryView
    read_custody_log(engine, din=, case_ref=) -> list[CustodyEntryView]
    verify_custody_chain(engine) -> ChainReport
    run_bedside_check(engine, case_ref, bag, wristband, ...) -> BedsideResult

Schedule, dose, release, notifications::

    case_schedule(engine, case_ref, as_of=, planned_collection=) -> Schedule
    case_dose(engine, case_ref, weight_kg) -> LabelledDose
    case_certificate(engine, case_ref, weight_kg, Certificate, record=..., ...) -> CertificateCheck
    due_steps(engine, as_of) -> list[DueStep]
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from actnav.errors import InputError
from actnav.logistics.dose import (
    Certificate,
    CertificateCheck,
    LabelledDose,
    check_certificate,
    labelled_dose,
)
from actnav.logistics.lifecycle import Step
from actnav.logistics.schedule import CHAIN, Schedule, build_schedule
from actnav.store.logistics import (
    CaseView,
    add_collection,
    advance,
    append_custody_event,
    attach_report,
    list_cases,
    open_case,
    read_case,
    read_custody_log,
    record_bridging,
    record_expected_date,
    record_lymphodepletion,
    record_release,
    register_identity,
    run_bedside_check,
    verify_custody_chain,
)

__all__ = [
    "DueStep",
    "add_collection",
    "advance",
    "append_custody_event",
    "attach_report",
    "attach_report_file",
    "case_certificate",
    "case_dates",
    "case_dose",
    "case_schedule",
    "due_steps",
    "list_cases",
    "open_case",
    "read_case",
    "read_custody_log",
    "record_bridging",
    "record_expected_date",
    "record_lymphodepletion",
    "register_identity",
    "run_bedside_check",
    "verify_custody_chain",
]

# The step whose (latest) transition dates a milestone.
_STEP_OF: dict[str, Step] = {
    "shipped_to_manufacturing": Step.SHIPPED_TO_MANUFACTURING,
    "shipped_back": Step.SHIPPED_BACK,
    "received": Step.RECEIVED,
    "infusion": Step.INFUSED,
}


def attach_report_file(
    engine: Engine,
    case_ref: str,
    path: Path,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str = "evaluation report attached",
) -> CaseView:
    """Attach an evaluation report file (``actnav evaluate --out``) by its SHA-256, name and size.

    Raises:
        InputError: the file cannot be read; see :func:`actnav.store.logistics.attach_report`.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the report: {exc.strerror or exc}", where=str(path)) from exc
    return attach_report(
        engine,
        case_ref,
        sha256=hashlib.sha256(data).hexdigest(),
        name=path.name,
        size=len(data),
        at=at,
        recorded_at=recorded_at,
        actor=actor,
        reason=reason,
    )


def case_dates(case: CaseView, as_of: dt.date) -> tuple[dict[str, dt.date], dict[str, dt.date]]:
    """The recorded (actual) and expected milestone dates of a case, for :func:`build_schedule`.

    Actual: the latest collection's day, the release record's day, the day of the latest transition
    into shipped_to_manufacturing / shipped_back / received / infused, the lymphodepletion days
    (those after ``as_of`` count as expected). A date older than an earlier milestone's (left over
    from before a re-collection or re-manufacture) is dropped. Expected: the latest slip per milestone.
    """
    found: dict[str, dt.date] = {}
    if case.collections:
        found["collection"] = case.collections[-1].collected_on
    release = case.latest("release")
    if release is not None:
        found["release"] = release.at.date()
    for key, step in _STEP_OF.items():
        times = [t.at for t in case.transitions if t.to_step == step.value]
        if times:
            found[key] = times[-1].date()
    expected: dict[str, dt.date] = {}
    ld = case.latest("lymphodepletion")
    if ld is not None:
        for key, field in (("lymphodepletion_start", "start"), ("lymphodepletion_end", "end")):
            day = dt.date.fromisoformat(ld.payload[field])
            (found if day <= as_of else expected)[key] = day
    actual: dict[str, dt.date] = {}
    floor: dt.date | None = None
    for key in CHAIN:
        when = found.get(key)
        if when is None:
            continue
        day = when
        if floor is not None and day < floor and not key.startswith("lymphodepletion"):
            continue  # a milestone of an earlier attempt
        actual[key] = day
        floor = day
    for record in case.records:
        if record.kind == "expected_date" and record.payload["milestone"] not in actual:
            expected[record.payload["milestone"]] = dt.date.fromisoformat(record.payload["date"])
    return actual, expected


def case_schedule(
    engine: Engine, case_ref: str, *, as_of: dt.date, planned_collection: dt.date | None = None
) -> Schedule:
    """The calendar of a stored case as of a day (recorded dates, slips, then computed ones).

    Args:
        planned_collection: the planned collection day, used while none is recorded or expected.

    Raises:
        InputError: no such case.
    """
    case = read_case(engine, case_ref)
    actual, expected = case_dates(case, as_of)
    return build_schedule(
        case.product_id,
        case.indication_id,
        as_of=as_of,
        actual=actual,
        expected=expected,
        planned_collection=planned_collection,
    )


def case_dose(engine: Engine, case_ref: str, weight_kg: float) -> LabelledDose:
    """The labelled dose for the case's product and indication at a body weight (kg).

    Raises:
        InputError: no such case; the indication is not chosen and the product needs one; bad weight.
    """
    case = read_case(engine, case_ref)
    return labelled_dose(case.product_id, case.indication_id, weight_kg)


def case_certificate(
    engine: Engine,
    case_ref: str,
    weight_kg: float,
    certificate: Certificate,
    *,
    record: bool = False,
    din: str | None = None,
    accepted_deviation: str | None = None,
    at: dt.datetime | None = None,
    recorded_at: dt.datetime | None = None,
    actor: str | None = None,
    reason: str = "certificate checked against the labelled dose",
) -> CertificateCheck:
    """Check a product certificate against the case's labelled dose; with ``record``, record the release.

    Raises:
        InputError: see :func:`case_dose`; with ``record``: ``at``, ``recorded_at`` and ``actor`` are
            needed, and :func:`actnav.store.logistics.record_release` rules apply.
    """
    result = check_certificate(case_dose(engine, case_ref, weight_kg), certificate)
    if record:
        if at is None or recorded_at is None or actor is None:
            raise InputError("recording a release needs when, when recorded and who", where="record")
        record_release(
            engine,
            case_ref,
            result,
            din=din,
            lot=certificate.lot,
            accepted_deviation=accepted_deviation,
            at=at,
            recorded_at=recorded_at,
            actor=actor,
            reason=reason,
        )
    return result


class DueStep(BaseModel):
    """A step due (within the notification horizon) or overdue for a case; no patient identifiers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_ref: str
    milestone: str
    title: str
    date: dt.date
    status: str
    days_late: int


def due_steps(engine: Engine, as_of: dt.date) -> list[DueStep]:
    """Steps of active cases that are due (today up to the horizon) or overdue (past, not recorded).

    Only the steps up to infusion can be overdue (they are recorded when they happen); the monitoring
    and follow-up milestones are listed while they are due.
    """
    found: list[DueStep] = []
    for case in list_cases(engine):
        schedule = case_schedule(engine, case.case_ref, as_of=as_of)
        for m in schedule.milestones:
            if m.date is None or m.status not in ("due", "overdue"):
                continue
            if m.status == "overdue" and m.key not in CHAIN:
                continue
            found.append(
                DueStep(
                    case_ref=case.case_ref,
                    milestone=m.key,
                    title=m.title,
                    date=m.date,
                    status=m.status,
                    days_late=max(0, (as_of - m.date).days),
                )
            )
    return sorted(found, key=lambda d: (d.date, d.case_ref, d.milestone))
