"""Issue 4 acceptance: every CRS and ICANS grade boundary, just below, at and just above, in one table.

Expected grades are read from the ASTCT consensus (Lee DW et al., Biol Blood Marrow Transplant
2019;25:625-638), as given in clinical-reference.md 2.1 (CRS: fever >= 38.0 C; low flow <= 6 L/min,
high flow > 6 L/min; vasopressin does not count towards "multiple"; fever not required after
tocilizumab or steroids), 2.3 (ICANS: ICE 7-9 grade 1, 3-6 grade 2, 0-2 grade 3, 0 unarousable
grade 4) and 2.4 (CAPD for children aged 12 or under: 1-8 grade 1, >= 9 grade 3; a 13-year-old
uses the ICE). The tables of test_astct_crs_grading.py and test_astct_icans_grading.py cover
each row in more detail; this file is the boundary checklist of the issue.
"""

from __future__ import annotations

from typing import Any

import pytest

from actnav.errors import InputError
from actnav.toxicity import Course, grade_course, grade_crs, grade_icans, parse_input

F = {"temp_c": 38.5}
NC = "low_flow_nasal_cannula"
HFNC = "high_flow_nasal_cannula"

# (boundary, position, kwargs, expected CRS grade)
CRS_BOUNDARIES: list[tuple[str, str, dict[str, Any], int | None]] = [
    # no CRS | grade 1: fever 38.0 C (100.4 F)
    ("fever 38.0 C", "below", {"temp_c": 37.9}, None),
    ("fever 38.0 C", "at", {"temp_c": 38.0}, 1),
    ("fever 38.0 C", "above", {"temp_c": 38.1}, 1),
    ("fever 100.4 F", "below", {"temp_f": 100.3}, None),
    ("fever 100.4 F", "at", {"temp_f": 100.4}, 1),
    ("fever 100.4 F", "above", {"temp_f": 100.5}, 1),
    # grade 1 | grade 2: hypotension without vasopressor, or low-flow oxygen
    ("grade 2 hypotension", "below", {**F, "hypotension": False}, 1),
    ("grade 2 hypotension", "at", {**F, "hypotension": True}, 2),
    ("grade 2 oxygen", "below", {**F, "oxygen_device": "none"}, 1),
    ("grade 2 oxygen", "at", {**F, "oxygen_device": NC, "oxygen_flow_l_min": 1}, 2),
    ("grade 2 oxygen", "at", {**F, "oxygen_device": "blow_by"}, 2),
    # grade 2 | grade 3: 6 vs 7 L/min (<= 6 low flow, > 6 high flow), whatever the cannula is called
    ("6 vs 7 L/min", "below", {**F, "oxygen_device": NC, "oxygen_flow_l_min": 5.9}, 2),
    ("6 vs 7 L/min", "at", {**F, "oxygen_device": NC, "oxygen_flow_l_min": 6}, 2),
    ("6 vs 7 L/min", "above", {**F, "oxygen_device": NC, "oxygen_flow_l_min": 6.1}, 3),
    ("6 vs 7 L/min", "above", {**F, "oxygen_device": NC, "oxygen_flow_l_min": 7}, 3),
    ("6 vs 7 L/min", "at", {**F, "oxygen_device": HFNC, "oxygen_flow_l_min": 6}, 2),
    ("6 vs 7 L/min", "above", {**F, "oxygen_device": HFNC, "oxygen_flow_l_min": 7}, 3),
    ("grade 3 oxygen", "at", {**F, "oxygen_device": "facemask"}, 3),
    ("grade 3 oxygen", "at", {**F, "oxygen_device": "non_rebreather"}, 3),
    ("grade 3 oxygen", "at", {**F, "oxygen_device": "venturi"}, 3),
    # grade 2 | grade 3: one vasopressor (with or without vasopressin)
    ("one vasopressor", "below", {**F, "hypotension": True, "vasopressors": []}, 2),
    ("one vasopressor", "at", {**F, "vasopressors": ["norepinephrine"]}, 3),
    ("vasopressin", "at", {**F, "vasopressors": ["vasopressin"]}, 3),
    ("vasopressin", "above", {**F, "vasopressors": ["norepinephrine", "vasopressin"]}, 3),
    # grade 3 | grade 4: multiple vasopressors excluding vasopressin; positive pressure
    ("multiple vasopressors", "at", {**F, "vasopressors": ["norepinephrine", "epinephrine"]}, 4),
    (
        "multiple vasopressors",
        "above",
        {**F, "vasopressors": ["norepinephrine", "epinephrine", "vasopressin"]},
        4,
    ),
    ("positive pressure", "below", {**F, "oxygen_device": "non_rebreather", "oxygen_flow_l_min": 15}, 3),
    ("positive pressure", "at", {**F, "oxygen_device": "cpap"}, 4),
    ("positive pressure", "at", {**F, "oxygen_device": "bipap"}, 4),
    ("positive pressure", "at", {**F, "oxygen_device": "mechanical_ventilation"}, 4),
    # the more severe of hypotension and hypoxia sets the grade
    ("worse of the two", "at", {**F, "vasopressors": ["norepinephrine"], "oxygen_device": NC}, 3),
    # fever masked by tocilizumab (or steroids): fever no longer required
    ("masked fever", "below", {"temp_c": 37.0, "hypotension": True}, None),
    (
        "masked fever",
        "at",
        {"temp_c": 37.0, "hypotension": True, "drugs_given": [{"drug": "tocilizumab"}]},
        2,
    ),
    (
        "masked fever",
        "at",
        {"temp_c": 36.9, "vasopressors": ["norepinephrine"], "drugs_given": [{"drug": "tocilizumab"}]},
        3,
    ),
    ("masked fever", "at", {"temp_c": 37.0, "drugs_given": [{"drug": "tocilizumab"}]}, 0),
]


@pytest.mark.parametrize(
    ("boundary", "position", "kwargs", "expected"),
    CRS_BOUNDARIES,
    ids=[f"{b} {p} {i}" for i, (b, p, _, _) in enumerate(CRS_BOUNDARIES)],
)
def test_crs_boundary(boundary: str, position: str, kwargs: dict[str, Any], expected: int | None) -> None:
    assert grade_crs(**kwargs).grade == expected, f"{boundary} ({position})"


ADULT = {"age_years": 40}

# (boundary, position, kwargs, expected ICANS grade)
ICANS_BOUNDARIES: list[tuple[str, str, dict[str, Any], int | None]] = [
    # ICE: 10 | 7-9 grade 1 | 3-6 grade 2 | 0-2 grade 3 | 0 unarousable grade 4
    ("ICE grade 1", "above", {**ADULT, "ice_score": 10}, 0),
    ("ICE grade 1", "at", {**ADULT, "ice_score": 9}, 1),
    ("ICE grade 1", "below", {**ADULT, "ice_score": 7}, 1),
    ("ICE grade 2", "above", {**ADULT, "ice_score": 7}, 1),
    ("ICE grade 2", "at", {**ADULT, "ice_score": 6}, 2),
    ("ICE grade 2", "below", {**ADULT, "ice_score": 3}, 2),
    ("ICE grade 3", "above", {**ADULT, "ice_score": 3}, 2),
    ("ICE grade 3", "at", {**ADULT, "ice_score": 2}, 3),
    ("ICE grade 3", "below", {**ADULT, "ice_score": 0, "consciousness": "alert"}, 3),
    ("ICE grade 4", "at", {**ADULT, "ice_score": 0, "consciousness": "unarousable"}, 4),
    # consciousness: each level is its own grade
    ("consciousness", "below", {**ADULT, "consciousness": "alert"}, 0),
    ("consciousness", "at", {**ADULT, "consciousness": "awakens_spontaneously"}, 1),
    ("consciousness", "at", {**ADULT, "consciousness": "awakens_to_voice"}, 2),
    ("consciousness", "at", {**ADULT, "consciousness": "awakens_to_touch"}, 3),
    ("consciousness", "at", {**ADULT, "consciousness": "unarousable"}, 4),
    # seizure, motor, raised ICP
    ("seizure grade 3", "below", {**ADULT, "seizure": "none"}, 0),
    ("seizure grade 3", "at", {**ADULT, "seizure": "resolved_rapidly"}, 3),
    ("seizure grade 4", "at", {**ADULT, "seizure": "prolonged_over_5_min"}, 4),
    ("motor grade 4", "below", {**ADULT, "motor_weakness": "none"}, 0),
    ("motor grade 4", "at", {**ADULT, "motor_weakness": "deep_focal"}, 4),
    ("edema grade 3", "at", {**ADULT, "cerebral_edema": "focal"}, 3),
    ("edema grade 4", "at", {**ADULT, "cerebral_edema": "diffuse"}, 4),
    # tremor and myoclonus alone are not ICANS
    ("tremor", "at", {**ADULT, "ice_score": 10, "tremor": True, "myoclonus": True}, 0),
    # CAPD (children aged 12 or under): 0 | 1-8 grade 1 | >= 9 grade 3
    ("CAPD grade 1", "below", {"age_years": 12, "capd_score": 0}, 0),
    ("CAPD grade 1", "at", {"age_years": 12, "capd_score": 1}, 1),
    ("CAPD grade 3", "below", {"age_years": 12, "capd_score": 8}, 1),
    ("CAPD grade 3", "at", {"age_years": 12, "capd_score": 9}, 3),
    ("CAPD grade 3", "above", {"age_years": 12, "capd_score": 10}, 3),
    # age 12 uses the CAPD, age 13 the ICE
    ("age 12 vs 13", "at", {"age_years": 12, "capd_score": 9}, 3),
    ("age 12 vs 13", "above", {"age_years": 13, "ice_score": 9}, 1),
]


@pytest.mark.parametrize(
    ("boundary", "position", "kwargs", "expected"),
    ICANS_BOUNDARIES,
    ids=[f"{b} {p} {i}" for i, (b, p, _, _) in enumerate(ICANS_BOUNDARIES)],
)
def test_icans_boundary(boundary: str, position: str, kwargs: dict[str, Any], expected: int | None) -> None:
    assert grade_icans(**kwargs).grade == expected, f"{boundary} ({position})"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"age_years": 12, "ice_score": 9}, "ice_score"),  # a 12-year-old must use the CAPD
        ({"age_years": 13, "capd_score": 9}, "capd_score"),  # a 13-year-old uses the ICE
    ],
)
def test_the_wrong_tool_for_the_age_is_an_error_naming_it(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        grade_icans(**kwargs)
    assert caught.value.where == field


def test_fever_masked_by_tocilizumab_given_at_an_earlier_assessment() -> None:
    parsed = parse_input(
        {
            "weight_kg": 70,
            "infusion_date": "2025-09-01",
            "assessments": [
                {
                    "time": "2025-09-02T08:00:00",
                    "temp_c": 39.0,
                    "hypotension": True,
                    "drugs_given": [{"drug": "tocilizumab", "dose_mg": 560}],
                },
                {"time": "2025-09-02T16:00:00", "temp_c": 37.1, "vasopressors": ["norepinephrine"]},
                {"time": "2025-09-03T08:00:00", "temp_c": 36.9},
            ],
        }
    )
    assert isinstance(parsed, Course)
    assert [a.crs.grade for a in grade_course(parsed).assessments] == [2, 3, 0]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temp_c": 60}, "temp_c"),
        ({"temp_c": 38.5, "oxygen_device": NC, "oxygen_flow_l_min": -1}, "oxygen_flow_l_min"),
        ({"temp_c": 38.5, "oxygen_device": "helmet"}, "oxygen_device"),
        ({"temp_c": 38.5, "vasopressors": ["dobutamine-ish"]}, "vasopressors[0]"),
        ({"temp_c": "38.5"}, "temp_c"),
    ],
)
def test_bad_crs_input_is_never_graded_silently(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        grade_crs(**kwargs)
    assert caught.value.where == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {
                "age_years": 40,
                "ice": {"orientation": 5, "naming": 3, "commands": 1, "writing": 1, "attention": 1},
            },
            "ice.orientation",
        ),
        ({"age_years": 40, "ice_score": 11}, "ice_score"),
        ({"age_years": 8, "capd_score": 33}, "capd_score"),
        ({"age_years": 40, "consciousness": "drowsy"}, "consciousness"),
    ],
)
def test_bad_icans_input_is_never_graded_silently(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        grade_icans(**kwargs)
    assert caught.value.where == field
