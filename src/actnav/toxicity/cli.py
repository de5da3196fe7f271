"""The ``actnav toxicity`` commands (a Typer sub-app that the main CLI mounts).

::

    actnav toxicity grade FILE.json [--format json|text] [--as-of DATE]
                                    [--weight-kg W] [--product P]     (single assessment only)
    actnav toxicity chart FILE.json --out chart.png|chart.svg
    actnav toxicity record FILE.json --case CASE-REF [--database-url URL]
    actnav toxicity show --case CASE-REF [--course-id N] [--database-url URL] [--format json|text]
    actnav toxicity risk FILE.json [--format json|text]
    actnav toxicity ctcae TERM [--value X --uln X --baseline X --lln X --unit U ...] [--format ...]
    actnav toxicity ctcae --input FILE.json | --list
    actnav toxicity icaht FILE.json [--format json|text]
    actnav toxicity plan PRODUCT [--as-of DATE] [--format json|text]
    actnav toxicity tocilizumab --weight-kg W [--given TIME:MG ...] --at TIME [--format json|text]

``FILE.json`` of ``grade`` is one assessment or a course ``{"weight_kg": ..., "infusion_date": ...,
"product": ..., "assessments": [...]}`` (``schemas/toxicity-input.schema.json``); ``-`` reads
standard input. The inputs of every command are documented in ``docs/toxicity.md``.

Every bad input raises :class:`~actnav.errors.InputError` (or its subclass ``UnitError``) naming
the field or option (``assessments[3].temp_c``, ``labs.creatinine.unit``, ``--weight-kg``); the
main CLI prints it as one line and exits with 2 (a broken data file: ``DataFileError``, exit 3).
Numbers, dates and times given as options are parsed here (not by Typer) so that their errors are
InputErrors too. Heavy modules (matplotlib, SQLAlchemy, pint) are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from actnav.errors import InputError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from actnav.store.toxicity import StoredCourse
    from actnav.toxicity.ctcae import CtcaeGrade
    from actnav.toxicity.guidance import DoseAdvice
    from actnav.toxicity.risk_input import RiskReport

app = typer.Typer(
    help="CRS and ICANS grades with management (ASTCT 2019), risk scores, CTCAE v5.0, monitoring plans, "
    "tocilizumab dose checks; chart, record and show a course.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

FileArg = Annotated[
    Path,
    typer.Argument(
        metavar="FILE.json",
        help="One assessment, or a course {weight_kg, infusion_date, product, assessments}; '-' reads stdin.",
    ),
]


class OutputFormat(StrEnum):
    """Output formats of the ``actnav toxicity`` commands."""

    JSON = "json"
    TEXT = "text"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="json (default) or text.", case_sensitive=False)
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: ACTNAV_DATABASE_URL).")
]
CaseOption = Annotated[str, typer.Option("--case", help="Pseudonymous case reference (never a name).")]


def _echo_json(model: BaseModel) -> None:
    typer.echo(model.model_dump_json(indent=2))


# ---------------------------------------------------------------------------------------------
# Option parsing: every problem is an InputError naming the option
# ---------------------------------------------------------------------------------------------


def parse_number(text: str | None, option: str, *, positive: bool = False) -> float | None:
    """A finite number given as an option (``None`` stays ``None``).

    Raises:
        InputError: not a number, not finite, negative (or not above 0 with ``positive``); names
            ``option``.
    """
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError as exc:
        raise InputError(f"{text!r} is not a number", where=option) from exc
    if not math.isfinite(value):
        raise InputError(f"{text!r} is not a finite number", where=option)
    if value < 0 or (positive and value == 0):
        raise InputError(f"must be {'above' if positive else 'at least'} 0, got {text}", where=option)
    return value


def parse_date(text: str | None, option: str) -> dt.date | None:
    """A calendar date ``YYYY-MM-DD`` given as an option.

    Raises:
        InputError: not a valid ``YYYY-MM-DD`` date; names ``option``.
    """
    if text is None:
        return None
    try:
        if len(text.strip()) != 10:
            raise ValueError("expected YYYY-MM-DD")
        return dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(f"{text!r} is not a date written YYYY-MM-DD", where=option) from exc


def parse_time(text: str, option: str) -> dt.datetime:
    """An ISO 8601 date-time given as an option (``2025-09-03T20:00``, with or without an offset).

    Raises:
        InputError: not an ISO 8601 date-time; names ``option``.
    """
    try:
        if "T" not in text and " " not in text.strip():
            raise ValueError("no time of day")
        return dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(
            f"{text!r} is not an ISO 8601 date-time (e.g. 2025-09-03T20:00 or 2025-09-03T20:00+02:00)",
            where=option,
        ) from exc


def parse_given(items: list[str], option: str = "--given") -> list[tuple[dt.datetime, float]]:
    """``TIME:MG`` pairs (split at the last colon), e.g. ``2025-09-03T04:45+02:00:656``.

    Raises:
        InputError: no colon, a bad time or a bad amount; names ``--given[i]`` (0-based).
    """
    doses: list[tuple[dt.datetime, float]] = []
    for index, item in enumerate(items):
        where = f"{option}[{index}]"
        time_text, sep, mg_text = item.rpartition(":")
        if not sep or ":" not in time_text or not mg_text:  # a time has hours:minutes, then :MG
            raise InputError(f"{item!r} is not TIME:MG (e.g. 2025-09-03T04:45+02:00:656)", where=where)
        mg = parse_number(mg_text, where, positive=True)
        assert mg is not None
        doses.append((parse_time(time_text, where), mg))
    return doses


# ---------------------------------------------------------------------------------------------
# grade, chart, record, show
# ---------------------------------------------------------------------------------------------


@app.command("grade")
def grade_command(
    file: FileArg,
    output_format: FormatOption = OutputFormat.JSON,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Date of the monitoring plan, YYYY-MM-DD (default: the last assessment's)."
        ),
    ] = None,
    weight_kg: Annotated[
        str | None,
        typer.Option(
            "--weight-kg", metavar="KG", help="Body weight for a single assessment (for the doses)."
        ),
    ] = None,
    product: Annotated[
        str | None, typer.Option("--product", help="Product id or brand, for a single assessment.")
    ] = None,
) -> None:
    """Grade CRS and ICANS, with the management for each grade, for one assessment or a course."""
    from actnav.toxicity.models import parse_input
    from actnav.toxicity.report import grade_report, report_text

    parsed = parse_input(read_json(file))
    report = grade_report(
        parsed,
        weight_kg=parse_number(weight_kg, "--weight-kg", positive=True),
        product=product,
        as_of=parse_date(as_of, "--as-of"),
    )
    if output_format is OutputFormat.JSON:
        _echo_json(report)
    else:
        typer.echo(report_text(report))


@app.command("chart")
def chart_command(
    file: FileArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Chart file: .png or .svg.")],
) -> None:
    """Draw a course as a time chart (temperature, support, ICE, CRS and ICANS grades)."""
    from actnav.toxicity.chart import render_chart
    from actnav.toxicity.models import Course, parse_input

    parsed = parse_input(read_json(file))
    if not isinstance(parsed, Course):
        raise InputError(
            'a chart needs a course: {"weight_kg": ..., "infusion_date": ..., "assessments": [...]}',
            where=str(file),
        )
    written = render_chart(parsed, out)
    typer.echo(f"wrote {written}")


@app.command("record")
def record_command(file: FileArg, case: CaseOption, database_url: DatabaseOption = None) -> None:
    """Grade a course and record it, with its grades, for a case (one transaction)."""
    from actnav.config import get_settings
    from actnav.store.db import get_engine
    from actnav.store.toxicity import record_course
    from actnav.toxicity.course import grade_course
    from actnav.toxicity.models import Course, parse_input

    parsed = parse_input(read_json(file))
    if not isinstance(parsed, Course):
        raise InputError('record needs a course: {"weight_kg": ..., "assessments": [...]}', where=str(file))
    graded = grade_course(parsed)
    engine = get_engine(get_settings(database_url).database_url)
    with _case_option():
        course_id = record_course(engine, case, parsed, recorded_at=dt.datetime.now(dt.UTC), graded=graded)
    typer.echo(json.dumps({"case": case, "course_id": course_id, "max_grades": graded.max_grades}))


@app.command("show")
def show_command(
    case: CaseOption,
    course_id: Annotated[
        str | None, typer.Option("--course-id", metavar="N", help="A course record id (default: the latest).")
    ] = None,
    database_url: DatabaseOption = None,
    output_format: FormatOption = OutputFormat.JSON,
) -> None:
    """Read back the course recorded for a case: its input, grades as stored and maximum grades."""
    from actnav.config import get_settings
    from actnav.store.db import get_engine
    from actnav.store.toxicity import read_course

    number = parse_number(course_id, "--course-id", positive=True)
    if number is not None and not number.is_integer():
        raise InputError(f"must be a whole number, got {course_id}", where="--course-id")
    engine = get_engine(get_settings(database_url).database_url)
    with _case_option():
        stored = read_course(engine, case, course_id=int(number) if number is not None else None)
    document = stored_document(stored)
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        typer.echo(stored_text(stored))


@contextlib.contextmanager
def _case_option() -> Iterator[None]:
    """Errors about the case reference name the ``--case`` option."""
    try:
        yield
    except InputError as exc:
        if exc.where == "case_ref" or (exc.where or "").startswith("case "):
            raise InputError(exc.message, where="--case", hint=exc.hint) from exc
        raise


def stored_document(stored: StoredCourse) -> dict[str, Any]:
    """A recorded course as a JSON-ready document (the output of ``show --format json``)."""
    course = stored.course
    return {
        "case": stored.case_ref,
        "course_id": stored.id,
        "recorded_at": stored.recorded_at.isoformat(),
        "grading_tables": stored.grading_tables,
        "weight_kg": course.weight_kg,
        "infusion_date": course.infusion_date.isoformat() if course.infusion_date else None,
        "product": course.product,
        "age_years": course.age_years,
        "max_grades": stored.max_grades,
        "crs": stored.crs.model_dump(mode="json") if stored.crs else None,
        "icans": stored.icans.model_dump(mode="json") if stored.icans else None,
        "assessments": [g.model_dump(mode="json") for g in stored.grades],
        "input": course.model_dump(mode="json", exclude_none=True),
    }


def stored_text(stored: StoredCourse) -> str:
    """A recorded course as text."""
    course = stored.course
    day0 = f", day 0 = {course.infusion_date.isoformat()}" if course.infusion_date else ""
    product = f", product {course.product}" if course.product else ""
    lines = [
        f"Case {stored.case_ref}: course {stored.id} recorded {stored.recorded_at.isoformat()}",
        f"Weight {course.weight_kg:g} kg{day0}{product}; grading tables: {stored.grading_tables}",
        "",
    ]
    for grade in stored.grades:
        when = grade.time.isoformat() if grade.time is not None else "(no time)"
        day = f"  day {grade.day}" if grade.day is not None else ""
        crs = "-" if grade.crs.grade is None else str(grade.crs.grade)
        icans = "-" if grade.icans.grade is None else str(grade.icans.grade)
        lines += [
            f"{when}{day}  CRS {crs}  ICANS {icans}",
            f"  CRS: {grade.crs.reason}",
            f"  ICANS: {grade.icans.reason}",
        ]
    lines.append("")
    lines.append(f"Maximum grades: CRS {stored.max_grades['crs']}, ICANS {stored.max_grades['icans']}")
    from actnav.toxicity.report import summary_text

    lines += [
        summary_text(name, summary)
        for name, summary in (("CRS", stored.crs), ("ICANS", stored.icans))
        if summary is not None
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# risk, ctcae, plan, tocilizumab
# ---------------------------------------------------------------------------------------------


@app.command("risk")
def risk_command(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE.json", help="{labs: {name: {value, unit, uln?, baseline?}}, clinical}"),
    ],
    output_format: FormatOption = OutputFormat.JSON,
) -> None:
    """Risk scores from labs with units: CAR-HEMATOTOX, EASIX, m-EASIX, HScore, IEC-HS evidence."""
    from actnav.toxicity.risk_input import compute_risk

    report = compute_risk(read_json(file))
    if output_format is OutputFormat.JSON:
        _echo_json(report)
    else:
        typer.echo(risk_text(report))


def _mark(unconfirmed: bool) -> str:
    return "UNCONFIRMED " if unconfirmed else ""


def risk_text(report: RiskReport) -> str:
    """The risk scores as text; results resting on an R or U cut-off are marked UNCONFIRMED."""
    lines = [f"Risk scores{f' ({report.timing})' if report.timing else ''}"]
    for result in (report.easix, report.m_easix):
        if result is not None:
            band = f"; band {result.band}" if result.band else "; no validated cut-off (value only)"
            lines.append(
                f"  {_mark(result.unconfirmed)}{result.score}: {result.value:.3g} "
                f"(log2 {result.log2_value:.3g}){band}"
            )
    if report.car_hematotox is not None:
        h = report.car_hematotox
        items = ", ".join(f"{i.item} {i.points}" for i in h.items)
        lines.append(
            f"  {_mark(h.unconfirmed)}CAR-HEMATOTOX: {h.points}/{h.maximum}, {h.risk_group} risk ({items})"
        )
        lines += [f"    on a cut-off: {b}" for b in h.boundary_values]
    if report.hscore is not None:
        s = report.hscore
        minimum = "" if s.complete else " (a minimum: items not assessed)"
        above = "at or above" if s.at_or_above_cutoff else "below"
        lines.append(
            f"  {_mark(s.unconfirmed)}HScore: {s.points}/{s.maximum}{minimum}, {above} the cut-off {s.cutoff}"
        )
    if report.iec_hs is not None:
        i = report.iec_hs
        flag = {
            True: "features suggestive of IEC-HS: assess",
            False: "flag rule not met",
            None: "cannot tell yet",
        }[i.suggestive]
        grade = f"; grade {i.grade} ({i.grade_text})" if i.grade is not None else ""
        lines.append(f"  UNCONFIRMED IEC-HS: {flag}; {i.manifestations_met} manifestation(s) met{grade}")
        if i.needs:
            lines.append(f"    needs: {'; '.join(i.needs)}")
    for name, why in report.not_computed.items():
        lines.append(f"  {name}: not computed ({why})")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


_CTCAE_OPTIONS = {
    "value": "--value", "unit": "--unit", "uln": "--uln", "lln": "--lln", "baseline": "--baseline",
    "temperature": "--temperature", "temperature_unit": "--temperature-unit",
    "hours_above_40": "--hours-above-40", "anc": "--anc", "anc_unit": "--anc-unit",
    "hours_at_or_above_38": "--hours-at-or-above-38", "stools_above_baseline": "--stools-above-baseline",
    "bsa_percent": "--bsa-percent", "symptoms": "--symptoms", "options": "--option", "term": "TERM",
}  # fmt: skip


@app.command("ctcae")
def ctcae_command(
    term: Annotated[
        str | None, typer.Argument(metavar="TERM", help="Term id or alias (alt, platelets ...).")
    ] = None,
    value: Annotated[str | None, typer.Option("--value", help="Lab value (in --unit).")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit of --value / --lln (counts, Hb).")] = None,
    uln: Annotated[str | None, typer.Option("--uln", help="Upper limit of normal (same unit).")] = None,
    lln: Annotated[str | None, typer.Option("--lln", help="Lower limit of normal (same unit).")] = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Patient's baseline (same unit).")
    ] = None,
    temperature: Annotated[str | None, typer.Option("--temperature", help="Body temperature.")] = None,
    temperature_unit: Annotated[
        str, typer.Option("--temperature-unit", help="Cel (default) or [degF].")
    ] = "Cel",
    hours_above_40: Annotated[
        str | None, typer.Option("--hours-above-40", help="Fever grade 3 vs 4.")
    ] = None,
    anc: Annotated[str | None, typer.Option("--anc", help="ANC (febrile neutropenia).")] = None,
    anc_unit: Annotated[str, typer.Option("--anc-unit", help="Unit of --anc (default 10*9/L).")] = "10*9/L",
    hours_at_or_above_38: Annotated[
        str | None, typer.Option("--hours-at-or-above-38", help="Hours at or above 38.0 C.")
    ] = None,
    stools_above_baseline: Annotated[
        str | None, typer.Option("--stools-above-baseline", help="Stools a day above baseline.")
    ] = None,
    bsa_percent: Annotated[
        str | None, typer.Option("--bsa-percent", help="Rash body-surface area, %.")
    ] = None,
    symptoms: Annotated[
        str | None, typer.Option("--symptoms", help="Rash symptoms: none, mild, moderate, severe.")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="Clinician-selected finding id (repeatable).")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", metavar="FILE.json", help="One object or a list (see docs).")
    ] = None,
    list_terms: Annotated[bool, typer.Option("--list", help="List the terms and their options.")] = False,
    output_format: FormatOption = OutputFormat.JSON,
) -> None:
    """Grade a toxicity with CTCAE v5.0: labs against ULN/LLN/baseline, fever, clinical findings."""
    from actnav.toxicity.ctcae import ctcae_terms

    if list_terms:
        terms = ctcae_terms()
        if output_format is OutputFormat.JSON:
            typer.echo(json.dumps(terms, indent=2))
        else:
            for t in terms:
                found = t["options"]
                options = ", ".join(str(o["id"]) for o in found) if isinstance(found, list) else ""
                typer.echo(
                    f"{t['id']}: {t['name']} ({t['kind']}){f'; options: {options}' if options else ''}"
                )
        return
    numbers = {
        "value": value, "uln": uln, "lln": lln, "baseline": baseline, "temperature": temperature,
        "hours_above_40": hours_above_40, "anc": anc, "hours_at_or_above_38": hours_at_or_above_38,
        "stools_above_baseline": stools_above_baseline, "bsa_percent": bsa_percent,
    }  # fmt: skip
    if input_file is not None:
        given = [
            k
            for k, v in {
                **numbers,
                "unit": unit,
                "symptoms": symptoms,
                "option": option,
                "term": term,
            }.items()
            if v
        ]
        if given:
            raise InputError("give the finding either in --input or as options, not both", where="--input")
        from actnav.toxicity.ctcae import grade_ctcae_inputs

        document = read_json(input_file)
        as_list = isinstance(document, list)
        results = grade_ctcae_inputs(document)
    else:
        if term is None:
            raise InputError(
                "give a term (e.g. alt, platelet_count_decreased), --input FILE.json or --list", where="TERM"
            )
        as_list = False
        arguments: dict[str, Any] = {}
        for name, text in numbers.items():
            # temperatures may be negative in principle: let the grader judge plausibility
            arguments[name] = _float(text, _CTCAE_OPTIONS[name])
        results = [
            _grade_ctcae(
                term, where=_CTCAE_OPTIONS, unit=unit, temperature_unit=temperature_unit, anc_unit=anc_unit,
                symptoms=symptoms, options=tuple(option or ()), **arguments,
            )
        ]  # fmt: skip
    if output_format is OutputFormat.JSON:
        payload: Any = (
            [r.model_dump(mode="json") for r in results] if as_list else results[0].model_dump(mode="json")
        )
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        typer.echo("\n".join(ctcae_text(r) for r in results))


def _float(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        number = float(text.strip())
    except ValueError as exc:
        raise InputError(f"{text!r} is not a number", where=option) from exc
    if not math.isfinite(number):
        raise InputError(f"{text!r} is not a finite number", where=option)
    return number


def _grade_ctcae(term: str, *, where: dict[str, str], **kwargs: Any) -> CtcaeGrade:
    """:func:`~actnav.toxicity.ctcae.grade_ctcae`, with errors naming the option."""
    from actnav.toxicity.ctcae import grade_ctcae

    try:
        return grade_ctcae(term, **kwargs)
    except InputError as exc:
        raise type(exc)(exc.message, where=where.get(exc.where or "", exc.where), hint=exc.hint) from exc


def ctcae_text(grade: CtcaeGrade) -> str:
    """One CTCAE grade as text."""
    at_least = "at least " if grade.at_least else ""
    lines = [
        f"{_mark(grade.unconfirmed)}{grade.name} (CTCAE v{grade.ctcae_version}, MedDRA {grade.meddra}): "
        f"{at_least}grade {grade.grade} - {grade.grade_text}"
    ]
    lines += [f"  {b}" for b in grade.basis]
    lines += [f"  needs: {n}" for n in grade.needs]
    lines += [f"  note: {n}" for n in grade.notes]
    if grade.not_defined_grades:
        lines.append(f"  not defined for this term: grade {', '.join(map(str, grade.not_defined_grades))}")
    return "\n".join(lines)


@app.command("icaht")
def icaht_command(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE.json", help='{"infusion_date", "anc_unit", "anc": [{"day", "value"}]}'),
    ],
    output_format: FormatOption = OutputFormat.JSON,
) -> None:
    """Early and late ICAHT (EHA/EBMT 2023) from an ANC series after infusion."""
    from actnav.toxicity.icaht import grade_icaht_input

    result = grade_icaht_input(read_json(file))
    if output_format is OutputFormat.JSON:
        _echo_json(result)
        return
    for name, part in (("Early ICAHT (day 0-30)", result.early), ("Late ICAHT (after day 30)", result.late)):
        grade = "no ANC in the window" if part.grade is None else f"grade {part.grade}"
        at_least = "at least " if getattr(part, "at_least", False) else ""
        typer.echo(f"{_mark(part.unconfirmed)}{name}: {at_least}{grade}")
        for line in (*part.basis, *(f"note: {n}" for n in part.notes)):
            typer.echo(f"  {line}")


@app.command("plan")
def plan_command(
    product: Annotated[
        str, typer.Argument(metavar="PRODUCT", help="Product id or brand (lifileucel, Amtagvi ...).")
    ],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date, YYYY-MM-DD (default: today).")] = None,
    output_format: FormatOption = OutputFormat.JSON,
) -> None:
    """The product's monitoring plan after infusion, as of a date (labels in force then)."""
    from actnav.toxicity.guidance import monitoring_plan, resolve_product_id
    from actnav.toxicity.report import plan_text

    day = parse_date(as_of, "--as-of") or dt.date.today()
    plan = monitoring_plan(resolve_product_id(product, where="PRODUCT"), day)
    if output_format is OutputFormat.JSON:
        _echo_json(plan)
    else:
        typer.echo("\n".join(plan_text(plan)))


@app.command("tocilizumab")
def tocilizumab_command(
    weight_kg: Annotated[str, typer.Option("--weight-kg", metavar="KG", help="Body weight, kg.")],
    at: Annotated[str, typer.Option("--at", metavar="TIME", help="When the dose would be given (ISO 8601).")],
    given: Annotated[
        list[str] | None,
        typer.Option(
            "--given", metavar="TIME:MG", help="A dose already given (repeatable), e.g. 2025-09-03T04:45:656."
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.JSON,
) -> None:
    """The next tocilizumab dose for CRS (8 mg/kg, max 800 mg), or its refusal with the reason."""
    from actnav.toxicity.guidance import tocilizumab_dose

    weight = parse_number(weight_kg, "--weight-kg", positive=True)
    assert weight is not None
    when = parse_time(at, "--at")
    doses = parse_given(given or [])
    try:
        advice = tocilizumab_dose(weight, doses, at=when)
    except InputError as exc:
        where = exc.where or ""
        if where.startswith("doses_given"):
            where = "--given" + where.removeprefix("doses_given")
        elif where in ("weight_kg", "at"):
            where = {"weight_kg": "--weight-kg", "at": "--at"}[where]
        raise InputError(exc.message, where=where or None, hint=exc.hint) from exc
    if output_format is OutputFormat.JSON:
        _echo_json(advice)
    else:
        typer.echo(dose_advice_text(advice))


def dose_advice_text(advice: DoseAdvice) -> str:
    """A tocilizumab dose decision as text."""
    from actnav.toxicity.report import dose_text, short_source

    lines = [advice.text + "."]
    lines += dose_text(advice, indent="")
    if advice.allowed:
        lines.append(f"Give {advice.dose_mg:g} mg.")
    elif advice.next_allowed_at is not None:
        lines.append(
            f"Next dose possible from {advice.next_allowed_at.isoformat(sep=' ', timespec='minutes')}."
        )
    lines += [f"source: {text}" for text in dict.fromkeys(short_source(s) for s in advice.sources)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# JSON input
# ---------------------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    """Read a JSON document from a file (or standard input for ``-``).

    Args:
        path: the file, or ``-``.

    Returns:
        The parsed document.

    Raises:
        InputError: the file cannot be read, or is not valid JSON (``where`` gives file:line:column);
            ``NaN`` and ``Infinity`` are rejected.
    """
    name = str(path)
    try:
        text = sys.stdin.read() if name == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("no such file", where=name) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file: {exc}", where=name) from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", where=f"{name}:{exc.lineno}:{exc.colno}") from exc
    except ValueError as exc:
        raise InputError(str(exc), where=name) from exc


def _reject_constant(token: str) -> Any:
    raise ValueError(f"not valid JSON: {token} is not a number")
