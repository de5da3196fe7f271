"""CTCAE v5.0 grades at, just below and just above every boundary, with the baseline rule.

Source of every expected grade: NCI CTCAE v5.0 (CTCAE_v5.0.xlsx) as recorded in
clinical-reference.md section 6a, with its conventions (6a.1): "> A - B" is A < x <= B,
"< A - B" is B <= x < A, a count at or above the LLN is grade 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from actnav.errors import InputError
from actnav.toxicity.ctcae import ctcae_terms, grade_ctcae, is_defined

# ------------------------------------------------------------------ ALT/AST, baseline normal


@pytest.mark.parametrize("term", ["alt", "aspartate_aminotransferase_increased"])
@pytest.mark.parametrize(
    ("value", "grade"),
    [
        (40.0, 0),  # = ULN
        (40.4, 1),  # > ULN
        (120.0, 1),  # exactly 3.0 x ULN -> grade 1
        (120.4, 2),
        (200.0, 2),  # exactly 5.0 x ULN -> grade 2
        (200.4, 3),
        (800.0, 3),  # exactly 20.0 x ULN -> grade 3
        (800.4, 4),
    ],
)
def test_transaminases_uln_column(term: str, value: float, grade: int) -> None:
    result = grade_ctcae(term, value=value, uln=40.0, baseline=30.0)
    assert result.grade == grade
    assert result.column == "uln"
    assert result.ctcae_version == "5.0"


@pytest.mark.parametrize(
    ("value", "grade", "unconfirmed"),
    [
        (89.0, 0, True),  # 1.48 x an abnormal baseline: no grade defined (reading U)
        (90.0, 1, True),  # exactly 1.5 x baseline: unsigned lower end read as inclusive (R)
        (180.0, 1, True),  # 3.0 x baseline
        (181.0, 2, False),
        (300.0, 2, False),  # 5.0 x baseline
        (301.0, 3, False),
        (1200.0, 3, False),  # 20.0 x baseline
        (1201.0, 4, False),
    ],
)
def test_alt_baseline_rule_abnormal_baseline(value: float, grade: int, unconfirmed: bool) -> None:
    # ULN 40, baseline 60 (> ULN): grade on multiples of the baseline (new in v5.0).
    result = grade_ctcae("alt", value=value, uln=40.0, baseline=60.0)
    assert result.grade == grade
    assert result.column == "baseline"
    assert result.unconfirmed is unconfirmed


def test_alt_baseline_equal_to_uln_is_normal() -> None:
    result = grade_ctcae("alt", value=90.0, uln=40.0, baseline=40.0)
    assert result.column == "uln"
    assert result.grade == 1


def test_alt_without_baseline_uses_uln_column_and_says_so() -> None:
    result = grade_ctcae("alt", value=130.0, uln=40.0)
    assert result.grade == 2
    assert any("Baseline not given" in n for n in result.notes)


@pytest.mark.parametrize(
    ("value", "baseline", "grade", "column"),
    [
        (1.2, 0.8, 0, "uln"),  # = ULN
        (1.8, 0.8, 1, "uln"),  # 1.5 x ULN
        (1.81, 0.8, 2, "uln"),
        (3.6, 0.8, 2, "uln"),  # 3.0 x ULN
        (3.61, 0.8, 3, "uln"),
        (12.0, 0.8, 3, "uln"),  # 10.0 x ULN
        (12.1, 0.8, 4, "uln"),
        (2.0, 2.0, 0, "baseline"),  # 1.0 x abnormal baseline: bilirubin grade 1 needs > 1.0
        (2.1, 2.0, 1, "baseline"),
        (3.0, 2.0, 1, "baseline"),  # 1.5 x baseline
        (3.1, 2.0, 2, "baseline"),
        (20.0, 2.0, 3, "baseline"),  # 10 x baseline
        (20.2, 2.0, 4, "baseline"),
    ],
)
def test_bilirubin(value: float, baseline: float, grade: int, column: str) -> None:
    result = grade_ctcae("blood_bilirubin_increased", value=value, uln=1.2, baseline=baseline, unit="mg/dL")
    assert (result.grade, result.column) == (grade, column)


# --------------------------------------------------------------------------------- creatinine


@pytest.mark.parametrize(
    ("value", "grade"),
    [(1.2, 0), (1.21, 1), (1.8, 1), (1.81, 2), (3.6, 2), (3.61, 3), (7.2, 3), (7.21, 4)],
)
def test_creatinine_uln_criterion(value: float, grade: int) -> None:
    result = grade_ctcae("creatinine", value=value, uln=1.2)
    assert result.grade == grade


@pytest.mark.parametrize(
    ("value", "baseline", "grade", "column"),
    [
        (1.0, 0.5, 2, "baseline"),  # 0.83 x ULN (0) but 2.0 x baseline (2): the higher is kept
        (0.75, 0.5, 0, "uln"),  # 1.5 x baseline is not > 1.5
        (1.6, 0.5, 3, "baseline"),  # 1.33 x ULN (1), 3.2 x baseline (3)
        (1.5, 0.5, 2, "baseline"),  # exactly 3.0 x baseline -> grade 2
        (8.0, 4.0, 4, "uln"),  # 6.67 x ULN (4) beats 2 x baseline (2)
    ],
)
def test_creatinine_baseline_alternative(value: float, baseline: float, grade: int, column: str) -> None:
    result = grade_ctcae("creatinine", value=value, uln=1.2, baseline=baseline)
    assert (result.grade, result.column) == (grade, column)


def test_creatinine_without_baseline_is_a_minimum_below_grade_3() -> None:
    result = grade_ctcae("creatinine", value=1.5, uln=1.2)
    assert result.grade == 1
    assert result.at_least
    assert result.needs


# ------------------------------------------------------------------------------- blood counts


@pytest.mark.parametrize(
    ("value", "grade"),
    [(1.8, 0), (1.79, 1), (1.5, 1), (1.49, 2), (1.0, 2), (0.99, 3), (0.5, 3), (0.49, 4), (0.0, 4)],
)
def test_neutrophils(value: float, grade: int) -> None:
    assert grade_ctcae("neutrophil_count_decreased", value=value, lln=1.8).grade == grade


def test_neutrophils_at_or_above_lln_is_grade_0_even_under_1_5() -> None:
    assert grade_ctcae("anc", value=1.45, lln=1.4).grade == 0
    assert grade_ctcae("anc", value=1.39, lln=1.4).grade == 2


def test_neutrophils_per_ul_converted() -> None:
    result = grade_ctcae("anc", value=500, unit="/uL", lln=1800)
    assert result.value == pytest.approx(0.5)
    assert result.grade == 3


@pytest.mark.parametrize(
    ("value", "grade"),
    [(150, 0), (149, 1), (75, 1), (74.9, 2), (50, 2), (49.9, 3), (25, 3), (24.9, 4)],
)
def test_platelets(value: float, grade: int) -> None:
    assert grade_ctcae("platelet_count_decreased", value=value, lln=150).grade == grade


@pytest.mark.parametrize(
    ("value", "grade"), [(1.0, 0), (0.99, 1), (0.8, 1), (0.79, 2), (0.5, 2), (0.49, 3), (0.2, 3), (0.19, 4)]
)
def test_lymphocytes(value: float, grade: int) -> None:
    assert grade_ctcae("lymphocyte_count_decreased", value=value, lln=1.0).grade == grade


@pytest.mark.parametrize(
    ("value", "unit", "lln", "grade"),
    [
        (12.0, "g/dL", 12.0, 0),
        (11.9, "g/dL", 12.0, 1),
        (10.0, "g/dL", 12.0, 1),
        (9.9, "g/dL", 12.0, 2),
        (8.0, "g/dL", 12.0, 2),
        (7.9, "g/dL", 12.0, 3),
        (80, "g/L", 120, 2),
        (79, "g/L", 120, 3),
        (6.2, "mmol/L", 7.4, 1),  # CTCAE's own mmol/L column, not a conversion
        (6.1, "mmol/L", 7.4, 2),
        (4.9, "mmol/L", 7.4, 2),
        (4.8, "mmol/L", 7.4, 3),
    ],
)
def test_anemia(value: float, unit: str, lln: float, grade: int) -> None:
    assert grade_ctcae("anemia", value=value, unit=unit, lln=lln).grade == grade


def test_anemia_clinical_options() -> None:
    assert grade_ctcae("anemia", value=9.0, lln=12.0, options=["transfusion_indicated"]).grade == 3
    assert grade_ctcae("anemia", options=["life_threatening"]).grade == 4


# -------------------------------------------------------------------------------------- fever


@pytest.mark.parametrize(
    ("temp", "unit", "grade"),
    [
        (37.9, "Cel", 0),
        (38.0, "Cel", 1),  # grade 1 includes 38.0 exactly
        (39.0, "Cel", 1),
        (39.1, "Cel", 2),
        (40.0, "Cel", 2),
        (100.3, "[degF]", 0),
        (100.4, "[degF]", 1),
        (102.2, "[degF]", 1),
        (102.3, "[degF]", 2),
        (104.0, "[degF]", 2),
    ],
)
def test_fever(temp: float, unit: str, grade: int) -> None:
    assert grade_ctcae("fever", temperature=temp, temperature_unit=unit).grade == grade


def test_fever_above_40_needs_duration() -> None:
    short = grade_ctcae("fever", temperature=40.1)
    assert short.grade == 3 and short.at_least and short.needs
    assert grade_ctcae("fever", temperature=40.1, hours_above_40=24).grade == 3
    assert grade_ctcae("fever", temperature=40.1, hours_above_40=25).grade == 4


@pytest.mark.parametrize(
    ("anc", "temp", "hours", "grade"),
    [
        (1.0, 39.0, None, 0),  # ANC exactly 1,000 does not qualify
        (0.99, 38.3, None, 0),  # single 38.3 does not qualify (> 38.3 needed)
        (0.99, 38.31, None, 3),
        (0.99, 38.0, 1.0, 0),  # sustained for exactly 1 h: not more than one hour
        (0.99, 38.0, 1.5, 3),
        (0.99, 37.9, 5.0, 0),
    ],
)
def test_febrile_neutropenia(anc: float, temp: float, hours: float | None, grade: int) -> None:
    result = grade_ctcae("febrile_neutropenia", anc=anc, temperature=temp, hours_at_or_above_38=hours)
    assert result.grade == grade
    assert result.not_defined_grades == [1, 2]


# ----------------------------------------------------------------------------------- clinical


@pytest.mark.parametrize(("stools", "grade"), [(0, 0), (1, 1), (3, 1), (4, 2), (6, 2), (7, 3)])
def test_diarrhea_stools(stools: int, grade: int) -> None:
    assert grade_ctcae("diarrhea", stools_above_baseline=stools).grade == grade


def test_diarrhea_highest_finding_wins() -> None:
    result = grade_ctcae("diarrhoea", stools_above_baseline=2, options=["hospitalization_indicated"])
    assert result.grade == 3


@pytest.mark.parametrize(
    ("bsa", "symptoms", "grade"),
    [
        (5, "none", 1),
        (9.9, "mild", 1),
        (10, "none", 2),
        (30, "severe", 2),
        (31, "mild", 2),
        (31, "moderate", 3),
    ],
)
def test_rash_bsa(bsa: float, symptoms: Any, grade: int) -> None:
    assert grade_ctcae("rash_maculo_papular", bsa_percent=bsa, symptoms=symptoms).grade == grade


@pytest.mark.parametrize(
    ("term", "option", "grade"),
    [
        ("pneumonitis", "oxygen_indicated", 3),
        ("pneumonitis", "asymptomatic_finding_only", 1),
        ("colitis", "peritoneal_signs", 3),
        ("colitis", "mucus_or_blood_in_stool", 2),
        ("fatigue", "not_relieved_limits_self_care_adl", 3),
    ],
)
def test_clinical_options(term: str, option: str, grade: int) -> None:
    assert grade_ctcae(term, options=[option]).grade == grade


def test_grades_that_do_not_exist() -> None:
    assert not is_defined("alt", 5)  # no grade 5 for Investigations lab terms
    assert not is_defined("fatigue", 4)
    assert not is_defined("rash", 5)
    assert not is_defined("febrile_neutropenia", 1)
    assert is_defined("anemia", 5)
    assert grade_ctcae("platelets", value=10, lln=150).not_defined_grades == [5]


def test_terms_listed_with_meddra() -> None:
    terms = {t["id"]: t for t in ctcae_terms()}
    assert terms["neutrophil_count_decreased"]["meddra"] == "10029366"
    assert terms["anemia"]["meddra"] == "10002272"
    assert terms["diarrhea"]["meddra"] == "10012727"


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"term": "hangnail"}, "term"),
        ({"term": "alt", "value": -5, "uln": 40}, "value"),
        ({"term": "alt", "value": 50}, "uln"),
        ({"term": "alt", "value": 50, "uln": 0}, "uln"),
        ({"term": "alt", "value": 50, "uln": 40, "lln": 10}, "lln"),
        ({"term": "anc", "value": 0.4}, "lln"),
        ({"term": "anc", "value": -0.4, "lln": 1.8}, "value"),
        ({"term": "platelets", "value": 150_000, "lln": 150}, "value"),
        ({"term": "fever", "temperature": 60.0}, "temperature"),
        ({"term": "fever", "temperature": 38.5, "hours_above_40": 3}, "hours_above_40"),
        ({"term": "colitis", "options": ["nonsense"]}, "options"),
        ({"term": "colitis"}, "options"),
        ({"term": "rash", "bsa_percent": 40}, "symptoms"),
        ({"term": "rash", "bsa_percent": 140, "symptoms": "mild"}, "bsa_percent"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        grade_ctcae(**kwargs)
    assert err.value.where == field


def test_every_grade_is_sourced() -> None:
    result = grade_ctcae("platelets", value=40, lln=150)
    assert result.sources and result.sources[0].citation.startswith("National Cancer Institute")
    assert result.sources[0].verification == "V"
