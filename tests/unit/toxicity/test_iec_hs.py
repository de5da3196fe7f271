"""IEC-HS: a flag with its evidence, never an automatic grade, always unconfirmed.

Source: Hines MR et al., Transplant Cell Ther 2023 (ASTCT consensus, PMID 36906275): abstract
seen [V]; criteria as recalled in clinical-reference.md section 3 [R] (ferritin > 2 x ULN or
> 2 x baseline and/or rapidly rising, plus manifestations such as cytopenias, transaminases
> 5 x ULN, LDH > ULN, fibrinogen < 150 mg/dL, haemophagocytosis, triglycerides > 265 mg/dL).
"""

from __future__ import annotations

from typing import Any

import pytest

from actnav.errors import InputError
from actnav.toxicity.iec_hs import assess_iec_hs, load_iec_hs


def test_ferritin_and_one_manifestation_raise_the_flag() -> None:
    result = assess_iec_hs(
        ferritin_ng_ml=9000, ferritin_uln_ng_ml=400, cytopenia=True, onset="after_crs_resolved"
    )
    assert result.suggestive is True
    assert result.ferritin.met is True
    assert result.manifestations_met == 1
    assert result.grade is None  # never computed
    assert result.unconfirmed


def test_ferritin_against_baseline() -> None:
    result = assess_iec_hs(ferritin_ng_ml=2100, ferritin_baseline_ng_ml=1000, fibrinogen_mg_dl=120)
    assert result.ferritin.met is True
    assert {f.id: f.met for f in result.manifestations}["hypofibrinogenemia"] is True
    assert result.suggestive is True


@pytest.mark.parametrize(
    ("kwargs", "met"),
    [
        ({"alt_u_l": 201, "alt_uln_u_l": 40, "ast_u_l": 50, "ast_uln_u_l": 40}, True),  # ALT > 5 x ULN
        ({"alt_u_l": 200, "alt_uln_u_l": 40, "ast_u_l": 50, "ast_uln_u_l": 40}, False),  # exactly 5 x
        ({"alt_u_l": 100, "alt_uln_u_l": 40}, None),  # AST unknown: cannot exclude
    ],
)
def test_transaminase_manifestation(kwargs: dict[str, Any], met: bool | None) -> None:
    result = assess_iec_hs(**kwargs)
    assert {f.id: f.met for f in result.manifestations}["transaminases"] is met


def test_no_flag_when_ferritin_criterion_not_met() -> None:
    result = assess_iec_hs(
        ferritin_ng_ml=500,
        ferritin_uln_ng_ml=400,
        ferritin_rapidly_rising=False,
        cytopenia=True,
        hemophagocytosis=True,
    )
    assert result.ferritin.met is False
    assert result.suggestive is False


def test_rapidly_rising_ferritin_meets_the_criterion() -> None:
    result = assess_iec_hs(ferritin_rapidly_rising=True, splenomegaly=True)
    assert result.suggestive is True


def test_unknown_when_ferritin_is_unknown() -> None:
    result = assess_iec_hs(cytopenia=True)
    assert result.suggestive is None
    assert any("ferritin" in need for need in result.needs)


def test_grade_only_from_clinician_severity() -> None:
    result = assess_iec_hs(severity="life_threatening")
    assert result.grade == 4
    assert result.unconfirmed
    assert any(s.verification == "R" for s in result.sources)


def test_active_crs_note() -> None:
    result = assess_iec_hs(onset="crs_active", ferritin_ng_ml=9000, ferritin_uln_ng_ml=400, cytopenia=True)
    assert result.timing.met is False
    assert any("CRS is active" in n for n in result.notes)


def test_every_criterion_is_tagged_recollection() -> None:
    data = load_iec_hs()
    assert data.concept.source.verification.value == "V"
    assert all(m.source.verification.value == "R" for m in data.manifestations)
    assert data.flag_rule.source.verification.value == "U"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ferritin_ng_ml": -1, "ferritin_uln_ng_ml": 400}, "ferritin_ng_ml"),
        ({"ferritin_ng_ml": 900, "ferritin_uln_ng_ml": 0}, "ferritin_uln_ng_ml"),
        ({"fibrinogen_mg_dl": -20}, "fibrinogen_mg_dl"),
        ({"onset": "yesterday"}, "onset"),
        ({"severity": "grade 9"}, "severity"),
        ({"cytopenia": "yes"}, "cytopenia"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        assess_iec_hs(**kwargs)
    assert err.value.where == field
