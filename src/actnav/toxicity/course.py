"""A patient's course after infusion: the CRS and ICANS grade at every time point, and over time.

For each assessment, in time order, the CRS and ICANS grades are computed with the inputs that set
them. Once antipyretic or anti-cytokine therapy has been recorded (``fever_treatment_given`` or a
tocilizumab, siltuximab, anakinra or corticosteroid dose in ``drugs_given``), fever is no longer
required at the later assessments of the course (ASTCT 2019).

Over the course, for CRS and for ICANS:

* ``max_grade``: the highest grade, with the time, day and inputs of the first assessment that
  reached it;
* ``onset_day``: the day of the first assessment with grade 1 or more (day 0 = the infusion date);
* episodes: from the first assessment with grade 1 or more to the first later assessment with no
  grade or grade 0 (resolution); ``duration_days`` is the time between them, or to the last
  positive assessment when the episode is ongoing. Assessments where the syndrome could not be
  judged (status ``unknown``) neither start nor end an episode.

Source: Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638 (grading after treatment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from actnav.toxicity.crs import CrsGrade, crs_from_assessment, load_crs_table
from actnav.toxicity.icans import IcansGrade, icans_from_assessment
from actnav.toxicity.models import Assessment, Course, InputValue

_DAY = dt.timedelta(days=1)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class AssessmentGrade(_Out):
    """The grades of one assessment.

    Attributes:
        index: position of the assessment in the input (0-based).
        time: when it was made, or ``None`` (a single assessment may have no time).
        day: day since infusion (day 0 = the infusion date), when the infusion date is known.
        days_since_infusion: fractional days since midnight of the infusion date (for charts).
        crs: the CRS grade.
        icans: the ICANS grade.
    """

    index: int
    time: dt.datetime | None
    day: int | None
    days_since_infusion: float | None
    crs: CrsGrade
    icans: IcansGrade


class Episode(_Out):
    """A stretch of assessments with grade 1 or more.

    Attributes:
        onset_time / onset_day: the first assessment with grade 1 or more.
        resolution_time / resolution_day: the first later assessment with no grade or grade 0;
            ``None`` while ongoing.
        duration_days: resolution minus onset (or last positive assessment minus onset while
            ongoing), in days, rounded to 0.01.
        max_grade: the highest grade in the episode.
        ongoing: not resolved by the last assessment.
    """

    onset_time: dt.datetime
    onset_day: int | None
    resolution_time: dt.datetime | None
    resolution_day: int | None
    duration_days: float
    max_grade: int
    ongoing: bool


class SyndromeSummary(_Out):
    """CRS or ICANS over a course.

    Attributes:
        max_grade: the highest grade, or ``None`` when no assessment was graded.
        max_grade_time / max_grade_day: the first assessment that reached it.
        max_grade_reason / max_grade_inputs: why, and the inputs that set it.
        onset_time / onset_day: the first assessment with grade 1 or more.
        duration_days: total duration of the episodes, in days (``None`` if none).
        ongoing: the last episode is not resolved.
        episodes: every episode, in time order.
    """

    max_grade: int | None
    max_grade_time: dt.datetime | None
    max_grade_day: int | None
    max_grade_reason: str | None
    max_grade_inputs: dict[str, InputValue]
    onset_time: dt.datetime | None
    onset_day: int | None
    duration_days: float | None
    ongoing: bool
    episodes: tuple[Episode, ...]


class CourseGrade(_Out):
    """Grades of a whole course: every assessment in time order, and CRS/ICANS over time.

    Attributes:
        weight_kg: body weight, kg.
        infusion_date: day 0, if given.
        assessments: the grades of every assessment, sorted by time.
        crs / icans: the syndromes over time.
        max_grades: ``{"crs": 0-4 or None, "icans": 0-4 or None}``.
    """

    weight_kg: float
    infusion_date: dt.date | None
    assessments: tuple[AssessmentGrade, ...]
    crs: SyndromeSummary
    icans: SyndromeSummary
    max_grades: dict[str, int | None]


def grade_assessment(
    assessment: Assessment,
    *,
    infusion_date: dt.date | None = None,
    fever_treatment_before: bool = False,
    index: int = 0,
) -> AssessmentGrade:
    """Grade CRS and ICANS for one validated assessment.

    Args:
        assessment: the assessment (from :func:`~actnav.toxicity.models.parse_input`).
        infusion_date: day 0, to compute the day since infusion; ``None`` if unknown.
        fever_treatment_before: antipyretic or anti-cytokine therapy was recorded at an earlier
            assessment, so fever is no longer required for CRS.
        index: the assessment's position in its course.

    Returns:
        The :class:`AssessmentGrade`.

    Raises:
        DataFileError: a grading table under ``data/toxicity/`` is invalid.

    Source:
        Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638.
    """
    day, since = _days(assessment.time, infusion_date)
    return AssessmentGrade(
        index=index,
        time=assessment.time,
        day=day,
        days_since_infusion=since,
        crs=crs_from_assessment(assessment, treated_before=fever_treatment_before),
        icans=icans_from_assessment(assessment),
    )


def grade_course(course: Course) -> CourseGrade:
    """Grade every assessment of a course, and CRS and ICANS over time.

    Args:
        course: the validated course (every assessment has a time).

    Returns:
        The :class:`CourseGrade`: per-assessment grades in time order, the maximum grades, onset
        day, episodes and duration.

    Raises:
        DataFileError: a grading table under ``data/toxicity/`` is invalid.

    Source:
        Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638.
    """
    masking = set(load_crs_table().fever_not_required_after.drugs)
    positions = {id(a): i for i, a in enumerate(course.assessments)}
    treated = False
    graded: list[AssessmentGrade] = []
    for assessment in course.ordered():
        graded.append(
            grade_assessment(
                assessment,
                infusion_date=course.infusion_date,
                fever_treatment_before=treated,
                index=positions[id(assessment)],
            )
        )
        treated = (
            treated
            or assessment.fever_treatment_given
            or any(d.drug in masking for d in assessment.drugs_given)
        )
    crs = _summary(
        graded, [(g.crs.grade, g.crs.status != "unknown", g.crs.reason, g.crs.inputs) for g in graded]
    )
    icans = _summary(
        graded, [(g.icans.grade, g.icans.status != "unknown", g.icans.reason, g.icans.inputs) for g in graded]
    )
    return CourseGrade(
        weight_kg=course.weight_kg,
        infusion_date=course.infusion_date,
        assessments=tuple(graded),
        crs=crs,
        icans=icans,
        max_grades={"crs": crs.max_grade, "icans": icans.max_grade},
    )


def _days(time: dt.datetime | None, infusion_date: dt.date | None) -> tuple[int | None, float | None]:
    if time is None or infusion_date is None:
        return None, None
    midnight = dt.datetime.combine(infusion_date, dt.time.min, tzinfo=time.tzinfo)
    return (time.date() - infusion_date).days, round((time - midnight) / _DAY, 4)


_Point = tuple[int | None, bool, str, dict[str, InputValue]]


def _summary(graded: Sequence[AssessmentGrade], points: Sequence[_Point]) -> SyndromeSummary:
    best: int | None = None
    best_at = -1
    for i, (grade, _known, _reason, _inputs) in enumerate(points):
        if grade is not None and (best is None or grade > best):
            best, best_at = grade, i
    episodes: list[Episode] = []
    start: int | None = None
    last_positive = -1
    peak = 0
    for i, (grade, known, _reason, _inputs) in enumerate(points):
        if not known:
            continue
        if grade is not None and grade >= 1:
            if start is None:
                start, peak = i, grade
            peak = max(peak, grade)
            last_positive = i
        elif start is not None:
            episodes.append(_episode(graded[start], graded[i], graded[last_positive], peak))
            start = None
    if start is not None:
        episodes.append(_episode(graded[start], None, graded[last_positive], peak))
    best_grade = graded[best_at] if best_at >= 0 else None
    first = episodes[0] if episodes else None
    return SyndromeSummary(
        max_grade=best,
        max_grade_time=best_grade.time if best_grade else None,
        max_grade_day=best_grade.day if best_grade else None,
        max_grade_reason=points[best_at][2] if best_grade else None,
        max_grade_inputs=dict(points[best_at][3]) if best_grade else {},
        onset_time=first.onset_time if first else None,
        onset_day=first.onset_day if first else None,
        duration_days=round(sum(e.duration_days for e in episodes), 2) if episodes else None,
        ongoing=bool(episodes) and episodes[-1].ongoing,
        episodes=tuple(episodes),
    )


def _episode(
    onset: AssessmentGrade, resolution: AssessmentGrade | None, last: AssessmentGrade, peak: int
) -> Episode:
    assert onset.time is not None and last.time is not None  # a course's assessments all have times
    end = resolution.time if resolution is not None else last.time
    assert end is not None
    return Episode(
        onset_time=onset.time,
        onset_day=onset.day,
        resolution_time=resolution.time if resolution is not None else None,
        resolution_day=resolution.day if resolution is not None else None,
        duration_days=round((end - onset.time) / _DAY, 2),
        max_grade=peak,
        ongoing=resolution is None,
    )
