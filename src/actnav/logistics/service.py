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
    record_expected_date(engine, case_ref, milestone, date, ..., today=None)  # a slip

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

Case board (the web pages' overview)::

    find_case(engine, case_ref) -> CaseView | None
    step_entered_at(case) -> datetime
    next_milestone(schedule) -> Milestone | None
    case_board(engine, as_of, active_only=True) -> list[BoardColumn]
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
from actnav.logistics.lifecycle import ORDER, TITLES, Step
from actnav.logistics.schedule import CHAIN, Conflict, Milestone, Schedule, build_schedule
from actnav.store.logistics import (
    CaseView,
    add_collection,
    advance,
    append_custody_event,
    attach_report,
    check_case_ref,
    list_cases,
    open_case,
    read_case,
    read_custody_log,
    record_bridging,
    record_lymphodepletion,
    record_release,
    register_identity,
    run_bedside_check,
    verify_custody_chain,
)
from actnav.store.logistics import record_expected_date as _record_expected_date

__all__ = [
    "BoardCard",
    "BoardColumn",
    "DueStep",
    "add_collection",
    "advance",
    "append_custody_event",
    "attach_report",
    "attach_report_file",
    "case_board",
    "case_certificate",
    "case_dates",
    "case_dose",
    "case_schedule",
    "due_steps",
    "find_case",
    "list_cases",
    "next_milestone",
    "open_case",
    "read_case",
    "read_custody_log",
    "record_bridging",
    "record_expected_date",
    "record_lymphodepletion",
    "register_identity",
    "run_bedside_check",
    "step_entered_at",
    "verify_custody_chain",
]

# The step whose (latest) transition dates a milestone.
_STEP_OF: dict[str, Step] = {
    "shipped_to_manufacturing": Step.SHIPPED_TO_MANUFACTURING,
    "shipped_back": Step.SHIPPED_BACK,
    "received": Step.RECEIVED,
    "infusion": Step.INFUSED,
}
_LD_KEYS = (("lymphodepletion_start", "start"), ("lymphodepletion_end", "end"))


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

    Actual, from the current attempt only (a return to ``collection`` starts a new one from the
    collection, a return to ``manufacturing`` from the release): the latest collection's day, the
    release record's day, the day of the latest transition into shipped_to_manufacturing /
    shipped_back / received / infused, and the lymphodepletion days once the case is at
    lymphodepletion (a day after ``as_of`` is still expected) or infused. Expected: the newest slip
    per milestone, and the lymphodepletion days recorded before it starts (the newer record wins).

    Returns:
        ``(actual, expected)``: dates by milestone key of :data:`~actnav.logistics.schedule.CHAIN`.
    """
    moves = case.transitions

    def last_into(*steps: Step) -> int:
        return max((i for i, t in enumerate(moves) if t.to_step in {s.value for s in steps}), default=-1)

    recollected = last_into(Step.COLLECTION)
    remade = max(recollected, last_into(Step.MANUFACTURING))
    since_collection = moves[recollected].at if recollected >= 0 else None
    since_manufacture = moves[remade].at if remade >= 0 else None

    actual: dict[str, dt.date] = {}
    collections = [
        c for c in case.collections if since_collection is None or c.collected_on >= since_collection.date()
    ]
    if collections:
        actual["collection"] = collections[-1].collected_on
    release = case.latest("release")
    if release is not None and (since_manufacture is None or release.at >= since_manufacture):
        actual["release"] = release.at.date()
    for key, step in _STEP_OF.items():
        since = recollected if step is Step.SHIPPED_TO_MANUFACTURING else remade
        times = [t.at for i, t in enumerate(moves) if i > since and t.to_step == step.value]
        if times:
            actual[key] = times[-1].date()
    expected: dict[str, dt.date] = {}
    for record in case.records:
        if record.kind == "expected_date":
            expected[record.payload["milestone"]] = dt.date.fromisoformat(record.payload["date"])
        elif record.kind == "lymphodepletion":
            for key, field in _LD_KEYS:
                expected[key] = dt.date.fromisoformat(record.payload[field])
    ld = case.latest("lymphodepletion")
    started = last_into(Step.LYMPHODEPLETION) > remade
    if ld is not None and (started or "infusion" in actual):
        for key, field in _LD_KEYS:
            day = dt.date.fromisoformat(ld.payload[field])
            if day <= as_of or "infusion" in actual:
                actual[key] = day
    ordered = {key: actual[key] for key in CHAIN if key in actual}
    return ordered, {key: day for key, day in expected.items() if key not in ordered}


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


def record_expected_date(
    engine: Engine,
    case_ref: str,
    milestone: str,
    day: dt.date,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
    today: dt.date | None = None,
) -> CaseView:
    """Record that a milestone still ahead is now expected on another day (a slip).

    Args:
        milestone: a key of :data:`~actnav.logistics.schedule.CHAIN`.
        day: the new expected day.
        today: the caller's today (default: the UTC day of ``recorded_at``).

    Raises:
        InputError: no such case; unknown milestone; the milestone already happened (it is
            ``done`` in the case's schedule: record a step, do not slip it); ``day`` before
            ``today`` (``where="milestone"``); see :func:`actnav.store.logistics.record_expected_date`.
    """
    today = today or recorded_at.astimezone(dt.UTC).date()
    if milestone in CHAIN:
        current = case_schedule(engine, case_ref, as_of=today).milestone(milestone)
        if current.status == "done":
            when = f" on {current.date}" if current.date else ""
            raise InputError(
                f"{current.title} already happened{when}: only a step still ahead can slip",
                where="milestone",
            )
        if day < today:
            raise InputError(
                f"{day} is in the past (today is {today}): a slip is a new expected day; "
                "record a step that happened with its own date",
                where="milestone",
            )
    return _record_expected_date(
        engine, case_ref, milestone, day, at=at, recorded_at=recorded_at, actor=actor, reason=reason
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


# ---------------------------------------------------------------------------------------------
# The case board
# ---------------------------------------------------------------------------------------------


def find_case(engine: Engine, case_ref: str) -> CaseView | None:
    """The case with this reference, or None when there is none.

    Raises:
        InputError: a malformed reference.
    """
    check_case_ref(case_ref)
    try:
        return read_case(engine, case_ref)
    except InputError as exc:
        if exc.where == f"case {case_ref}":  # the store's "no such case"
            return None
        raise


def step_entered_at(case: CaseView) -> dt.datetime:
    """When the case entered its current step: the latest transition into it (else when it was opened)."""
    times = [t.at for t in case.transitions if t.to_step == case.step]
    return times[-1] if times else case.opened_at


def next_milestone(schedule: Schedule) -> Milestone | None:
    """The first dated milestone of the calendar that is not done (overdue, due or planned), or None."""
    for m in schedule.milestones:
        if m.date is not None and m.status in ("overdue", "due", "planned"):
            return m
    return None


class BoardCard(BaseModel):
    """One case on the board: its step and since when, the next milestone, the calendar's conflicts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_ref: str
    product_id: str
    brand: str
    modality: str
    indication_id: str | None
    step: str
    step_title: str
    entered_step_at: dt.datetime
    days_in_step: int
    next_milestone: Milestone | None
    conflicts: tuple[Conflict, ...]


class BoardColumn(BaseModel):
    """The cases at one lifecycle step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str
    title: str
    cards: tuple[BoardCard, ...]


def case_board(engine: Engine, as_of: dt.date, *, active_only: bool = True) -> list[BoardColumn]:
    """The cases grouped by lifecycle step, in lifecycle order (every step, empty ones too).

    With ``active_only`` the ``closed`` and ``withdrawn`` columns are left out, as are their cases.
    Within a column, the cases that have waited longest come first. Days in step count calendar
    days from the day the step was entered to ``as_of`` (0 on the same day).

    Raises:
        DataFileError: a packaged data file is invalid.
    """
    from actnav.toxicity.guidance import resolve_product

    steps = [*ORDER, Step.WITHDRAWN]
    if active_only:
        steps = [s for s in steps if s not in (Step.CLOSED, Step.WITHDRAWN)]
    cards: dict[str, list[BoardCard]] = {s.value: [] for s in steps}
    for case in list_cases(engine, active_only=active_only):
        product = resolve_product(case.product_id, where="product")
        schedule = case_schedule(engine, case.case_ref, as_of=as_of)
        entered = step_entered_at(case)
        cards[case.step].append(
            BoardCard(
                case_ref=case.case_ref,
                product_id=product.id,
                brand=product.brand,
                modality=product.modality,
                indication_id=case.indication_id,
                step=case.step,
                step_title=case.step_title,
                entered_step_at=entered,
                days_in_step=max(0, (as_of - entered.date()).days),
                next_milestone=next_milestone(schedule),
                conflicts=schedule.conflicts,
            )
        )
    return [
        BoardColumn(
            step=s.value,
            title=TITLES[s],
            cards=tuple(sorted(cards[s.value], key=lambda c: (c.entered_step_at, c.case_ref))),
        )
        for s in steps
    ]
