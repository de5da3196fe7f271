"""The test-set notes annotations: the gold set's faithfulness checks, disjoint from both other sets.

The code, concept, analyte and agent checks are those of test_notes_gold.py, run on testset.yaml
(a second held-out set, selection.test_topics); the rule's own checks mirror test_notes_heldout.py.
"""

from __future__ import annotations

import pytest
from benchmarks.notes import selection
from benchmarks.notes.gold import HELDOUT_FILE, TESTSET_FILE, GoldFile, load_gold
from tests.conftest import require_shared
from tests.unit.benchmarks import test_notes_gold as gold_checks


@pytest.fixture(scope="module")
def testset() -> GoldFile:
    return load_gold(TESTSET_FILE)


def test_size_per_set(testset: GoldFile) -> None:
    assert len(testset.topics) == selection.TEST_PER_SET * len(selection.SETS) == 24
    for name in selection.SETS:
        assert sum(1 for t in testset.topics if t.set == name) == selection.TEST_PER_SET


def test_disjoint_from_the_gold_and_heldout_topics(testset: GoldFile) -> None:
    gold_ids = {t.id for t in load_gold().topics}
    heldout_ids = {t.id for t in load_gold(HELDOUT_FILE).topics}
    assert (len(gold_ids), len(heldout_ids)) == (45, 24)
    assert {t.id for t in testset.topics} & (gold_ids | heldout_ids) == set()


def test_texts_equal_the_shared_queries_and_the_test_rule(testset: GoldFile) -> None:
    bench = require_shared("data", "trialgpt-benchmarks")
    shared_root = bench.parents[1]
    topics = selection.load_topics(shared_root)
    shared = {row["_id"]: row["text"] for rows in topics.values() for row in rows}
    for t in testset.topics:
        assert t.text == shared[t.id], t.id
    chosen = selection.test_topics(shared_root)
    assert [(t.set, t.id, t.chosen_as) for t in testset.topics] == chosen
    taken = {tid for _, tid, _ in selection.select(shared_root)}
    taken |= {tid for _, tid, _ in selection.heldout_topics(shared_root)}
    assert {tid for _, tid, _ in chosen} & taken == set()
    # "the last 8 by id": the remaining topics from the set's first chosen one on are the chosen ones
    for name in selection.SETS:
        ids = [tid for set_name, tid, _ in chosen if set_name == name]
        later = [
            row["_id"]
            for row in topics[name]
            if row["_id"] not in taken and selection._number(row["_id"]) >= selection._number(ids[0])
        ]
        assert later == ids, name


def test_icd10cm_codes_are_valid(testset: GoldFile) -> None:
    gold_checks.test_icd10cm_codes_are_valid(testset)


def test_concepts_exist_in_diagnoses_yaml(testset: GoldFile) -> None:
    gold_checks.test_concepts_exist_in_diagnoses_yaml(testset)


def test_analytes_exist_in_labs_yaml_with_their_canonical_unit(testset: GoldFile) -> None:
    gold_checks.test_analytes_exist_in_labs_yaml_with_their_canonical_unit(testset)


def test_agents_exist_in_drugs_yaml_with_its_anticancer_flag(testset: GoldFile) -> None:
    gold_checks.test_agents_exist_in_drugs_yaml_with_its_anticancer_flag(testset)
