"""A time chart of a course after infusion: temperature, blood pressure support, oxygen, ICE/CAPD,
and the CRS and ICANS grades, over days since infusion.

matplotlib is imported when a chart is drawn (never at import), and only its object-oriented API
with the Agg canvas is used (no pyplot, no global figure state), so drawing is safe in a server.
The file is written atomically: to a temporary file in the same folder, then renamed.
SVG output is reproducible (no date in the metadata, fixed id salt).

Source: the grades are those of :func:`actnav.toxicity.course.grade_course` (ASTCT 2019,
Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from actnav.errors import InputError
from actnav.toxicity.course import AssessmentGrade, CourseGrade, grade_course
from actnav.toxicity.crs import load_crs_table
from actnav.toxicity.models import Assessment, Course

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = {".png": "png", ".svg": "svg"}
SUPPORT_TICKS = {
    "hypotension": ([0, 2, 3, 4], ["none", "no vasopressor", "1 vasopressor", "multiple"]),
    "oxygen": ([0, 2, 3, 4], ["room air", "low flow", "high flow / mask", "positive pressure"]),
}
CRS_COLOUR = "#c0392b"
ICANS_COLOUR = "#2c3e8f"
_NAN = float("nan")


def render_chart(course: Course, path: Path | str, *, graded: CourseGrade | None = None) -> Path:
    """Draw the course as a time chart and write it as PNG or SVG (chosen by the file suffix).

    Panels, sharing the x axis (days since infusion, or since the first assessment when the
    infusion date is not given): temperature in degrees C with the 38.0 C fever line and the drugs
    given; blood pressure support (the ASTCT hypotension level); oxygen support (the ASTCT hypoxia
    level, with the flow in L/min); ICE score 0-10 (and CAPD 0-32 when recorded); CRS and ICANS
    grades 0-4 (gaps where no grade applies).

    Args:
        course: the validated course.
        path: the output file; ``.png`` or ``.svg``.
        graded: the course's grades, if already computed (otherwise they are computed).

    Returns:
        The path written.

    Raises:
        InputError: the suffix is not ``.png`` or ``.svg``, or the file cannot be written
            (``where`` names the path).
        DataFileError: a grading table under ``data/toxicity/`` is invalid.

    Source:
        ASTCT 2019 grades (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638).
    """
    out = Path(path)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(
            f"the chart file must end in .png or .svg, not {out.suffix or 'nothing'!r}", where=str(out)
        )
    graded = graded if graded is not None else grade_course(course)
    by_index = {a_index: a for a_index, a in enumerate(course.assessments)}
    points = [(g, by_index[g.index]) for g in graded.assessments]

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, x_label = _x_axis(graded, [a for _, a in points])
    fig = Figure(figsize=(10, 11), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(5, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 2, 2]})
    title = "CRS and ICANS after infusion (ASTCT 2019)"
    if graded.infusion_date is not None:
        title += f", day 0 = {graded.infusion_date.isoformat()}"
    fig.suptitle(title)

    _temperature(axes[0], x, points)
    _support(
        axes[1], x, [g.crs.hypotension_grade for g, _ in points], "hypotension", "Blood pressure\nsupport"
    )
    _support(axes[2], x, [g.crs.hypoxia_grade for g, _ in points], "oxygen", "Oxygen\nsupport")
    for xi, (_, a) in zip(x, points, strict=True):
        if a.oxygen_flow_l_min is not None and a.oxygen_device != "none":
            axes[2].annotate(
                f"{a.oxygen_flow_l_min:g} L/min",
                (xi, 0),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize=7,
                rotation=90,
                va="bottom",
            )
        if a.vasopressors:
            axes[1].annotate(
                ", ".join(a.vasopressors),
                (xi, 0),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize=7,
                rotation=90,
                va="bottom",
            )
    _encephalopathy(axes[3], x, [a for _, a in points])
    _grades(axes[4], x, [g for g, _ in points])
    axes[4].set_xlabel(x_label)
    known_x = [v for v in x if not math.isnan(v)]
    if graded.infusion_date is not None and known_x:
        axes[4].set_xlim(min(0.0, *known_x) - 0.2, max(known_x) + 0.2)  # show day 0, the infusion
    for ax in axes:
        ax.grid(True, axis="x", alpha=0.3)

    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
    os.close(handle)
    try:
        with matplotlib.rc_context({"svg.hashsalt": "actnav", "svg.fonttype": "none"}):
            metadata: dict[str, str | None] = {"Date": None} if fmt == "svg" else {"Software": None}
            fig.savefig(tmp_name, format=fmt, metadata=metadata)
        os.chmod(tmp_name, out.stat().st_mode & 0o777 if out.exists() else 0o644)  # mkstemp makes 0600
        os.replace(tmp_name, out)
    except OSError as exc:
        raise InputError(f"cannot write the chart: {exc.strerror or exc}", where=str(out)) from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out


def _x_axis(graded: CourseGrade, assessments: Sequence[Assessment]) -> tuple[list[float], str]:
    if graded.infusion_date is not None:
        since = [g.days_since_infusion for g in graded.assessments]
        return [_NAN if v is None else v for v in since], "Days since infusion"
    times = [a.time for a in assessments if a.time is not None]
    xs: list[float] = []
    for a in assessments:
        if a.time is None or not times:
            xs.append(_NAN)
        else:
            xs.append((a.time - min(times)) / dt.timedelta(days=1))
    return xs, "Days since the first assessment (infusion date not given)"


def _temperature(ax: Axes, x: Sequence[float], points: Sequence[tuple[AssessmentGrade, Assessment]]) -> None:
    temps = [_NAN if a.temperature_c is None else a.temperature_c for _, a in points]
    threshold = load_crs_table().fever.threshold.value
    ax.plot(x, temps, marker="o", color="#d35400", label="temperature")
    ax.axhline(threshold, color=CRS_COLOUR, linestyle="--", linewidth=1, label=f"fever {threshold:.1f} C")
    ax.set_ylabel("Temperature (C)")
    known = [t for t in temps if not math.isnan(t)]
    low = min([*known, 36.0]) - 0.5
    high = max([*known, threshold]) + 0.8
    ax.set_ylim(low, high)
    for xi, (_, a) in zip(x, points, strict=True):
        drugs: list[str] = [d.drug for d in a.drugs_given]
        if a.fever_treatment_given and not drugs:
            drugs = ["antipyretic / anti-cytokine"]
        if drugs:
            ax.axvline(xi, color="#7f8c8d", linewidth=0.8, linestyle=":")
            ax.annotate(
                ", ".join(drugs),
                (xi, high),
                xytext=(-2, -2),
                textcoords="offset points",
                fontsize=7,
                rotation=90,
                va="top",
                ha="right",
            )
    ax.legend(loc="upper left", fontsize=8)


def _support(ax: Axes, x: Sequence[float], grades: Sequence[int], kind: str, label: str) -> None:
    ticks, names = SUPPORT_TICKS[kind]
    ax.step(x, grades, where="post", color="#34495e")
    ax.plot(x, grades, linestyle="none", marker="s", color="#34495e")
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_ylim(-0.4, 4.4)
    ax.set_ylabel(label)


def _encephalopathy(ax: Axes, x: Sequence[float], assessments: Sequence[Assessment]) -> None:
    ice = [_NAN if a.ice_total is None else float(a.ice_total) for a in assessments]
    capd = [_NAN if a.capd_score is None else float(a.capd_score) for a in assessments]
    has_ice = any(not math.isnan(v) for v in ice)
    has_capd = any(not math.isnan(v) for v in capd)
    if has_ice or not has_capd:
        ax.plot(x, ice, marker="o", color=ICANS_COLOUR, label="ICE (10 = normal)")
        ax.set_ylim(-0.5, 10.5)
        ax.set_yticks([0, 3, 7, 10])
        ax.set_ylabel("ICE score")
        ax.legend(loc="lower left", fontsize=8)
    if has_capd:
        # Children aged 12 or under are graded with the CAPD (0-32, higher is worse).
        capd_ax = ax.twinx() if has_ice else ax
        capd_ax.plot(x, capd, marker="^", color="#8e44ad", label="CAPD (9+ = grade 3)")
        capd_ax.set_ylim(-1, 33)
        capd_ax.set_yticks([0, 9, 32])
        capd_ax.set_ylabel("CAPD score")
        capd_ax.legend(loc="upper left" if not has_ice else "lower right", fontsize=8)


def _grades(ax: Axes, x: Sequence[float], graded: Sequence[AssessmentGrade]) -> None:
    crs = [_NAN if g.crs.grade is None else float(g.crs.grade) for g in graded]
    icans = [_NAN if g.icans.grade is None else float(g.icans.grade) for g in graded]
    # A small vertical offset keeps equal CRS and ICANS grades both visible.
    ax.plot(
        x, [v + 0.06 for v in crs], marker="o", drawstyle="steps-post", color=CRS_COLOUR, label="CRS grade"
    )
    ax.plot(
        x,
        [v - 0.06 for v in icans],
        marker="D",
        drawstyle="steps-post",
        color=ICANS_COLOUR,
        label="ICANS grade",
    )
    ax.set_ylim(-0.3, 4.3)
    ax.set_yticks([0, 1, 2, 3, 4])
    ax.set_ylabel("Grade (ASTCT)")
    ax.legend(loc="upper left", fontsize=8)
