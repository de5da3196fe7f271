"""The grade report: CRS and ICANS grades with the management that goes with each grade.

:func:`grade_report` grades a course (or one assessment) and adds, for every assessment and for
the course maximum:

* the CRS management (:func:`~actnav.toxicity.guidance.crs_management`) and the ICANS management
  (:func:`~actnav.toxicity.guidance.icans_management`, with or without concurrent CRS), doses
  computed for the course's ``weight_kg``, each line sourced and marked when unconfirmed;
* when tocilizumab doses are recorded (``drugs_given`` entries with ``"drug": "tocilizumab"``,
  timed by their own ``time`` or else the assessment's), the tocilizumab dose check at the
  assessment's time (:func:`~actnav.toxicity.guidance.tocilizumab_dose`): a 4th dose in 24 hours,
  a 5th in total or a repeat sooner than 8 hours is refused with the reason, and the tocilizumab
  lines of the management say so;
* with a ``product``, the product's monitoring plan (:func:`~actnav.toxicity.guidance.monitoring_plan`)
  as of the last assessment's date (or a given date).

:func:`report_text` renders the report as plain text. This is decision support for clinicians; it
does not replace the product label or local protocols.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actnav.eligibility.engine import SourceInfo
from actnav.errors import InputError
from actnav.toxicity.course import AssessmentGrade, SyndromeSummary, grade_assessment, grade_course
from actnav.toxicity.guidance import (
    DoseAdvice,
    Management,
    MonitoringPlan,
    check_weight,
    crs_management,
    icans_management,
    monitoring_plan,
    resolve_product_id,
    tocilizumab_dose,
)
from actnav.toxicity.models import Assessment, Course

DISCLAIMER = (
    "Decision support for clinicians: grades and management lines from the ASTCT 2019 consensus, product "
    "labels and guidelines as cited; it does not replace the product label or local protocols."
)
ADULT_DOSES_NOTE = (
    "The corticosteroid doses come from adult label and guideline tables; check paediatric dosing "
    "(tocilizumab below 30 kg is 12 mg/kg)."
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TocilizumabGiven(_Out):
    """A tocilizumab dose recorded in the course."""

    time: dt.datetime = Field(description="When it was given (the drug's time, else the assessment's).")
    dose_mg: float | None = Field(description="Amount, mg; null when not recorded.")
    assessment_index: int = Field(description="Input position of the assessment that records it.")


class AssessmentGuidance(_Out):
    """The management for one assessment's CRS and ICANS grades."""

    crs: Management | None = Field(description="CRS management for the CRS grade; null when not graded.")
    icans: Management | None = Field(
        description="ICANS management for the ICANS grade; null when not graded."
    )
    tocilizumab: DoseAdvice | None = Field(
        description="The tocilizumab dose check at this time against the doses given up to it; null when "
        "no dose had been given."
    )
    notes: list[str]


class AssessmentReport(AssessmentGrade):
    """One assessment's grades (see :class:`~actnav.toxicity.course.AssessmentGrade`) and guidance."""

    guidance: AssessmentGuidance | None = Field(
        description="Null when no body weight is known (doses cannot be computed)."
    )


class MaxGuidance(_Out):
    """The management for the course's maximum CRS and ICANS grades, at the time each was reached."""

    crs_grade: int | None
    crs_time: dt.datetime | None
    crs: Management | None
    icans_grade: int | None
    icans_time: dt.datetime | None
    icans: Management | None


class CourseReport(_Out):
    """A graded course with guidance (the JSON output of ``actnav toxicity grade`` for a course)."""

    kind: Literal["course"] = "course"
    weight_kg: float
    infusion_date: dt.date | None
    product: str | None
    as_of: dt.date | None = Field(
        description="Date of the monitoring plan (the last assessment's, or given)."
    )
    assessments: tuple[AssessmentReport, ...]
    crs: SyndromeSummary
    icans: SyndromeSummary
    max_grades: dict[str, int | None]
    max_guidance: MaxGuidance
    tocilizumab_given: tuple[TocilizumabGiven, ...]
    tocilizumab: DoseAdvice | None = Field(
        description="The tocilizumab dose check at the last assessment (null when no dose was given)."
    )
    monitoring_plan: MonitoringPlan | None
    notes: list[str]


class AssessmentOnlyReport(AssessmentReport):
    """One graded assessment with guidance (the JSON output of ``actnav toxicity grade`` for one)."""

    kind: Literal["assessment"] = "assessment"
    weight_kg: float | None
    product: str | None
    as_of: dt.date | None
    tocilizumab_given: tuple[TocilizumabGiven, ...]
    monitoring_plan: MonitoringPlan | None
    notes: list[str]


# ---------------------------------------------------------------------------------------------


def tocilizumab_given(assessments: Sequence[Assessment]) -> tuple[tuple[TocilizumabGiven, ...], list[str]]:
    """Every tocilizumab dose recorded in the assessments, in time order, and notes.

    A dose without its own ``time`` was given at its assessment's time. The same dose recorded in
    two assessments (same explicit time and amount) counts once.
    """
    doses: list[TocilizumabGiven] = []
    seen: set[tuple[dt.datetime, float | None]] = set()
    notes: list[str] = []
    for index, assessment in enumerate(assessments):
        for drug in assessment.drugs_given:
            if drug.drug != "tocilizumab":
                continue
            when = drug.time if drug.time is not None else assessment.time
            if when is None:
                notes.append(
                    f"assessments[{index}]: a tocilizumab dose without a time is not counted in the "
                    "dose check."
                )
                continue
            if drug.time is not None:
                key = (drug.time, drug.dose_mg)
                if key in seen:
                    notes.append(
                        f"assessments[{index}]: the tocilizumab dose at {drug.time.isoformat()} is "
                        "recorded twice; counted once."
                    )
                    continue
                seen.add(key)
            doses.append(TocilizumabGiven(time=when, dose_mg=drug.dose_mg, assessment_index=index))
    doses.sort(key=lambda d: _utc(d.time))
    return tuple(doses), notes


def _utc(time: dt.datetime) -> dt.datetime:
    offset = time.utcoffset()
    return time.replace(tzinfo=None) - (offset or dt.timedelta(0))


def _given_by(
    doses: Sequence[TocilizumabGiven], at: dt.datetime | None
) -> list[tuple[dt.datetime, float | None]]:
    if at is None:
        return []
    return [(d.time, d.dose_mg) for d in doses if _utc(d.time) <= _utc(at)]


def _concurrent_crs(grade: AssessmentGrade) -> bool | None:
    if grade.crs.grade is not None:
        return grade.crs.grade >= 1
    return False if grade.crs.status == "not_met" else None


def assessment_guidance(
    grade: AssessmentGrade,
    weight_kg: float,
    *,
    product: str | None = None,
    doses: Sequence[TocilizumabGiven] = (),
) -> AssessmentGuidance:
    """The CRS and ICANS management for one graded assessment.

    Args:
        grade: the assessment's grades.
        weight_kg: body weight, kg.
        product: the product id, or ``None``.
        doses: every tocilizumab dose of the course; those given up to the assessment's time are
            checked.

    Returns:
        :class:`AssessmentGuidance`.

    Raises:
        InputError: an implausible weight, unknown product or bad recorded dose.
    """
    given = _given_by(doses, grade.time)
    at = grade.time if given else None
    notes: list[str] = []
    crs: Management | None = None
    icans: Management | None = None
    if grade.crs.grade is not None:
        crs = crs_management(grade.crs.grade, weight_kg, product_id=product, tocilizumab_given=given, at=at)
    elif grade.crs.status == "not_met":
        notes.append("CRS criteria not met: no CRS management (consider other causes).")
    else:
        notes.append("CRS not judged (temperature not recorded): no CRS management.")
    if grade.icans.grade is not None:
        icans = icans_management(
            grade.icans.grade,
            weight_kg,
            concurrent_crs=_concurrent_crs(grade),
            product_id=product,
            tocilizumab_given=given,
            at=at,
        )
    else:
        notes.append("ICANS not assessed: no ICANS management.")
    advice = crs.tocilizumab if crs is not None and crs.tocilizumab is not None else None
    if advice is None and icans is not None:
        advice = icans.tocilizumab
    if advice is None and given and at is not None:
        advice = tocilizumab_dose(weight_kg, given, at=at)
    return AssessmentGuidance(crs=crs, icans=icans, tocilizumab=advice, notes=notes)


def grade_report(
    parsed: Course | Assessment,
    *,
    weight_kg: float | None = None,
    product: str | None = None,
    as_of: dt.date | None = None,
) -> CourseReport | AssessmentOnlyReport:
    """Grade a course (or one assessment) and add the guidance for each grade.

    Args:
        parsed: the validated input (:func:`~actnav.toxicity.models.parse_input`).
        weight_kg: body weight for a single assessment (a course carries its own ``weight_kg``).
        product: product id or brand for a single assessment (a course carries its own ``product``).
        as_of: the date of the monitoring plan; default the last assessment's date.

    Returns:
        :class:`CourseReport` or :class:`AssessmentOnlyReport`.

    Raises:
        InputError: ``weight_kg`` or ``product`` given with a course (``--weight-kg`` /
            ``--product``), an implausible weight, an unknown product, or a bad recorded dose.
        DataFileError: a packaged data file is invalid.
    """
    if isinstance(parsed, Course):
        if weight_kg is not None:
            raise InputError("a course carries its own weight_kg; give it in the file", where="--weight-kg")
        if product is not None:
            raise InputError("a course carries its own product; give it in the file", where="--product")
        return _course_report(parsed, as_of)
    product_id = resolve_product_id(product, where="--product") if product is not None else None
    if weight_kg is not None:
        weight_kg = check_weight(weight_kg, where="--weight-kg")
    graded = grade_assessment(parsed)
    doses, notes = tocilizumab_given([parsed])
    guidance = None
    if weight_kg is None:
        notes.append(
            "No body weight: give --weight-kg (or a course with weight_kg) for the management and its doses."
        )
    else:
        guidance = assessment_guidance(graded, weight_kg, product=product_id, doses=doses)
    day = as_of or (parsed.time.date() if parsed.time is not None else None)
    plan = None
    if product_id is not None:
        if day is None:
            notes.append("The monitoring plan needs a date: give --as-of (the assessment has no time).")
        else:
            plan = monitoring_plan(product_id, day)
    if _child(parsed.age_years) and guidance is not None:
        notes.append(ADULT_DOSES_NOTE)
    notes.append(DISCLAIMER)
    return AssessmentOnlyReport(
        **dict(graded),
        guidance=guidance,
        weight_kg=weight_kg,
        product=product_id,
        as_of=day,
        tocilizumab_given=doses,
        monitoring_plan=plan,
        notes=notes,
    )


def _child(age: float | None) -> bool:
    return age is not None and age < 18


def _course_report(course: Course, as_of: dt.date | None) -> CourseReport:
    graded = grade_course(course)
    doses, notes = tocilizumab_given(course.assessments)
    reports = tuple(
        AssessmentReport(
            **dict(g),
            guidance=assessment_guidance(g, course.weight_kg, product=course.product, doses=doses),
        )
        for g in graded.assessments
    )
    max_guidance = _max_guidance(reports, course, doses)
    last = reports[-1]
    day = as_of or (last.time.date() if last.time is not None else None)
    plan = monitoring_plan(course.product, day) if course.product is not None and day is not None else None
    if plan is not None and course.infusion_date is not None:
        for weeks, what in (
            (plan.proximity_weeks, "Stay near the treatment centre"),
            (plan.no_driving_weeks, "No driving or hazardous activities"),
        ):
            if weeks is not None:
                until = course.infusion_date + dt.timedelta(weeks=weeks)
                notes.append(
                    f"{what} until at least {until.isoformat()} ({weeks} weeks after the infusion, "
                    f"label in force on {day.isoformat() if day else '-'})."
                )
    ages = [a.age_years for a in course.assessments if a.age_years is not None]
    if _child(course.age_years if course.age_years is not None else (ages[0] if ages else None)):
        notes.append(ADULT_DOSES_NOTE)
    if course.product is None:
        notes.append("No product given: label lines of every product are shown, and no monitoring plan.")
    notes.append(DISCLAIMER)
    return CourseReport(
        weight_kg=course.weight_kg,
        infusion_date=course.infusion_date,
        product=course.product,
        as_of=day,
        assessments=reports,
        crs=graded.crs,
        icans=graded.icans,
        max_grades=graded.max_grades,
        max_guidance=max_guidance,
        tocilizumab_given=doses,
        tocilizumab=last.guidance.tocilizumab if last.guidance is not None else None,
        monitoring_plan=plan,
        notes=notes,
    )


def _max_guidance(
    reports: Sequence[AssessmentReport], course: Course, doses: Sequence[TocilizumabGiven]
) -> MaxGuidance:
    def first(grade: int | None, which: Literal["crs", "icans"]) -> AssessmentReport | None:
        if grade is None:
            return None
        return next((r for r in reports if getattr(r, which).grade == grade), None)

    crs_max = max((r.crs.grade for r in reports if r.crs.grade is not None), default=None)
    icans_max = max((r.icans.grade for r in reports if r.icans.grade is not None), default=None)
    crs_at, icans_at = first(crs_max, "crs"), first(icans_max, "icans")
    crs = icans = None
    if crs_at is not None and crs_max is not None:
        given = _given_by(doses, crs_at.time)
        crs = crs_management(
            crs_max,
            course.weight_kg,
            product_id=course.product,
            tocilizumab_given=given,
            at=crs_at.time if given else None,
        )
    if icans_at is not None and icans_max is not None:
        given = _given_by(doses, icans_at.time)
        icans = icans_management(
            icans_max,
            course.weight_kg,
            concurrent_crs=_concurrent_crs(icans_at),
            product_id=course.product,
            tocilizumab_given=given,
            at=icans_at.time if given else None,
        )
    return MaxGuidance(
        crs_grade=crs_max,
        crs_time=crs_at.time if crs_at else None,
        crs=crs,
        icans_grade=icans_max,
        icans_time=icans_at.time if icans_at else None,
        icans=icans,
    )


# --------------------------------------------------------------------------------------- text


def short_source(source: SourceInfo) -> str:
    """A source in a few words: the first clause of the citation, the section and the tag."""
    head = source.citation.split(", ")[0].split(". ")[0].strip()
    if len(head) > 60:
        head = head[:57].rstrip() + "..."
    section = f" {source.section}" if source.section else ""
    return f"[{head}{section}; {source.verification}]"


REFUSED_MARK = " Not allowed now: "


def management_text(management: Management, *, indent: str = "    ") -> list[str]:
    """The lines of one management block (each sourced; unconfirmed ones marked)."""
    lines: list[str] = []
    for line in management.lines:
        mark = "UNCONFIRMED " if line.unconfirmed else ""
        text = line.text
        if line.allowed is False:
            text = text.split(REFUSED_MARK)[0] + " NOT ALLOWED NOW (see the tocilizumab check)."
        alternative = f" (alternative to {line.alternative_to})" if line.alternative_to else ""
        products = f" (label: {', '.join(line.products)})" if line.products else ""
        lines.append(f"{indent}- {mark}{text}{alternative}{products} {short_source(line.source)}")
    for note in management.notes:
        lines.append(f"{indent}  note: {note}")
    return lines


def dose_text(advice: DoseAdvice, *, indent: str = "  ") -> list[str]:
    """A tocilizumab dose check as text (the limits only: whether a dose is indicated is the grade's)."""
    head = (
        f"{indent}Tocilizumab check at {advice.at.isoformat(sep=' ', timespec='minutes')}: "
        f"{advice.doses_total} dose(s) given, {advice.doses_in_last_24h} in the last 24 h: "
    )
    if advice.allowed:
        lines = [head + f"a further dose ({advice.dose_mg:g} mg) is within the limits now."]
    else:
        lines = [head + "a further dose is NOT ALLOWED now."]
        lines += [f"{indent}  reason: {reason}" for reason in advice.refusal_reasons]
        if advice.next_allowed_at is None:
            lines.append(f"{indent}  no further dose is possible.")
    lines += [f"{indent}  note: {note}" for note in advice.notes]
    return lines


def _grade_line(report: AssessmentReport) -> list[str]:
    when = report.time.isoformat() if report.time is not None else "(no time)"
    day = f"  day {report.day}" if report.day is not None else ""
    crs = "-" if report.crs.grade is None else str(report.crs.grade)
    icans = "-" if report.icans.grade is None else str(report.icans.grade)
    lines = [
        f"{when}{day}  CRS {crs}  ICANS {icans}",
        f"  CRS: {report.crs.reason}",
        f"  ICANS: {report.icans.reason}",
    ]
    lines += [f"  note: {note}" for note in report.icans.notes]
    return lines


def _has_tocilizumab(guidance: AssessmentGuidance) -> bool:
    return any(
        line.drug == "tocilizumab"
        for management in (guidance.crs, guidance.icans)
        if management is not None
        for line in management.lines
    )


def _guidance_lines(guidance: AssessmentGuidance | None, previous: AssessmentGuidance | None) -> list[str]:
    if guidance is None:
        return []
    lines: list[str] = []
    blocks = [
        (n, m) for n, m in (("CRS", guidance.crs), ("ICANS", guidance.icans)) if m is not None and m.lines
    ]
    if blocks and previous is not None and _signature(previous) == _signature(guidance):
        lines.append("  Management: as at the previous assessment.")
    else:
        for name, management in blocks:
            crs_text = ""
            if name == "ICANS" and management.concurrent_crs is not None:
                crs_text = ", with concurrent CRS" if management.concurrent_crs else ", without CRS"
            lines.append(
                f"  {name} grade {management.grade} management ({management.weight_kg:g} kg{crs_text}):"
            )
            lines += management_text(management)
    if guidance.tocilizumab is not None and _has_tocilizumab(guidance):
        lines += dose_text(guidance.tocilizumab)
    return lines


def _signature(guidance: AssessmentGuidance) -> str:
    parts = []
    for management in (guidance.crs, guidance.icans):
        if management is None:
            parts.append("-")
        else:
            texts = [line.text for line in management.lines if line.drug != "tocilizumab"]
            toci = [line.dose_mg for line in management.lines if line.drug == "tocilizumab"]
            parts.append(f"{management.grade}|{management.concurrent_crs}|{texts}|{toci}")
    return "#".join(parts)


def plan_text(plan: MonitoringPlan) -> list[str]:
    """A monitoring plan as text."""
    revision = f", label revision {plan.label_revision}" if plan.label_revision else ""
    lines = [
        f"Monitoring plan: {plan.brand} ({plan.product_id}, {plan.modality}) as of "
        f"{plan.as_of.isoformat()}{revision}"
    ]
    proximity = (
        f"{plan.proximity_weeks} weeks" if plan.proximity_weeks is not None else "not in the product file"
    )
    driving = (
        f"{plan.no_driving_weeks} weeks" if plan.no_driving_weeks is not None else "not in the product file"
    )
    lines.append(
        f"  Stay near the treatment centre: {proximity}; no driving or hazardous activities: {driving}"
    )
    for title, items in (
        ("Label statements", plan.monitoring),
        ("Boxed warnings", plan.boxed_warnings),
        ("Watch for", plan.watch_for),
        ("When to call", plan.when_to_call),
    ):
        if not items:
            continue
        lines.append(f"  {title}:")
        for item in items:
            mark = "" if item.source.confirmed else "UNCONFIRMED "
            lines.append(f"    - {mark}{item.text} {short_source(item.source)}")
    if plan.missing:
        lines.append(f"  Not in the product file: {'; '.join(plan.missing)}")
    lines += [f"  note: {note}" for note in plan.notes]
    return lines


def summary_text(name: str, summary: SyndromeSummary) -> str:
    """CRS or ICANS over a course in one line (maximum, onset, episodes, duration)."""
    if summary.max_grade is None:
        return f"{name}: no grade over the course"
    when = f" on day {summary.max_grade_day}" if summary.max_grade_day is not None else ""
    text = f"{name}: maximum grade {summary.max_grade}{when}"
    if summary.onset_time is not None:
        onset = (
            f"day {summary.onset_day}" if summary.onset_day is not None else summary.onset_time.isoformat()
        )
        state = "ongoing" if summary.ongoing else "resolved"
        count = len(summary.episodes)
        text += (
            f"; onset {onset}; {count} episode{'s' if count != 1 else ''}, "
            f"{summary.duration_days:g} days in all ({state})"
        )
    return text


def report_text(report: CourseReport | AssessmentOnlyReport) -> str:
    """The grade report as plain text: grades, management per assessment, the maximum, the plan."""
    lines: list[str] = []
    if isinstance(report, CourseReport):
        day0 = f" (day 0 = {report.infusion_date.isoformat()})" if report.infusion_date else ""
        product = f"; product {report.product}" if report.product else ""
        lines += [f"CRS and ICANS grades, ASTCT 2019{day0}; weight {report.weight_kg:g} kg{product}", ""]
        previous: AssessmentGuidance | None = None
        for item in report.assessments:
            lines += _grade_line(item)
            lines += _guidance_lines(item.guidance, previous)
            previous = item.guidance
            lines.append("")
        lines.append(summary_text("CRS", report.crs))
        lines.append(summary_text("ICANS", report.icans))
        maximum = report.max_guidance
        for name, grade, time, management in (
            ("CRS", maximum.crs_grade, maximum.crs_time, maximum.crs),
            ("ICANS", maximum.icans_grade, maximum.icans_time, maximum.icans),
        ):
            if management is None or not management.lines:
                continue
            when = f" (first reached {time.isoformat()})" if time is not None else ""
            lines.append(f"Management for the maximum {name} grade {grade}{when}:")
            lines += management_text(management, indent="  ")
            if management.tocilizumab is not None and any(x.drug == "tocilizumab" for x in management.lines):
                lines += dose_text(management.tocilizumab)
        if report.tocilizumab is not None:
            lines.append("At the last assessment:")
            lines += dose_text(report.tocilizumab)
    else:
        lines += _grade_line(report)
        lines += _guidance_lines(report.guidance, None)
    if report.monitoring_plan is not None:
        lines.append("")
        lines += plan_text(report.monitoring_plan)
    lines.append("")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
