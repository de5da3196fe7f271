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
    # NCT00924326: "Absolute neutrophil count greater than or equal to 1000/mm^3 without the support of
    # filgrastim."
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
    # NCT02153580: "A pretreatment creatinine clearance (CrCl) of >= 60 mL/minute (min), calculated by
    # Cockcroft..."
    p = parse_criterion(
        _ct(
            "A pretreatment creatinine clearance (CrCl) of >= 60 mL/minute (min), calculated by Cockcroft-Gault"
        )
    )
    assert ("creatinine_clearance", "ge", 60, "mL/min") in _leaves(p.criterion)


def test_alt_ast_times_uln() -> None:
    # NCT00924326: "Serum alanine aminotransferase (ALT)/aspartate aminotransferase (AST) less or equal to 5
    # times the upper limit of normal."
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


# --- comparators, units and structure (real record text, unescaped; values asserted from the text) ---

# (record, section, criterion text as the record gives it): checked against ../shared/data below
ACT_QUOTES: list[tuple[str, Section, str]] = [
    ("NCT00968760", "inclusion", "Serum creatinine </= 1.8mg/dL or creatinine clearance >/= 40 cc/min."),
    (
        "NCT00924326",
        "inclusion",
        "Greater than or equal to 18 years of age and less than or equal to age 70.",
    ),
    ("NCT03098355", "inclusion", "≥1 years old and ≤14 years."),
    ("NCT02728882", "inclusion", "Age 3 to 75 years old, both male and female;"),
    ("NCT03287817", "inclusion", "Haemoglobin ≥80 g/L."),
    (
        "NCT02153580",
        "inclusion",
        "Patients must have an alanine aminotransferase (ALT) and aspartate aminotransferase (AST) =< 2.5 times "
        "the institutional upper limits of normal",
    ),
    (
        "NCT01722149",
        "inclusion",
        "Hepatic: aspartate transaminase (AST) and alanine transaminase (ALT) </= 2.5 times upper limit of "
        "normal (ULN)); bilirubin </= 1.5 x ULN,",
    ),
    (
        "NCT02315612",
        "inclusion",
        "Greater than or equal to 3 years of age (and at least 14.5 kg) and less than or equal to 39 years of "
        "age at time of enrollment.",
    ),
    ("NCT00085930", "inclusion", "Patients must not be pregnant or lactating"),
    (
        "NCT00085930",
        "inclusion",
        "Patients must have Karnofsky score of > 60% if > 10 years old or Lansky performance score of greater "
        "than 60% if 10 years old or younger",
    ),
    (
        "NCT02690545",
        "inclusion",
        "Karnofsky or Lansky score of >60% (Karnofsky for ≥16 years old and Lansky for <16 years old)",
    ),
    (
        "NCT02830724",
        "inclusion",
        "NOTE: Certain malignancies may secrete hormones that produce false positive pregnancy tests.",
    ),
    ("NCT01319565", "exclusion", "In patients > 60 years old, documented LVEF of less than or equal to 45%."),
    ("NCT00091611", "inclusion", "Life expectancy of greater than three months."),
    ("NCT00085930", "inclusion", "Patients must have a life expectancy of at least 12 weeks"),
    (
        "NCT02737085",
        "inclusion",
        "Patients are expected to survive for more than 3 months by their physicians at the time of enrollment.",
    ),
    (
        "NCT01087294",
        "inclusion",
        "Donor engraftment after alloHSCT (>50% donor chimerism of the blood T cells or whole blood leukocytes "
        "or whole bone marrow).",
    ),
    (
        "NCT00200577",
        "exclusion",
        "Patients must not have received any Chemotherapy, immunotherapy or radiotherapy within the preceding 4 "
        "weeks (6 weeks since prior nitrosurea and mitomycin C therapies).",
    ),
    ("NCT03356795", "inclusion", "Age: ≥ 18 years and ≤ 70 years."),
    (
        "NCT01955460",
        "inclusion",
        "Patients must have at least one biopsiable measurable metastatic melanoma, lesion > or = to 1 cm "
        "(Turnstile II)",
    ),
    (
        "NCT03672851",
        "exclusion",
        "Undergone prior allogeneic stem cell transplant, GVHD occurred within 6 months, requiring "
        "immunosuppressive therapy;",
    ),
]


def _quote(nct: str, start: str) -> tuple[Section, str]:
    hits = [(sec, text) for n, sec, text in ACT_QUOTES if n == nct and text.startswith(start)]
    assert len(hits) == 1, (nct, start)
    return hits[0]


def _parse_quote(nct: str, start: str) -> Any:
    section, text = _quote(nct, start)
    return parse_criterion(_ct(text, section))


@pytest.mark.shared
def test_quotes_are_real_record_text() -> None:
    records = dict(_act_records())
    for nct, section, text in ACT_QUOTES:
        cts = split_criteria(records[nct])
        assert any(text in ct.text and ct.section == section for ct in cts), (nct, text)


def test_markdown_slash_comparators() -> None:
    # NCT00968760: "\</=" and "\>/=" (unescaped "</=", ">/=") were read as "=" before
    p = _parse_quote("NCT00968760", "Serum creatinine")
    assert p.status == "typed"
    assert p.criterion.any_of is not None  # "or": either value qualifies
    assert set(_leaves(p.criterion)) == {
        ("creatinine", "le", 1.8, "mg/dL"),
        ("creatinine_clearance", "ge", 40, "mL/min"),
    }


def test_age_bounds_written_apart() -> None:
    # NCT00924326: the upper bound names "age" after the comparator
    p = _parse_quote("NCT00924326", "Greater than or equal to 18")
    assert _leaves(p.criterion) == [("age_years", "ge", 18, "a"), ("age_years", "le", 70, "a")]
    # NCT03098355: two bounds joined by "and" share the entity
    q = _parse_quote("NCT03098355", "≥1 years")
    assert set(_leaves(q.criterion)) == {("age_years", "ge", 1, "a"), ("age_years", "le", 14, "a")}
    # NCT03356795
    r = _parse_quote("NCT03356795", "Age:")
    assert set(_leaves(r.criterion)) == {("age_years", "ge", 18, "a"), ("age_years", "le", 70, "a")}
    # NCT02728882: "3 to 75 years old" is a range of ages, not a count
    s = _parse_quote("NCT02728882", "Age 3 to 75")
    assert set(_leaves(s.criterion)) == {("age_years", "ge", 3, "a"), ("age_years", "le", 75, "a")}


def test_hemoglobin_grams_per_litre() -> None:
    # NCT03287817: "g/L" is grams per litre (80 g/L = 8 g/dL), not "G/L" (10^9/L)
    p = _parse_quote("NCT03287817", "Haemoglobin")
    assert p.status == "typed" and _leaves(p.criterion) == [("hemoglobin", "ge", 8.0, "g/dL")]


def test_uln_phrasings() -> None:
    # NCT02153580: "times the institutional upper limits of normal"
    p = _parse_quote("NCT02153580", "Patients must have an alanine")
    assert p.status == "typed"
    assert set(_leaves(p.criterion)) == {
        ("alt_x_uln", "le", 2.5, "{xULN}"),
        ("ast_x_uln", "le", 2.5, "{xULN}"),
    }
    # NCT01722149: "times upper limit of normal (ULN))" and "x ULN" in one criterion
    q = _parse_quote("NCT01722149", "Hepatic:")
    assert set(_leaves(q.criterion)) == {
        ("ast_x_uln", "le", 2.5, "{xULN}"),
        ("alt_x_uln", "le", 2.5, "{xULN}"),
        ("bilirubin_x_uln", "le", 1.5, "{xULN}"),
    }


def test_an_untyped_comparison_is_never_dropped() -> None:
    # NCT02315612: the weight minimum has no fact; the criterion is partial, not typed
    p = _parse_quote("NCT02315612", "Greater than or equal to 3")
    assert p.status == "partial"
    assert ("age_years", "ge", 3, "a") in _leaves(p.criterion) and ("age_years", "le", 39, "a") in _leaves(
        p.criterion
    )
    assert any("14.5 kg" in n for n in p.notes)
    assert any(n.fact == "needs_review" for n in p.criterion.walk())


def test_negation_covers_the_whole_list() -> None:
    # NCT00085930: "must not be pregnant or lactating" (it used to require lactation)
    p = _parse_quote("NCT00085930", "Patients must not be pregnant")
    assert p.status == "typed"
    assert set(_leaves(p.criterion)) == {
        ("pregnant", "eq", False, None),
        ("breastfeeding", "eq", False, None),
    }


def test_values_for_a_subgroup_go_to_review() -> None:
    # NCT00085930: Karnofsky for > 10 years old, Lansky for younger children
    assert _parse_quote("NCT00085930", "Patients must have Karnofsky").status == "review"
    # NCT02690545: the ages in parentheses say to whom each scale applies
    p = _parse_quote("NCT02690545", "Karnofsky or Lansky")
    assert p.status == "review" and p.criterion.fact == "needs_review"
    assert any("subgroup" in n for n in p.notes)
    # NCT01319565 exclusion: "In patients > 60 years old, ... LVEF <= 45%"
    assert _parse_quote("NCT01319565", "In patients").status == "review"


def test_notes_and_study_parts_go_to_review() -> None:
    # NCT02830724: a note about false-positive pregnancy tests is not a requirement to be pregnant
    p = _parse_quote("NCT02830724", "NOTE:")
    assert p.status == "review"
    assert not any(leaf.fact == "pregnant" for leaf in p.leaves)


def test_life_expectancy_phrasings() -> None:
    # NCT00091611: number words
    p = _parse_quote("NCT00091611", "Life expectancy")
    assert _leaves(p.criterion) == [("life_expectancy_months", "gt", 3, "mo")]
    # NCT00085930: weeks converted to months (12 weeks = 2.76 months)
    q = _parse_quote("NCT00085930", "Patients must have a life")
    ((fact, op, value, unit),) = _leaves(q.criterion)
    assert (fact, op, unit) == ("life_expectancy_months", "ge", "mo") and value == pytest.approx(
        2.76, abs=0.01
    )
    # NCT02737085: "expected to survive for more than 3 months" ("for" is not a time window here)
    r = _parse_quote("NCT02737085", "Patients are expected")
    assert ("life_expectancy_months", "gt", 3, "mo") in _leaves(r.criterion)


def test_donor_word_alone_is_not_a_donor_criterion() -> None:
    # NCT01087294: the patient's engraftment of donor cells after an allogeneic transplant
    p = _parse_quote("NCT01087294", "Donor engraftment")
    assert p.typed and ("prior_transplant", "has_any", ("allogeneic",), None) in _leaves(p.criterion)
    assert not any("about the donor" in n for n in p.notes)
    # a criterion whose subject is the donor (NCT01087294 "3. Donors must not be pregnant.")
    assert any("about the donor" in n for n in parse_criterion(_ct("Donors must not be pregnant.")).notes)


def test_negated_requirement_listed_as_exclusion_goes_to_review() -> None:
    # NCT00200577 exclusion: read literally, "must not have received ... within 4 weeks" would exclude
    # the patients whose last chemotherapy was more than 4 weeks ago
    p = _parse_quote("NCT00200577", "Patients must not have received")
    assert p.status == "review"
    assert any("negated requirement" in n for n in p.notes)


def test_transplant_window_of_another_event_is_not_typed() -> None:
    # NCT03672851 exclusion: the 6 months are about GVHD, not about the transplant
    p = _parse_quote("NCT03672851", "Undergone prior allogeneic")
    assert not any(leaf.fact == "months_since_allogeneic_transplant" for leaf in p.leaves)


def test_comparator_words_with_or_equal() -> None:
    # NCT01955460: "> or = to 1 cm"
    _section, text = _quote("NCT01955460", "Patients must have at least one")
    th = next(t for t in find_thresholds(text) if t.unit == "cm")
    assert (th.op, th.value) == ("ge", 1.0)


def test_score_list_is_one_of_the_values() -> None:
    # NCT00924326: "ECOG 0 or 1" is a list (eq with several values), typed as ECOG <= 1
    th = find_thresholds("Clinical performance status of Eastern Cooperative Oncology Group (ECOG) 0 or 1.")[
        0
    ]
    assert (th.op, th.values, th.entity) == ("eq", (0.0, 1.0), "ecog")


# --- LCT corpus text (Leaf Clinical Trials, MIT; real ClinicalTrials.gov criteria): threshold reading ---


def test_lct_blood_pressure_pair() -> None:
    # NCT03868683: "Normal blood pressure <140/90 mmHg": one comparison, systolic and diastolic
    (th,) = find_thresholds("Normal blood pressure <140/90 mmHg")
    assert (th.op, th.values, th.unit) == ("lt", (140.0, 90.0), "mm[Hg]")


def test_lct_decimal_comma() -> None:
    # NCT03868657: "BMI ≥18,5 and ≤27,5"
    assert [(t.op, t.value) for t in find_thresholds("BMI ≥18,5 and ≤27,5")] == [("ge", 18.5), ("le", 27.5)]
    # NCT03866421: "fasting glucose concentration < 7,0 mmol/ l"
    (th,) = find_thresholds("fasting glucose concentration < 7,0 mmol/ l")
    assert (th.op, th.value, th.unit) == ("lt", 7.0, "mmol/L")


def test_lct_coordinated_bounds_share_unit_and_entity() -> None:
    # NCT03921918: "Infant is ≥1 and ≤6 month old": the first bound takes the unit written after the second
    a, b = find_thresholds("Infant is ≥1 and ≤6 month old")
    assert (a.op, a.value, a.unit) == ("ge", 1.0, "mo") and (b.op, b.value, b.unit) == ("le", 6.0, "mo")
    assert not a.temporal and not b.temporal
    # NCT03868657: "Age ≥20 and ≤40 years"
    lo, hi = find_thresholds("Age ≥20 and ≤40 years")
    assert lo.entity == hi.entity == "age_years" and (lo.value, hi.value) == (20.0, 40.0)


def test_lct_ages_without_comparator_symbols() -> None:
    # NCT03921515: "18 and 65 years old for healthy volunteers" is a range of ages
    (th,) = find_thresholds("18 and 65 years old for healthy volunteers;")
    assert (th.op, th.values, th.unit) == ("between", (18.0, 65.0), "a")
    # NCT03869918: "age 60+ years"; NCT03865199: "Women aged 18 or older undergoing ..."
    assert [(t.op, t.value) for t in find_thresholds("age 60+ years")] == [("ge", 60.0)]
    assert [
        (t.op, t.value) for t in find_thresholds("Women aged 18 or older undergoing medical abortion")
    ] == [("ge", 18.0)]
    # NCT03862105: "Minimum Age: 18 Years Maximum Age: 99 Years"
    ths = find_thresholds("Minimum Age: 18 Years Maximum Age: 99 Years Sex: All")
    assert [(t.op, t.value, t.entity) for t in ths] == [("ge", 18.0, "age_years"), ("le", 99.0, "age_years")]


def test_lct_counts_rates_scales_dates() -> None:
    # NCT03863366: a rate is a threshold, with its count noun in the unit
    (th,) = find_thresholds("Smoker > 5 cigarettes per day")
    assert (th.op, th.value, th.unit) == ("gt", 5.0, "{cigarettes}/d")
    # NCT03926351: "more than 2 times a week" counts occasions; NCT03923790: "at least one of the following"
    assert find_thresholds("Fish meal intake more than 2 times a week") == []
    assert find_thresholds("Presence of at least one of the following high risk criteria: uninsured") == []
    # NCT03928093: "> 4/10" is a score on a 0-10 scale; "on a 0-10 VAS scale" describes the scale
    (th,) = find_thresholds("Pain intensity of > 4/10 on a 0-10 VAS scale measured daily")
    assert (th.op, th.value, th.unit) == ("gt", 4.0, "{score}")
    # NCT03925831: calendar years; NCT03862417: a sample size
    assert find_thresholds("Individuals died from cancer between 2008 and 2017.") == []
    assert all(t.value != 20 for t in find_thresholds("degenerative scoliosis (n=20) with pain (>2/10)"))
    # NCT03924076: signed values
    assert [(t.op, t.value) for t in find_thresholds("slightly underweight z-score > -3.")] == [("gt", -3.0)]


def test_lct_life_expectancy_shorter_than() -> None:
    # NCT03860194: "Subject's life expectancy was shorter than 6 months"
    (th,) = find_thresholds("Subject's life expectancy was shorter than 6 months")
    assert (th.op, th.value, th.unit, th.entity, th.temporal) == (
        "lt",
        6.0,
        "mo",
        "life_expectancy_months",
        False,
    )


# --- legacy (pre-2017) ClinicalTrials.gov text; the records are in ../shared/data/hint-top-trial-outcome ---


def test_exclusion_naming_women_does_not_exclude_every_woman() -> None:
    # NCT00660036 exclusion: "Women who are pregnant or breastfeeding."
    p = parse_criterion(_ct("Women who are pregnant or breastfeeding.", "exclusion"))
    assert p.status == "typed" and p.criterion.not_ is not None
    assert set(_leaves(p.criterion)) == {("pregnant", "eq", True, None), ("breastfeeding", "eq", True, None)}


def test_not_limited_to_is_not_a_negation() -> None:
    # NCT00456989 exclusion: "including, but not limited to, ongoing or active infection" excludes infection;
    # read as a negation it excluded every patient without one
    p = parse_criterion(
        _ct(
            "Uncontrolled intercurrent illness including, but not limited to, ongoing or active infection, "
            "symptomatic congestive heart failure, unstable angina pectoris, cardiac arrhythmia, or psychiatric "
            "illness",
            "exclusion",
        )
    )
    assert p.criterion.not_ is not None
    assert ("active_infection", "eq", True, None) in _leaves(p.criterion)
    assert ("active_infection", "eq", False, None) not in _leaves(p.criterion)


def test_pdq_paragraph_parses_field_by_field() -> None:
    # NCT00003005: "PATIENT CHARACTERISTICS: Age: 18 and over Performance status: Karnofsky greater than 70%
    # ... Other: Not pregnant or nursing ..." (one paragraph in the record)
    text = (
        "PATIENT CHARACTERISTICS: Age: 18 and over Performance status: Karnofsky greater than 70%\n"
        "        Renal: Creatinine no greater than 1.5 mg/dL Other: Not pregnant or nursing"
    )
    parsed = {ct.text: parse_criterion(ct) for ct in split_criteria(text)}
    assert _leaves(parsed["Age: 18 and over"].criterion) == [("age_years", "ge", 18, "a")]
    assert ("karnofsky", "ge", 71, "{score}") in _leaves(
        parsed["Performance status: Karnofsky greater than 70%"].criterion
    )
    assert _leaves(parsed["Renal: Creatinine no greater than 1.5 mg/dL"].criterion) == [
        ("creatinine", "le", 1.5, "mg/dL")
    ]
    assert set(_leaves(parsed["Other: Not pregnant or nursing"].criterion)) == {
        ("pregnant", "eq", False, None),
        ("breastfeeding", "eq", False, None),
    }
