"""ASTCT 2019 CRS grading: every boundary of the grade table, just below, at and just above.

Expected grades are read from Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638,
Table 6 (ASTCT CRS consensus grading) and its footnotes, as given in the actnav clinical reference
section 2.1 (rules 1-7).
"""

from __future__ import annotations

from typing import Any

import pytest

from actnav.toxicity import grade_crs
from actnav.toxicity.crs import NOT_MET, crs_from_assessment
from actnav.toxicity.models import parse_assessment

FEVER = {"temp_c": 38.5}

# (case id, grade_crs keyword arguments, expected grade) -- Lee 2019 Table 6.
GRADE_TABLE: list[tuple[str, dict[str, Any], int | None]] = [
    # Fever row: T >= 38.0 C; just below, at, just above.
    ("37.9 C is not fever", {"temp_c": 37.9}, None),
    ("38.0 C is fever, grade 1", {"temp_c": 38.0}, 1),
    ("38.1 C is fever, grade 1", {"temp_c": 38.1}, 1),
    # Fahrenheit is converted: 100.4 F = 38.0 C.
    ("100.3 F is not fever", {"temp_f": 100.3}, None),
    ("100.4 F is fever", {"temp_f": 100.4}, 1),
    ("100.5 F is fever", {"temp_f": 100.5}, 1),
    ("104 F with no other finding is grade 1", {"temp_f": 104.0}, 1),
    # Hypotension row.
    ("fever, no hypotension", {**FEVER, "hypotension": False}, 1),
    ("fever, hypotension not requiring vasopressors", {**FEVER, "hypotension": True}, 2),
    ("fever, one vasopressor", {**FEVER, "hypotension": True, "vasopressors": ["norepinephrine"]}, 3),
    ("fever, vasopressin alone is one vasopressor", {**FEVER, "vasopressors": ["vasopressin"]}, 3),
    (
        "fever, norepinephrine + vasopressin is one vasopressor with vasopressin",
        {**FEVER, "vasopressors": ["norepinephrine", "vasopressin"]},
        3,
    ),
    (
        "fever, two non-vasopressin vasopressors are multiple",
        {**FEVER, "vasopressors": ["norepinephrine", "epinephrine"]},
        4,
    ),
    (
        "fever, two vasopressors plus vasopressin are multiple",
        {**FEVER, "vasopressors": ["norepinephrine", "phenylephrine", "vasopressin"]},
        4,
    ),
    ("aliases count as their agents", {**FEVER, "vasopressors": ["Noradrenaline", "adrenaline"]}, 4),
    ("the same agent twice is one vasopressor", {**FEVER, "vasopressors": ["norepinephrine", "levophed"]}, 3),
    # Hypoxia row: low flow <= 6 L/min, high flow > 6 L/min (footnote).
    ("fever, room air", {**FEVER, "oxygen_device": "none"}, 1),
    (
        "nasal cannula 5.9 L/min is low flow",
        {**FEVER, "oxygen_device": "low_flow_nasal_cannula", "oxygen_flow_l_min": 5.9},
        2,
    ),
    (
        "nasal cannula exactly 6 L/min is low flow",
        {**FEVER, "oxygen_device": "low_flow_nasal_cannula", "oxygen_flow_l_min": 6},
        2,
    ),
    (
        "nasal cannula 6.1 L/min is high flow",
        {**FEVER, "oxygen_device": "low_flow_nasal_cannula", "oxygen_flow_l_min": 6.1},
        3,
    ),
    (
        "nasal cannula 7 L/min is high flow",
        {**FEVER, "oxygen_device": "high_flow_nasal_cannula", "oxygen_flow_l_min": 7},
        3,
    ),
    ("low-flow cannula without a flow is low flow", {**FEVER, "oxygen_device": "low_flow_nasal_cannula"}, 2),
    (
        "high-flow cannula without a flow is high flow",
        {**FEVER, "oxygen_device": "high_flow_nasal_cannula"},
        3,
    ),
    ("blow-by is grade 2", {**FEVER, "oxygen_device": "blow_by"}, 2),
    ("facemask is grade 3", {**FEVER, "oxygen_device": "facemask", "oxygen_flow_l_min": 5}, 3),
    ("non-rebreather is grade 3", {**FEVER, "oxygen_device": "non_rebreather", "oxygen_flow_l_min": 15}, 3),
    ("Venturi mask is grade 3", {**FEVER, "oxygen_device": "venturi"}, 3),
    ("CPAP is grade 4", {**FEVER, "oxygen_device": "cpap"}, 4),
    ("BiPAP is grade 4", {**FEVER, "oxygen_device": "bipap"}, 4),
    ("mechanical ventilation is grade 4", {**FEVER, "oxygen_device": "mechanical_ventilation"}, 4),
    # The more severe of hypotension and hypoxia sets the grade (rule 2).
    (
        "one vasopressor with low-flow oxygen is grade 3",
        {**FEVER, "vasopressors": ["norepinephrine"], "oxygen_device": "low_flow_nasal_cannula"},
        3,
    ),
    (
        "fluid-responsive hypotension with BiPAP is grade 4",
        {**FEVER, "hypotension": True, "oxygen_device": "bipap"},
        4,
    ),
    (
        "multiple vasopressors with facemask is grade 4",
        {**FEVER, "vasopressors": ["norepinephrine", "dopamine"], "oxygen_device": "facemask"},
        4,
    ),
    # Fever masked by antipyretic or anti-cytokine therapy (rule 1).
    (
        "afebrile after tocilizumab with one vasopressor is grade 3",
        {"temp_c": 37.0, "drugs_given": [{"drug": "tocilizumab"}], "vasopressors": ["norepinephrine"]},
        3,
    ),
    (
        "afebrile after dexamethasone on low-flow oxygen is grade 2",
        {
            "temp_c": 36.8,
            "drugs_given": [{"drug": "dexamethasone", "dose_mg": 10}],
            "oxygen_device": "low_flow_nasal_cannula",
            "oxygen_flow_l_min": 3,
        },
        2,
    ),
    (
        "afebrile after methylprednisolone on CPAP is grade 4",
        {"temp_c": 37.2, "drugs_given": [{"drug": "methylprednisolone"}], "oxygen_device": "cpap"},
        4,
    ),
    (
        "treatment flag with fluid-responsive hypotension is grade 2",
        {"temp_c": 37.5, "fever_treatment_given": True, "hypotension": True},
        2,
    ),
    (
        "no temperature after treatment, facemask is grade 3",
        {"fever_treatment_given": True, "oxygen_device": "facemask"},
        3,
    ),
    (
        "afebrile after treatment, no hypotension or hypoxia is grade 0",
        {"temp_c": 37.0, "fever_treatment_given": True},
        0,
    ),
    (
        "febrile after treatment without support is grade 1",
        {"temp_c": 38.3, "fever_treatment_given": True},
        1,
    ),
    # Antipyretics count only through the treatment flag (routine premedication).
    (
        "acetaminophen alone does not mask fever",
        {"temp_c": 37.0, "drugs_given": [{"drug": "acetaminophen"}], "hypotension": True},
        None,
    ),
    # No fever and no treatment: not CRS, whatever the support (rule 7).
    ("hypotension without fever is not CRS", {"temp_c": 37.4, "hypotension": True}, None),
    (
        "vasopressors and facemask without fever are not CRS",
        {"temp_c": 36.9, "vasopressors": ["norepinephrine", "epinephrine"], "oxygen_device": "facemask"},
        None,
    ),
]


@pytest.mark.parametrize(("case", "kwargs", "expected"), GRADE_TABLE, ids=[row[0] for row in GRADE_TABLE])
def test_crs_grade_follows_the_astct_table(case: str, kwargs: dict[str, Any], expected: int | None) -> None:
    assert grade_crs(**kwargs).grade == expected, case


def test_no_fever_and_no_treatment_gives_no_grade_and_says_consider_other_causes() -> None:
    result = grade_crs(temp_c=37.2)
    assert result.grade is None
    assert result.status == "not_met"
    assert result.reason.startswith("criteria for CRS not met; consider other causes")
    assert NOT_MET == "criteria for CRS not met; consider other causes"


def test_support_without_fever_is_flagged_as_possible_crs() -> None:
    result = grade_crs(temp_c=37.2, hypotension=True, oxygen_device="facemask")
    assert result.grade is None
    assert "possible CRS, fever absent" in result.reason
    assert result.hypotension_grade == 2 and result.hypoxia_grade == 3


def test_missing_temperature_without_treatment_is_unknown_not_a_grade() -> None:
    result = grade_crs(hypotension=True)
    assert result.grade is None
    assert result.status == "unknown"
    assert "temperature not recorded" in result.reason


def test_fahrenheit_is_converted_and_shown() -> None:
    result = grade_crs(temp_f=100.4)
    assert result.temp_c == 38.0
    assert result.fever is True
    assert "100.4 F = 38.0 C" in result.reason
    assert result.inputs == {"temp_c": 38.0, "temp_f": 100.4}


def test_the_inputs_that_set_the_grade_are_kept() -> None:
    result = grade_crs(
        temp_c=38.9,
        vasopressors=["norepinephrine", "vasopressin"],
        oxygen_device="low_flow_nasal_cannula",
        oxygen_flow_l_min=4,
    )
    assert result.grade == 3
    assert result.set_by == ("fever", "hypotension")
    assert result.inputs["vasopressors"] == ("norepinephrine", "vasopressin")
    assert "oxygen_device" not in result.inputs  # grade 2 hypoxia did not set the grade
    assert result.hypoxia_grade == 2
    assert result.rows == (
        "crs-fever",
        "crs-hypotension-one-vasopressor",
        "crs-hypoxia-low-flow-nasal-cannula",
    )


def test_a_tie_keeps_both_hypotension_and_hypoxia() -> None:
    result = grade_crs(temp_c=38.2, hypotension=True, oxygen_device="blow_by")
    assert result.grade == 2
    assert result.set_by == ("fever", "hypotension", "hypoxia")
    assert "the more severe of hypotension and hypoxia sets the grade" in result.reason


def test_masked_fever_names_the_drug_and_keeps_it_as_input() -> None:
    result = grade_crs(
        temp_c=37.0, drugs_given=[{"drug": "tocilizumab", "dose_mg": 640}], oxygen_device="bipap"
    )
    assert result.grade == 4
    assert result.fever is False and result.fever_required is False
    assert "fever not required after tocilizumab" in result.reason
    assert result.inputs["drugs_given"] == ("tocilizumab",)


def test_organ_toxicity_labs_do_not_change_the_crs_grade() -> None:
    # Rule 5: organ toxicities are graded with CTCAE v5.0 and do not change the CRS grade.
    assessment = parse_assessment(
        {
            "temp_c": 38.5,
            "labs": [
                {"name": "creatinine", "value": 4.1, "unit": "mg/dL"},
                {"name": "alt", "value": 900, "unit": "U/L"},
            ],
        }
    )
    assert crs_from_assessment(assessment).grade == 1


def test_grade_names_its_source() -> None:
    source = grade_crs(temp_c=38.0).source
    assert "Lee DW" in source and "2019;25:625-638" in source and "astct-crs version" in source
