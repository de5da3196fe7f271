"""A course after infusion: grades at every time point, maximum grades, onset day, duration.

Grades follow Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638 (Tables 6 and 8); the
fever rule after tocilizumab or steroids is the Table 6 footnote (clinical reference 2.1 rule 1).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from actnav.toxicity import Course, grade_assessment, grade_course, parse_input

UTC2 = dt.timezone(dt.timedelta(hours=2))


def _course(assessments: list[dict[str, Any]], **extra: Any) -> Course:
    parsed = parse_input(
        {"weight_kg": 82, "infusion_date": "2025-06-01", "age_years": 54, "assessments": assessments, **extra}
    )
    assert isinstance(parsed, Course)
    return parsed


STORY = [
    # Listed out of order on purpose: the course is graded in time order.
    {
        "time": "2025-06-03T08:00:00+02:00",
        "temp_f": 102.2,
        "hypotension": True,
        "ice_score": 8,
        "drugs_given": [{"drug": "tocilizumab", "dose_mg": 656, "route": "iv"}],
    },
    {"time": "2025-06-02T08:00:00+02:00", "temp_c": 37.2, "ice_score": 10},
    {"time": "2025-06-02T20:00:00+02:00", "temp_c": 38.6, "ice_score": 10},
    {
        "time": "2025-06-03T20:00:00+02:00",
        "temp_c": 37.4,
        "vasopressors": ["norepinephrine", "vasopressin"],
        "oxygen_device": "facemask",
        "ice_score": 5,
        "consciousness": "awakens_to_voice",
    },
    {
        "time": "2025-06-04T08:00:00+02:00",
        "temp_c": 36.9,
        "oxygen_device": "low_flow_nasal_cannula",
        "oxygen_flow_l_min": 2,
        "ice_score": 8,
    },
    {"time": "2025-06-05T08:00:00+02:00", "temp_c": 36.8, "ice_score": 10},
]


def test_every_assessment_is_graded_in_time_order_keeping_its_input_position() -> None:
    graded = grade_course(_course(STORY))
    assert [g.index for g in graded.assessments] == [1, 2, 0, 3, 4, 5]
    assert [g.crs.grade for g in graded.assessments] == [None, 1, 2, 3, 2, 0]
    assert [g.icans.grade for g in graded.assessments] == [0, 0, 1, 2, 1, 0]
    assert [g.day for g in graded.assessments] == [1, 1, 2, 2, 3, 4]


def test_fever_is_not_required_after_tocilizumab_at_later_assessments() -> None:
    graded = grade_course(_course(STORY))
    later = graded.assessments[3]
    assert later.crs.fever is False and later.crs.fever_required is False
    assert later.crs.grade == 3
    assert later.crs.inputs["fever_treatment_before"] is True
    # Without the earlier tocilizumab, the same afebrile assessment would not be CRS.
    alone = grade_assessment(_course(STORY).assessments[3])
    assert alone.crs.grade is None


def test_the_maximum_grades_keep_the_inputs_that_set_them() -> None:
    graded = grade_course(_course(STORY))
    assert graded.max_grades == {"crs": 3, "icans": 2}
    assert graded.crs.max_grade_day == 2
    assert graded.crs.max_grade_time == dt.datetime(2025, 6, 3, 20, 0, tzinfo=UTC2)
    assert graded.crs.max_grade_inputs["vasopressors"] == ("norepinephrine", "vasopressin")
    assert graded.crs.max_grade_inputs["oxygen_device"] == "facemask"
    assert graded.icans.max_grade_inputs == {"ice_score": 5, "consciousness": "awakens_to_voice"}


def test_onset_day_and_duration() -> None:
    graded = grade_course(_course(STORY))
    # CRS: first grade >= 1 on 2 June 20:00 (day 1); resolved at the grade-0 assessment on 5 June 08:00.
    assert graded.crs.onset_day == 1
    assert graded.crs.duration_days == 2.5
    assert graded.crs.ongoing is False
    (episode,) = graded.crs.episodes
    assert episode.resolution_day == 4 and episode.max_grade == 3
    # ICANS: ICE 8 on 3 June 08:00 (day 2) until ICE 10 on 5 June 08:00.
    assert graded.icans.onset_day == 2
    assert graded.icans.duration_days == 2.0


def test_an_unresolved_episode_is_ongoing() -> None:
    graded = grade_course(_course(STORY[:4]))
    assert graded.crs.ongoing is True
    assert graded.crs.episodes[-1].resolution_time is None
    assert graded.crs.duration_days == 1.0  # 2 June 20:00 to the last positive assessment, 3 June 20:00


def test_two_episodes_add_up() -> None:
    times = [f"2025-06-0{d}T08:00:00+00:00" for d in range(2, 8)]
    temps = [38.5, 37.0, 37.0, 38.4, 38.2, 37.1]
    graded = grade_course(_course([{"time": t, "temp_c": c} for t, c in zip(times, temps, strict=True)]))
    assert [e.onset_day for e in graded.crs.episodes] == [1, 4]
    assert graded.crs.duration_days == 3.0  # 1 day + 2 days


def test_an_assessment_that_cannot_judge_crs_neither_starts_nor_ends_an_episode() -> None:
    graded = grade_course(
        _course(
            [
                {"time": "2025-06-02T08:00:00+00:00", "temp_c": 38.5},
                {"time": "2025-06-02T12:00:00+00:00", "ice_score": 10},  # neuro check only
                {"time": "2025-06-02T20:00:00+00:00", "temp_c": 37.0},
            ]
        )
    )
    assert graded.assessments[1].crs.status == "unknown"
    assert graded.crs.duration_days == 0.5


def test_without_an_infusion_date_there_is_no_day() -> None:
    parsed = parse_input({"weight_kg": 60, "assessments": [{"time": "2025-06-02T08:00:00", "temp_c": 38.2}]})
    assert isinstance(parsed, Course)
    graded = grade_course(parsed)
    assert graded.assessments[0].day is None
    assert graded.crs.onset_day is None
    assert graded.max_grades == {"crs": 1, "icans": None}


def test_a_course_with_no_grade_has_no_maximum() -> None:
    graded = grade_course(_course([{"time": "2025-06-02T08:00:00+00:00", "temp_c": 37.0}]))
    assert graded.max_grades == {"crs": None, "icans": None}
    assert graded.crs.duration_days is None and graded.crs.episodes == ()
