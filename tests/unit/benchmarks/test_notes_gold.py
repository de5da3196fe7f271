"""The notes gold standard: faithful copies of the shared topics, valid codes and known keys."""

from __future__ import annotations

import json

import pytest
from benchmarks.notes.gold import OTHER, GoldFile, load_gold
from benchmarks.notes.selection import ONCOLOGY, SETS, select
from tests.conftest import require_shared

from actnav.patient import terminology
from actnav.patient.units import known_unit, to_unit


@pytest.fixture(scope="module")
def gold() -> GoldFile:
    return load_gold()


def test_size_and_mix(gold: GoldFile) -> None:
    assert len(gold.topics) >= 45
    assert sum(1 for t in gold.topics if not ONCOLOGY.search(t.text)) >= 10
    assert "trec-202117" in {t.id for t in gold.topics}


def test_texts_equal_the_shared_queries_and_the_selection_rule() -> None:
    bench = require_shared("data", "trialgpt-benchmarks")
    shared: dict[str, str] = {}
    for name in SETS:
        for line in (bench / name / "queries.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                shared[row["_id"]] = row["text"]
    topics = load_gold().topics
    for t in topics:
        assert t.text == shared[t.id], t.id
    chosen = select(bench.parents[1])
    assert [(t.set, t.id, t.chosen_as) for t in topics] == chosen


def test_icd10cm_codes_are_valid(gold: GoldFile) -> None:
    from actnav.patient.terminology import icd10cm_valid

    assert icd10cm_valid("C90.00") and not icd10cm_valid("C90.99")
    bad = [
        (t.id, code)
        for t in gold.topics
        for d in t.diagnoses
        for code in (d.icd10cm, *d.alternatives)
        if not icd10cm_valid(code)
    ]
    assert bad == []


def test_concepts_exist_in_diagnoses_yaml(gold: GoldFile) -> None:
    concepts = {c.id for c in terminology.diagnoses().concepts}
    used = {d.concept for t in gold.topics for d in t.diagnoses if d.concept}
    assert used - concepts == set()


def test_analytes_exist_in_labs_yaml_with_their_canonical_unit(gold: GoldFile) -> None:
    units = {a.key: a.unit for a in terminology.labs().analytes}
    converted = 0
    for t in gold.topics:
        for lab in t.labs:
            if lab.analyte.startswith(OTHER):
                # labs.yaml keys must be used as such (a canonical value is then required)
                assert lab.analyte.removeprefix(OTHER) not in units, (t.id, lab.analyte)
                continue
            assert lab.analyte in units, (t.id, lab.analyte)
            if lab.unit is None:
                continue
            assert lab.canonical_unit == units[lab.analyte], (t.id, lab.text)
            if lab.note is None and known_unit(lab.unit) is not None:
                value = to_unit(lab.value, lab.unit, units[lab.analyte], lab.text, analyte=lab.analyte)
                assert value == pytest.approx(lab.canonical_value), (t.id, lab.text)
                converted += 1
    assert converted >= 8  # the hand conversions agree with units.yaml where it knows the unit


def test_agents_exist_in_drugs_yaml_with_its_anticancer_flag(gold: GoldFile) -> None:
    agents = {a.name: a for a in terminology.drugs().agents}
    for t in gold.topics:
        for th in t.therapies:
            name = th.agent.removeprefix(OTHER).replace("_", " ")
            # An other: agent that drugs.yaml has since learnt scores as that agent (score.py
            # compares names without the prefix); its flag must then agree too.
            assert th.agent.startswith(OTHER) or name in agents, (t.id, th.agent)
            if name in agents:
                assert th.anticancer == agents[name].anticancer, (t.id, th.agent)


def test_trec_202117_holds_the_issue_acceptance_facts(gold: GoldFile) -> None:
    # issue 7 / notes brief: age 64, female, multiple myeloma (C90.0-), allogeneic + autologous
    # transplants, melphalan, prednisone, VAD (vincristine, doxorubicin, dexamethasone),
    # thalidomide, bortezomib.
    t = next(t for t in gold.topics if t.id == "trec-202117")
    assert (t.age, t.sex) == (64, "female")
    assert any(d.icd10cm.startswith("C90.0") and d.concept == "multiple_myeloma" for d in t.diagnoses)
    assert {x.type for x in t.transplants} == {"allogeneic", "autologous"}
    expected = {
        "melphalan",
        "prednisone",
        "vincristine",
        "doxorubicin",
        "dexamethasone",
        "thalidomide",
        "bortezomib",
    }
    assert expected <= {x.agent for x in t.therapies}
