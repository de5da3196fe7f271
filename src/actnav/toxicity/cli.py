"""The ``actnav toxicity`` commands (a Typer sub-app that the main CLI mounts).

::

    actnav toxicity grade FILE.json [--format json|text]
    actnav toxicity chart FILE.json --out chart.png|chart.svg
    actnav toxicity record FILE.json --case CASE-REF [--database-url URL]

``FILE.json`` is one assessment or a course ``{"weight_kg": ..., "infusion_date": ...,
"assessments": [...]}`` (``schemas/toxicity-input.schema.json``); ``-`` reads standard input.
Errors are raised as :class:`~actnav.errors.ActnavError` subclasses (bad input: ``InputError``,
exit 2; a broken data file: ``DataFileError``, exit 3); the main CLI turns them into one line and
the exit code. Heavy modules (matplotlib, SQLAlchemy, pint) are imported inside the commands.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from actnav.errors import InputError

app = typer.Typer(
    help="Grade CRS and ICANS after infusion (ASTCT 2019), chart a course, record it.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

FileArg = Annotated[
    Path,
    typer.Argument(
        metavar="FILE.json",
        help="One assessment, or a course {weight_kg, infusion_date, assessments}; '-' reads stdin.",
    ),
]


class OutputFormat(StrEnum):
    """Output formats of ``actnav toxicity grade``."""

    JSON = "json"
    TEXT = "text"


@app.command("grade")
def grade_command(
    file: FileArg,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="json (default) or text.", case_sensitive=False)
    ] = OutputFormat.JSON,
) -> None:
    """Grade CRS and ICANS for one assessment or every assessment of a course."""
    from actnav.toxicity.course import grade_assessment, grade_course
    from actnav.toxicity.models import Course, parse_input

    parsed = parse_input(read_json(file))
    if isinstance(parsed, Course):
        graded = grade_course(parsed)
        if output_format is OutputFormat.JSON:
            typer.echo(graded.model_dump_json(indent=2))
        else:
            typer.echo(course_text(graded))
        return
    single = grade_assessment(parsed)
    if output_format is OutputFormat.JSON:
        typer.echo(single.model_dump_json(indent=2))
    else:
        typer.echo(assessment_text(single))


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
def record_command(
    file: FileArg,
    case: Annotated[str, typer.Option("--case", help="Pseudonymous case reference (never a name).")],
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: ACTNAV_DATABASE_URL).")
    ] = None,
) -> None:
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
    course_id = record_course(engine, case, parsed, recorded_at=dt.datetime.now(dt.UTC), graded=graded)
    typer.echo(json.dumps({"case": case, "course_id": course_id, "max_grades": graded.max_grades}))


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


def assessment_text(grade: Any, *, indent: str = "") -> str:
    """One assessment's grades as plain text (time, day, CRS and ICANS grades and reasons)."""
    when = grade.time.isoformat() if grade.time is not None else "(no time)"
    day = f"  day {grade.day}" if grade.day is not None else ""
    crs = "-" if grade.crs.grade is None else str(grade.crs.grade)
    icans = "-" if grade.icans.grade is None else str(grade.icans.grade)
    lines = [
        f"{indent}{when}{day}  CRS {crs}  ICANS {icans}",
        f"{indent}  CRS: {grade.crs.reason}",
        f"{indent}  ICANS: {grade.icans.reason}",
    ]
    lines += [f"{indent}  note: {note}" for note in grade.icans.notes]
    return "\n".join(lines)


def course_text(graded: Any) -> str:
    """A course's grades as plain text: every assessment, then CRS and ICANS over the course."""
    day0 = f" (day 0 = {graded.infusion_date.isoformat()})" if graded.infusion_date else ""
    lines = [f"CRS and ICANS grades, ASTCT 2019{day0}", ""]
    for grade in graded.assessments:
        lines.append(assessment_text(grade))
    lines.append("")
    for name, summary in (("CRS", graded.crs), ("ICANS", graded.icans)):
        lines.append(_summary_text(name, summary))
    return "\n".join(lines)


def _summary_text(name: str, summary: Any) -> str:
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
