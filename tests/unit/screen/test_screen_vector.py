"""The vectorised screen gives the single-patient engine's verdicts, scores and unknowns exactly."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from actnav.eligibility.engine import CriterionResult, Result
from actnav.eligibility.evaluate import evaluate_patient
from actnav.knowledge.loader import load_knowledge
from actnav.knowledge.models import Criterion
from actnav.patient.fhir import patient_from_bundle
from actnav.patient.models import PatientRecord
from actnav.screen.records import record_from_resources
from actnav.screen.synthetic import generate
from actnav.screen.vector import ScreenPlan, targets

AS_OF = date(2026, 11, 29)
EXAMPLES = sorted((Path(__file__).parents[3] / "examples" / "patients").glob("*.json"))


def _unknown_facts(node: Criterion, result: CriterionResult) -> set[str]:
    """Facts of the unknown leaves reached through unknown nodes (walking both trees)."""
    if result.result is not Result.UNKNOWN:
        return set()
    if node.fact is not None:
        return {node.fact}
    return {f for n, r in zip(node.children, result.children, strict=True) for f in _unknown_facts(n, r)}


def _expected(records: list[PatientRecord]) -> dict[tuple[str, str], tuple[str, float, list[str]]]:
    kb = load_knowledge()
    trees = {t.id: t.trees for t in targets(kb, AS_OF)}
    out = {}
    for record in records:
        evaluation = evaluate_patient(record, as_of=AS_OF, knowledge=kb)
        for product in evaluation.products:
            for ind in product.indications:
                tid = f"{product.id}/{ind.id}"
                met = sum(1 for c in ind.criteria if c.result is Result.MET)
                unknown: set[str] = set()
                if ind.verdict.value == "needs_information":
                    for node, result in zip(trees[tid], ind.criteria, strict=True):
                        unknown |= _unknown_facts(node, result)
                out[(record.id, tid)] = (
                    ind.verdict.value,
                    round(100.0 * met / len(ind.criteria), 1),
                    sorted(unknown),
                )
    return out


def _screened(records: list[PatientRecord]) -> dict[tuple[str, str], tuple[str, float, list[str]]]:
    plan = ScreenPlan(load_knowledge(), AS_OF)
    rows = plan.evaluate(plan.fact_table(records), [r.id for r in records]).to_pylist()
    return {(r["patient"], r["target"]): (r["verdict"], r["score"], r["unknowns"]) for r in rows}


def test_examples_equal_single_patient_engine() -> None:
    records = [patient_from_bundle(json.loads(p.read_text()), as_of=AS_OF) for p in EXAMPLES]
    assert len(records) == 15
    assert _screened(records) == _expected(records)


def test_synthetic_sample_equals_single_patient_engine() -> None:
    records = [record_from_resources(r, as_of=AS_OF) for r in generate(240, seed=7, as_of=AS_OF)]
    screened, expected = _screened(records), _expected(records)
    assert screened == expected
    verdicts = {v for v, _, _ in screened.values()}
    assert verdicts == {"eligible", "needs_information", "not_eligible"}  # every branch exercised


def test_all_product_indications_in_force_are_screened() -> None:
    # The 2026-11-29 knowledge base: 9 products; an indication appears once per label revision in force.
    ids = [t.id for t in targets(load_knowledge(), AS_OF)]
    assert len(ids) == len(set(ids))
    assert {i.split("/")[0] for i in ids} == {
        "afamitresgene_autoleucel", "axicabtagene_ciloleucel", "brexucabtagene_autoleucel",
        "ciltacabtagene_autoleucel", "idecabtagene_vicleucel", "lifileucel",
        "lisocabtagene_maraleucel", "obecabtagene_autoleucel", "tisagenlecleucel",
    }  # fmt: skip


def test_deceased_patient_is_not_eligible_anywhere() -> None:
    record = patient_from_bundle(json.loads(EXAMPLES[0].read_text()), as_of=AS_OF)
    dead = record.model_copy(update={"deceased": True})
    screened = _screened([dead])
    assert {v for v, _, _ in screened.values()} == {"not_eligible"}
    assert screened == _expected([dead])


def test_empty_partition() -> None:
    plan = ScreenPlan(load_knowledge(), AS_OF)
    assert plan.evaluate(plan.fact_table([]), []).num_rows == 0


@pytest.mark.parametrize("op", ["has_any", "has_all", "has_none"])
def test_partially_tested_set_follows_leaf_rule(op: str) -> None:
    from actnav.eligibility.engine import FactValue, leaf_result
    from actnav.screen.vector import MET, NOT_MET, UNKNOWN, FactTable

    leaf = Criterion(id="x", text="x", fact="hla_a_p_groups", op=op, value=("A*02:01P", "A*02:05P"))
    cases = [
        FactValue(fact="hla_a_p_groups", value=("A*02:01P",), tested=("A*02:01P",)),
        FactValue(fact="hla_a_p_groups", value=(), tested=("A*02:01P", "A*02:05P")),
        FactValue(fact="hla_a_p_groups", value=(), tested=("A*02:01P",)),
        FactValue(fact="hla_a_p_groups", value=("A*02:05P",)),
        FactValue(fact="hla_a_p_groups", value=None, reason="HLA typing"),
    ]
    plan = ScreenPlan(load_knowledge(), AS_OF)
    table = FactTable(n=len(cases))
    import numpy as np

    known = np.array([c.value is not None for c in cases])
    table.set_known["hla_a_p_groups"] = known
    for code in ("A*02:01P", "A*02:05P"):
        present = np.array([code in (c.value or ()) for c in cases])
        decided = np.array([c.tested is None or code in c.tested for c in cases]) | present
        table.sets[("hla_a_p_groups", code)] = (present & known, decided & known)
    code = {Result.MET: MET, Result.NOT_MET: NOT_MET, Result.UNKNOWN: UNKNOWN}
    assert plan.leaf(leaf, table).tolist() == [code[leaf_result(leaf, c)] for c in cases]
