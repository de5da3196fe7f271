"""The notes-extraction scorer on tiny hand-made cases; every expected number is counted by hand."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks.notes.gold import GoldTopic
from benchmarks.notes.score import Predicted, icd_category, score_topic, total

TEXT = "A 64-year-old woman with multiple myeloma and hypertension. No history of HIV. Her 40-year-old son."


def topic(**fields: Any) -> GoldTopic:
    base: dict[str, Any] = {
        "id": "trec-20219",
        "set": "trec_2021",
        "chosen_as": "first",
        "text": TEXT,
        "source": "test",
        "age": 64,
        "sex": "female",
        "diagnoses": [],
        "labs": [],
        "therapies": [],
        "transplants": [],
        "must_not": [],
    }
    base.update(fields)
    return GoldTopic.model_validate(base)


def at(words: str) -> dict[str, Any]:
    start = TEXT.index(words)
    return {"start": start, "end": start + len(words), "text": words}


def test_category_is_the_first_three_characters() -> None:
    assert icd_category("C90.00") == "C90"
    assert icd_category("i10") == "I10"


def test_perfect_age_and_sex() -> None:
    s = score_topic(topic(), [Predicted("age", "age", 64.0), Predicted("sex", "female")])
    assert (s.counts["age"].tp, s.counts["age"].fp, s.counts["age"].fn) == (1, 0, 0)
    assert (s.counts["sex"].precision, s.counts["sex"].recall, s.counts["sex"].f1) == (1.0, 1.0, 1.0)


def test_a_second_age_is_a_false_positive_and_a_wrong_sex_both_errors() -> None:
    s = score_topic(
        topic(), [Predicted("age", "age", 64.0), Predicted("age", "age", 40.0), Predicted("sex", "male")]
    )
    assert (s.counts["age"].tp, s.counts["age"].fp, s.counts["age"].fn) == (1, 1, 0)
    assert s.counts["age"].precision == 0.5
    assert (s.counts["sex"].tp, s.counts["sex"].fp, s.counts["sex"].fn) == (0, 1, 1)
    assert s.counts["sex"].f1 is None  # precision and recall are both 0


def test_diagnosis_by_category_dedupes_and_counts_the_concept_only_duplicate() -> None:
    gold = topic(
        diagnoses=[
            {"text": "multiple myeloma", "icd10cm": "C90.00", "concept": "multiple_myeloma"},
            {"text": "hypertension", "icd10cm": "I10"},
        ]
    )
    preds = [
        Predicted("diagnosis", "icd:C90"),
        Predicted("diagnosis", "icd:C90"),  # the same key twice counts once
        Predicted("diagnosis", "concept:multiple_myeloma"),  # a second fact, the C90 item is taken
    ]
    c = score_topic(gold, preds).counts["diagnosis"]
    # TP 1 (C90), FP 1 (the concept-only fact), FN 1 (I10): P = R = F1 = 1/2.
    assert (c.tp, c.fp, c.fn) == (1, 1, 1)
    assert (c.precision, c.recall, c.f1) == (0.5, 0.5, 0.5)


def test_gold_of_one_category_counts_once_and_alternatives_are_accepted() -> None:
    gold = topic(
        diagnoses=[
            {"text": "multiple myeloma", "icd10cm": "C90.00"},
            {"text": "myeloma", "icd10cm": "C90.02"},  # same category: one gold fact
            {"text": "hypertension", "icd10cm": "I10", "alternatives": ["I15.9"]},
        ]
    )
    c = score_topic(gold, [Predicted("diagnosis", "icd:C90"), Predicted("diagnosis", "icd:I15")]).counts[
        "diagnosis"
    ]
    assert (c.tp, c.fp, c.fn) == (2, 0, 0)


def test_matching_finds_the_assignment_that_pairs_most() -> None:
    # Gold A accepts I63 or I61, gold B only I61. Predicting I61 then I63 must pair I61-B and I63-A.
    gold = topic(
        diagnoses=[
            {"text": "multiple myeloma", "icd10cm": "I63.9", "alternatives": ["I61.9"]},
            {"text": "hypertension", "icd10cm": "I61.9"},
        ]
    )
    c = score_topic(gold, [Predicted("diagnosis", "icd:I61"), Predicted("diagnosis", "icd:I63")]).counts[
        "diagnosis"
    ]
    assert (c.tp, c.fp, c.fn) == (2, 0, 0)


def test_labs_match_by_analyte_and_value_within_one_percent() -> None:
    gold = topic(
        labs=[
            {"analyte": "platelets", "value": 110000, "unit": "/uL", "canonical_value": 110,
             "canonical_unit": "10*9/L", "text": "multiple"},
            {"analyte": "creatinine", "value": 3.6, "unit": "mg/dL", "canonical_value": 3.6,
             "canonical_unit": "mg/dL", "text": "myeloma"},
            {"analyte": "other:wbc", "value": 19.5, "unit": None, "text": "woman"},
        ]
    )  # fmt: skip
    preds = [
        Predicted("lab", "platelets", 110.9),  # 0.82 % off: a match
        Predicted("lab", "creatinine", 3.7),  # 2.8 % off: FP, and the gold creatinine is FN
        Predicted("lab", "other:wbc", 19.5),
    ]
    c = score_topic(gold, preds).counts["lab"]
    assert (c.tp, c.fp, c.fn) == (2, 1, 1)
    assert c.precision == pytest.approx(2 / 3)


def test_therapies_scored_in_total_and_split_by_anticancer() -> None:
    gold = topic(
        therapies=[
            {"agent": "rituximab", "anticancer": True, "text": "myeloma"},
            {"agent": "prednisone", "anticancer": False, "text": "myeloma"},
            {"agent": "other:aspirin", "anticancer": False, "text": "myeloma"},
        ]
    )
    preds = [
        Predicted("therapy", "rituximab", anticancer=True),
        Predicted("therapy", "prednisone", anticancer=False),
        Predicted("therapy", "doxorubicin", anticancer=True),
    ]
    s = score_topic(gold, preds)
    assert (s.counts["therapy"].tp, s.counts["therapy"].fp, s.counts["therapy"].fn) == (2, 1, 1)
    anti, other = s.counts["therapy_anticancer"], s.counts["therapy_other"]
    assert (anti.tp, anti.fp, anti.fn) == (1, 1, 0)
    assert (other.tp, other.fp, other.fn) == (1, 0, 1)


def test_must_not_violation_unkeyed_and_transplant() -> None:
    gold = topic(
        transplants=[{"type": "allogeneic", "text": "myeloma"}],
        must_not=[
            {"text": "No history of HIV", "why": "negated"},
            {"text": "Her 40-year-old son", "why": "family"},
        ],
    )
    preds = [
        Predicted("diagnosis", "concept:hiv_infection", **at("HIV")),
        Predicted("other", None, **at("40-year-old")),
        Predicted("sex", "female", **at("Her")),  # the pronoun names the patient: no violation
        Predicted("therapy", None, **at("hypertension")),  # maps to nothing: unkeyed, not scored
        Predicted("transplant", "allogeneic"),
        Predicted("transplant", "autologous"),
    ]
    s = score_topic(gold, preds)
    assert [v[1] for v in s.violations] == ["No history of HIV", "Her 40-year-old son"]
    assert s.counts["diagnosis"].fp == 1
    assert s.unkeyed == ["therapy 'hypertension'"]
    assert (s.counts["therapy"].tp, s.counts["therapy"].fp) == (0, 0)
    assert (s.counts["transplant"].tp, s.counts["transplant"].fp, s.counts["transplant"].fn) == (1, 1, 0)


def test_total_sums_topics_and_overall_is_the_six_types() -> None:
    a = score_topic(topic(), [Predicted("age", "age", 64.0)])  # age TP; sex FN
    b = score_topic(topic(age=None, sex=None), [Predicted("sex", "male")])  # sex FP
    t = total([a, b])
    assert (t["age"].tp, t["sex"].fp, t["sex"].fn) == (1, 1, 1)
    assert (t["overall"].tp, t["overall"].fp, t["overall"].fn) == (1, 1, 1)
    assert t["lab"].precision is None and t["lab"].recall is None


def test_other_prefix_and_underscores_do_not_matter_for_therapies_and_labs() -> None:
    gold = topic(
        therapies=[{"agent": "other:zoledronic_acid", "anticancer": False, "text": "myeloma"}],
        labs=[{"analyte": "other:free_t4", "value": 0.2, "unit": "ng/dl", "text": "woman"}],
    )
    s = score_topic(gold, [Predicted("therapy", "zoledronic acid"), Predicted("lab", "free_t4", 0.2)])
    assert (s.counts["therapy"].tp, s.counts["lab"].tp) == (1, 1)
