"""The pivotal-trial fitness file: one trial per product, thresholds and units as the trials set them.

Expected values come from the actnav clinical reference section 5 (trial eligibility table), with
the unit conversions done by hand: 1,000/uL = 1.0 x 10^9/L, 75,000/uL = 75 x 10^9/L,
100/uL = 0.1 x 10^9/L.
"""

from __future__ import annotations

import pytest

from actnav.eligibility.engine import FactValue, Result, evaluate
from actnav.knowledge.loader import load_knowledge
from actnav.knowledge.models import Criterion, FitnessTrial

TRIAL_PRODUCTS = {
    "zuma-1": ("axicabtagene_ciloleucel",),
    "transcend-nhl-001": ("lisocabtagene_maraleucel",),
    "juliet": ("tisagenlecleucel",),
    "eliana": ("tisagenlecleucel",),
    "karmma": ("idecabtagene_vicleucel",),
    "cartitude-1": ("ciltacabtagene_autoleucel",),
    "c-144-01": ("lifileucel",),
    "spearhead-1": ("afamitresgene_autoleucel",),
    "felix": ("obecabtagene_autoleucel",),
}


def trial(trial_id: str) -> FitnessTrial:
    for item in load_knowledge().fitness.trials:
        if item.id == trial_id:
            return item
    raise KeyError(trial_id)


def all_nodes(trial_id: str) -> list[Criterion]:
    return [n for tree in trial(trial_id).criteria for n in tree.walk()]


def criterion(trial_id: str, criterion_id: str) -> Criterion:
    (found,) = [n for n in all_nodes(trial_id) if n.id == criterion_id]
    return found


def facts_used(trial_id: str) -> set[str]:
    return {n.fact for n in all_nodes(trial_id) if n.fact is not None}


def test_the_fitness_file_has_one_entry_per_pivotal_trial_with_its_products() -> None:
    fitness = load_knowledge().fitness
    assert {t.id: t.products for t in fitness.trials} == TRIAL_PRODUCTS
    assert fitness.version == "2026-11-29"


@pytest.mark.parametrize("trial_id", sorted(TRIAL_PRODUCTS))
def test_every_trial_node_cites_a_declared_source_and_numbers_use_the_fact_unit(trial_id: str) -> None:
    knowledge = load_knowledge()
    references = knowledge.fitness.references
    assert trial(trial_id).source.ref in references
    for item in all_nodes(trial_id):
        assert item.source is not None and item.source.ref in references, item.id
        if item.fact is not None and knowledge.facts[item.fact].type == "number":
            assert item.unit == knowledge.facts[item.fact].unit, item.id


@pytest.mark.parametrize(
    ("trial_id", "criterion_id", "fact", "op", "value", "unit", "tag"),
    [
        # ZUMA-1 [V]
        ("zuma-1", "ecog-le-1", "ecog", "le", 1, "{score}", "V"),
        ("zuma-1", "anc-ge-1.0", "anc", "ge", 1.0, "10*9/L", "V"),
        ("zuma-1", "platelets-ge-75", "platelets", "ge", 75, "10*9/L", "V"),
        ("zuma-1", "alc-ge-0.1", "alc", "ge", 0.1, "10*9/L", "V"),
        ("zuma-1", "crcl-ge-60", "creatinine_clearance", "ge", 60, "mL/min", "V"),
        ("zuma-1", "alt-le-2.5-uln", "alt_x_uln", "le", 2.5, "{xULN}", "V"),
        ("zuma-1", "bilirubin-le-1.5", "bilirubin", "le", 1.5, "mg/dL", "V"),
        ("zuma-1", "lvef-ge-50", "lvef", "ge", 50, "%", "V"),
        ("zuma-1", "spo2-gt-92", "spo2", "gt", 92, "%", "V"),
        ("zuma-1", "no-cns-involvement", "cns_involvement", "eq", False, None, "V"),
        (
            "zuma-1",
            "no-prior-allogeneic-transplant",
            "prior_transplant",
            "has_none",
            ("allogeneic",),
            None,
            "R",
        ),
        # TRANSCEND NHL 001
        ("transcend-nhl-001", "ecog-le-2", "ecog", "le", 2, "{score}", "V"),
        ("transcend-nhl-001", "crcl-gt-30", "creatinine_clearance", "gt", 30, "mL/min", "R"),
        ("transcend-nhl-001", "lvef-ge-40", "lvef", "ge", 40, "%", "R"),
        # JULIET [V J]: strict ANC, 50k platelets, ALC 300/mm3
        ("juliet", "anc-gt-1.0", "anc", "gt", 1.0, "10*9/L", "V"),
        ("juliet", "platelets-ge-50", "platelets", "ge", 50, "10*9/L", "V"),
        ("juliet", "alc-ge-0.3", "alc", "ge", 0.3, "10*9/L", "V"),
        ("juliet", "hemoglobin-gt-8.0", "hemoglobin", "gt", 8.0, "g/dL", "R"),
        ("juliet", "lvef-ge-45", "lvef", "ge", 45, "%", "V"),
        ("juliet", "spo2-gt-91", "spo2", "gt", 91, "%", "V"),
        # ELIANA
        ("eliana", "age-ge-3", "age_years", "ge", 3, "a", "V"),
        (
            "eliana",
            "allogeneic-transplant-ge-6-months",
            "months_since_allogeneic_transplant",
            "ge",
            6,
            "mo",
            "R",
        ),
        # KarMMa
        ("karmma", "ecog-le-1", "ecog", "le", 1, "{score}", "V"),
        ("karmma", "crcl-ge-45", "creatinine_clearance", "ge", 45, "mL/min", "R"),
        ("karmma", "alt-lt-2.5-uln", "alt_x_uln", "lt", 2.5, "{xULN}", "R"),
        # CARTITUDE-1: ANC 750/uL
        ("cartitude-1", "anc-ge-0.75", "anc", "ge", 0.75, "10*9/L", "R"),
        ("cartitude-1", "platelets-ge-75", "platelets", "ge", 75, "10*9/L", "R"),
        ("cartitude-1", "crcl-ge-40", "creatinine_clearance", "ge", 40, "mL/min", "R"),
        # C-144-01: organ function from the NCT05607095 proxy [S*]
        ("c-144-01", "anc-ge-1.0", "anc", "ge", 1.0, "10*9/L", "S"),
        ("c-144-01", "platelets-ge-100", "platelets", "ge", 100, "10*9/L", "S"),
        ("c-144-01", "hemoglobin-ge-9.0", "hemoglobin", "ge", 9.0, "g/dL", "S"),
        ("c-144-01", "ecog-le-1", "ecog", "le", 1, "{score}", "R"),
        # SPEARHEAD-1 cohort 1: age 16 to 75 [V SH1]
        ("spearhead-1", "age-ge-16", "age_years", "ge", 16, "a", "V"),
        ("spearhead-1", "age-le-75", "age_years", "le", 75, "a", "V"),
        ("spearhead-1", "anc-gt-1.0", "anc", "gt", 1.0, "10*9/L", "S"),
        ("spearhead-1", "platelets-ge-75", "platelets", "ge", 75, "10*9/L", "S"),
        # FELIX
        ("felix", "age-ge-18", "age_years", "ge", 18, "a", "V"),
        ("felix", "ecog-le-1", "ecog", "le", 1, "{score}", "R"),
    ],
)
def test_trial_thresholds_units_and_tags_match_the_reference_table(
    trial_id: str, criterion_id: str, fact: str, op: str, value: object, unit: str | None, tag: str
) -> None:
    item = criterion(trial_id, criterion_id)
    assert (item.fact, item.op, item.unit) == (fact, op, unit)
    assert item.value == pytest.approx(value) if isinstance(value, float) else item.value == value
    assert item.source is not None and item.source.verification == tag


def test_c144_proxy_values_are_secondary_and_say_where_they_come_from() -> None:
    proxy = [n for n in all_nodes("c-144-01") if n.source and n.source.ref == "nct05607095"]
    assert proxy, "expected the NCT05607095 proxy values"
    for item in proxy:
        assert item.source is not None and item.source.verification == "S"
        assert item.source.note and "proxy from NCT05607095" in item.source.note


@pytest.mark.parametrize(
    ("trial_id", "absent"),
    [
        # "no minimum" [R] in TRANSCEND; "—" in ELIANA; [U] in FELIX: not encoded.
        ("transcend-nhl-001", {"anc", "platelets"}),
        ("eliana", {"anc", "platelets", "ecog", "cns_involvement"}),
        ("felix", {"anc", "platelets", "creatinine_clearance", "alt_x_uln", "cns_involvement"}),
        # JULIET renal rule is creatinine x ULN or eGFR per 1.73 m2: no matching fact.
        ("juliet", {"creatinine_clearance", "creatinine"}),
    ],
)
def test_cells_without_a_usable_threshold_are_not_encoded(trial_id: str, absent: set[str]) -> None:
    assert not facts_used(trial_id) & absent


@pytest.mark.parametrize("trial_id", ["eliana", "cartitude-1"])
@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"prior_transplant": ()}, Result.MET),
        ({"prior_transplant": ("autologous",)}, Result.MET),
        ({"prior_transplant": ("allogeneic",), "months_since_allogeneic_transplant": 6}, Result.MET),
        ({"prior_transplant": ("allogeneic",), "months_since_allogeneic_transplant": 5}, Result.NOT_MET),
        ({"prior_transplant": ("allogeneic",)}, Result.UNKNOWN),
    ],
)
def test_a_prior_allogeneic_transplant_must_be_at_least_6_months_old(
    trial_id: str, facts: dict, expected: Result
) -> None:
    (tree,) = [c for c in trial(trial_id).criteria if c.any_of is not None]

    def source(fact_id: str) -> FactValue:
        if fact_id in facts:
            return FactValue(fact=fact_id, value=facts[fact_id])
        return FactValue(fact=fact_id, reason="missing")

    result = evaluate(tree, source, load_knowledge().fitness.references, lambda f: f)
    assert result.result is expected
