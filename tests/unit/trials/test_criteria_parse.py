"""Parsing criteria into criterion trees, on real ClinicalTrials.gov text (public domain).

Each case is copied from the record named in the comment (../shared/data/ctgov-act-trials, field
raw_criteria, unescaped); the asserted values are the ones in that text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from actnav.knowledge.models import Criterion
from actnav.trials.criteria_text import CriterionText, Section, split_criteria
from actnav.trials.parse import find_thresholds, load_rules, parse_criterion, to_canonical, trial_facts

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"


def _ct(text: str, section: Section = "inclusion", parent: str | None = None) -> CriterionText:
    return CriterionText(section=section, text=text, parent=parent, index=0, span=(0, len(text)))


def _leaves(node: Criterion) -> list[tuple[str, str, Any, str | None]]:
    return [(n.fact, n.op, n.value, n.unit) for n in node.walk() if n.fact is not None and n.op is not None]


def test_rule_files_validate() -> None:
    assert load_rules().performance.ecog_karnofsky[1].karnofsky_min == 70
    assert any(f.id == "needs_review" for f in trial_facts().facts)


def test_age_range() -> None:
    # NCT01087294: "Patients must be 18-75 years of age."
    p = parse_criterion(_ct("Patients must be 18-75 years of age."))
    assert p.status == "typed"
    assert _leaves(p.criterion) == [("age_years", "ge", 18, "a"), ("age_years", "le", 75, "a")]


def test_ecog_0_or_1_with_karnofsky_conversion() -> None:
    # NCT00924326: "Clinical performance status of Eastern Cooperative Oncology Group (ECOG) 0 or 1."
    p = parse_criterion(
        _ct("Clinical performance status of Eastern Cooperative Oncology Group (ECOG) 0 or 1.")
    )
    assert p.typed
    leaves = _leaves(p.criterion)
    assert ("ecog", "le", 1, "{score}") in leaves and ("karnofsky", "ge", 70, "{score}") in leaves


def test_anc_per_mm3_normalised() -> None:
    # NCT00924326: "Absolute neutrophil count greater than or equal to 1000/mm^3 without the support of filgrastim."
    p = parse_criterion(
        _ct("Absolute neutrophil count greater than or equal to 1000/mm^3 without the support of filgrastim.")
    )
    assert ("anc", "ge", 1.0, "10*9/L") in _leaves(p.criterion)
    leaf = next(s for s in p.leaves if s.fact == "anc")
    assert p.source.text[leaf.start : leaf.end].startswith("Absolute neutrophil count")


def test_platelets_per_mm3() -> None:
    # NCT00924326: "Platelet count greater than or equal to 50,000/mm^3."
    p = parse_criterion(_ct("Platelet count greater than or equal to 50,000/mm^3."))
    assert p.status == "typed" and _leaves(p.criterion) == [("platelets", "ge", 50.0, "10*9/L")]


def test_creatinine_clearance() -> None:
    # NCT02153580: "A pretreatment creatinine clearance (CrCl) of >= 60 mL/minute (min), calculated by Cockcroft..."
    p = parse_criterion(
        _ct(
            "A pretreatment creatinine clearance (CrCl) of >= 60 mL/minute (min), calculated by Cockcroft-Gault"
        )
    )
    assert ("creatinine_clearance", "ge", 60, "mL/min") in _leaves(p.criterion)


def test_alt_ast_times_uln() -> None:
    # NCT00924326: "Serum alanine aminotransferase (ALT)/aspartate aminotransferase (AST) less or equal to 5 times
    # the upper limit of normal."
    p = parse_criterion(
        _ct(
            "Serum alanine aminotransferase (ALT)/aspartate aminotransferase (AST) less or equal to 5 "
            "times the upper limit of normal."
        )
    )
    assert p.status == "typed"
    assert set(_leaves(p.criterion)) == {("alt_x_uln", "le", 5, "{xULN}"), ("ast_x_uln", "le", 5, "{xULN}")}


def test_lvef() -> None:
    # NCT03287817: "Left ventricular ejection fraction (LVEF) ≥50% (by echocardiogram [ECHO] or Multi..."
    p = parse_criterion(
        _ct("Left ventricular ejection fraction (LVEF) ≥50% (by echocardiogram [ECHO] or MUGA)")
    )
    assert ("lvef", "ge", 50, "%") in _leaves(p.criterion)


def test_exclusion_is_negated() -> None:
    # NCT01087294 exclusion: "Serum creatinine greater than 1.6 mg/dL"
    p = parse_criterion(_ct("Serum creatinine greater than 1.6 mg/dL", "exclusion"))
    assert p.criterion.not_ is not None
    assert _leaves(p.criterion) == [("creatinine", "gt", 1.6, "mg/dL")]


def test_hiv_inclusion_and_exclusion() -> None:
    # NCT00924326 inclusion: "Seronegative for human immunodeficiency virus (HIV) antibody."
    inc = parse_criterion(_ct("Seronegative for human immunodeficiency virus (HIV) antibody."))
    assert _leaves(inc.criterion) == [("hiv", "eq", "negative", None)]
    # NCT01087294 exclusion: "Sero positive for HIV antibody."
    exc = parse_criterion(_ct("Sero positive for HIV antibody.", "exclusion"))
    assert exc.criterion.not_ is not None and _leaves(exc.criterion) == [("hiv", "eq", "positive", None)]


def test_pregnancy_exclusion() -> None:
    # NCT01087294 exclusion: "Pregnant or lactating."
    p = parse_criterion(_ct("Pregnant or lactating.", "exclusion"))
    assert p.status == "typed"
    assert set(_leaves(p.criterion)) == {("pregnant", "eq", True, None), ("breastfeeding", "eq", True, None)}


def test_prior_allogeneic_transplant_exclusion() -> None:
    # NCT00924326 exclusion: "History of allogeneic stem cell transplantation"
    p = parse_criterion(_ct("History of allogeneic stem cell transplantation", "exclusion"))
    assert _leaves(p.criterion) == [("prior_transplant", "has_any", ("allogeneic",), None)]


def test_prior_car_t_exclusion() -> None:
    p = parse_criterion(_ct("Prior CAR-T cell therapy", "exclusion"))
    assert p.criterion.not_ is not None
    assert _leaves(p.criterion) == [("prior_drug_classes", "has_any", ("car_t",), None)]


def test_hedged_and_conditional_go_to_review() -> None:
    # NCT00924326: bilirubin with a Gilbert's syndrome exception
    p = parse_criterion(
        _ct(
            "Total bilirubin less than or equal to 1.5 mg/dl, except in patients with Gilbert's "
            "Syndrome who must have a total bilirubin less than 3.0 mg/dl"
        )
    )
    assert p.status == "review" and p.criterion.fact == "needs_review"
    assert p.criterion.remarks is not None and p.criterion.remarks.startswith("needs review: Total bilirubin")
    assert any("partial parse" in n for n in p.notes)
    # NCT01087294 exclusion: ANC with an "unless" condition
    q = parse_criterion(
        _ct(
            "Absolute neutrophil count of less than 1000 cells/ml unless low neutrophil count is "
            "thought to be due to malignancy in the bone marrow",
            "exclusion",
        )
    )
    assert q.status == "review"


def test_unparsed_is_never_dropped() -> None:
    p = parse_criterion(_ct("Willing to sign a durable power of attorney."))
    assert p.status == "review" and p.criterion.fact == "needs_review" and p.criterion.value is True


def test_donor_criteria_are_review() -> None:
    ct = CriterionText(
        section="inclusion", text="Donors must be HIV negative.", index=0, span=(0, 1), population="donor"
    )
    assert parse_criterion(ct).status == "review"


def test_thresholds_and_units() -> None:
    th = find_thresholds("Platelets ≥ 75 x 10³/µL")[0]
    assert th.entity == "platelets" and th.unit == "10*3/uL"
    assert to_canonical(75, "10*3/uL", "10*9/L") == pytest.approx(75.0)
    assert to_canonical(1.5, "mg/dL", "umol/L", 113.12) == pytest.approx(132.6, abs=0.1)


def _act_records() -> list[tuple[str, str]]:
    dirs = [SHARED / "ctgov-act-trials", SHARED / "trialgpt2-act-sample-records" / "trials"]
    if not all(d.is_dir() for d in dirs):
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/data is missing")
        pytest.skip("../shared/data (real ACT records) is not present")
    out = []
    for d in dirs:
        for path in sorted(d.glob("NCT*.json")):
            rec = json.loads(path.read_text(encoding="utf-8"))
            out.append((rec["nctid"], rec["raw_criteria"]))
    return out


@pytest.mark.shared
def test_all_act_records_parse_without_exception() -> None:
    records = _act_records()
    assert len(records) == 56
    typed = total = 0
    for nct, text in records:
        cts = split_criteria(text)
        assert cts, nct
        for ct in cts:
            parsed = parse_criterion(ct)
            assert not any(n.startswith("parser error") for n in parsed.notes), (nct, ct.text, parsed.notes)
            total += 1
            typed += parsed.typed
    assert typed / total > 0.2
