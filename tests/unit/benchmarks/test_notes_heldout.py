"""The held-out notes annotations: the gold set's faithfulness checks, and disjoint from the 45 topics.

The code, concept, analyte and agent checks are those of test_notes_gold.py, run on heldout.yaml.
"""

from __future__ import annotations

import pytest
from benchmarks.notes.gold import HELDOUT_FILE, GoldFile, load_gold
from benchmarks.notes.selection import (
    HELDOUT_PER_SET,
    ONCOLOGY_SUGGESTIVE,
    SETS,
    heldout_topics,
    load_topics,
    select,
)
from tests.conftest import require_shared
from tests.unit.benchmarks import test_notes_gold as gold_checks


@pytest.fixture(scope="module")
def heldout() -> GoldFile:
    return load_gold(HELDOUT_FILE)


def test_size_per_set(heldout: GoldFile) -> None:
    assert len(heldout.topics) == HELDOUT_PER_SET * len(SETS) == 24
    for name in SETS:
        assert sum(1 for t in heldout.topics if t.set == name) == HELDOUT_PER_SET


def test_disjoint_from_the_45_gold_topics(heldout: GoldFile) -> None:
    gold_ids = {t.id for t in load_gold().topics}
    assert len(gold_ids) == 45
    assert {t.id for t in heldout.topics} & gold_ids == set()


def test_texts_equal_the_shared_queries_and_the_heldout_rule(heldout: GoldFile) -> None:
    bench = require_shared("data", "trialgpt-benchmarks")
    shared = {row["_id"]: row["text"] for rows in load_topics(bench.parents[1]).values() for row in rows}
    for t in heldout.topics:
        assert t.text == shared[t.id], t.id
    chosen = heldout_topics(bench.parents[1])
    assert [(t.set, t.id, t.chosen_as) for t in heldout.topics] == chosen
    assert {tid for _, tid, _ in chosen} & {tid for _, tid, _ in select(bench.parents[1])} == set()


def test_oncology_suggestive_abbreviations_are_case_sensitive() -> None:
    assert ONCOLOGY_SUGGESTIVE.search("relapsed ALL") is not None
    assert ONCOLOGY_SUGGESTIVE.search("all of them") is None
    assert ONCOLOGY_SUGGESTIVE.search("a Mass in the groin") is not None
    assert ONCOLOGY_SUGGESTIVE.search("massive") is None


def test_icd10cm_codes_are_valid(heldout: GoldFile) -> None:
    gold_checks.test_icd10cm_codes_are_valid(heldout)


def test_concepts_exist_in_diagnoses_yaml(heldout: GoldFile) -> None:
    gold_checks.test_concepts_exist_in_diagnoses_yaml(heldout)


def test_analytes_exist_in_labs_yaml_with_their_canonical_unit(heldout: GoldFile) -> None:
    gold_checks.test_analytes_exist_in_labs_yaml_with_their_canonical_unit(heldout)


def test_agents_exist_in_drugs_yaml_with_its_anticancer_flag(heldout: GoldFile) -> None:
    gold_checks.test_agents_exist_in_drugs_yaml_with_its_anticancer_flag(heldout)
