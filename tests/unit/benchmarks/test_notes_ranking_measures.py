"""The measures and judgment helpers of benchmarks/notes/ranking.py, against hand-computed values.

NDCG@10 as defined by Järvelin & Kekäläinen (2002) with trec_eval's discount: DCG = sum over the
first ten places of grade / log2(rank + 1), divided by the DCG of the judged trials in ideal order.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import require_shared

ROOT = Path(__file__).resolve().parents[3]


def _load() -> ModuleType:
    # benchmarks/ is not a package (and site-packages has an unrelated "benchmarks"): load by path.
    path = ROOT / "benchmarks" / "notes" / "ranking.py"
    spec = importlib.util.spec_from_file_location("notes_ranking", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ranking = _load()

JUDGED = {"NCTA": 2, "NCTB": 1, "NCTC": 0, "NCTD": 0}
ORDER = ["NCTC", "NCTA", "NCTX", "NCTB", "NCTD"]  # NCTX is unjudged


def test_ndcg_and_precision_full_ranking() -> None:
    dcg = 0 / math.log2(2) + 2 / math.log2(3) + 0 / math.log2(4) + 1 / math.log2(5) + 0 / math.log2(6)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    got = ranking.score(ORDER, JUDGED)
    assert got.ndcg10 == pytest.approx(dcg / ideal, abs=1e-4)  # 0.6433
    assert got.p10 == pytest.approx(2 / 10)  # NCTA and NCTB (grade >= 1)
    assert got.p10_eligible == pytest.approx(1 / 10)  # NCTA only (grade 2)


def test_condensed_list_drops_unjudged_trials() -> None:
    assert ranking.condensed(ORDER, JUDGED) == ["NCTC", "NCTA", "NCTB", "NCTD"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    got = ranking.score_both(ORDER, JUDGED)["condensed"]
    assert got.ndcg10 == pytest.approx(dcg / ideal, abs=1e-4)  # 0.6697
    assert got.p10 == pytest.approx(2 / 10)


def test_ideal_order_scores_one_and_no_relevant_trial_is_undefined() -> None:
    assert ranking.score(["NCTA", "NCTB", "NCTC"], JUDGED).ndcg10 == pytest.approx(1.0)
    nothing = ranking.score(["NCTC", "NCTD"], {"NCTC": 0, "NCTD": 0})
    assert nothing.ndcg10 is None
    assert nothing.p10 == 0.0


def test_order_not_scores_decides_ties() -> None:
    # Two trials of the same grade at places 1 and 2 versus a 0 first: the order given is kept.
    judged = {"NCT2": 2, "NCT1": 0}
    assert ranking.score(["NCT1", "NCT2"], judged).ndcg10 == pytest.approx(1 / math.log2(3) / 1.0)


def test_helpers() -> None:
    assert ranking.grade_counts(JUDGED) == {0: 2, 1: 1, 2: 1}
    assert ranking.ranks(ORDER, ["NCTB", "NCTZ"]) == {"NCTB": 4, "NCTZ": None}
    assert ranking.mean([0.5, None, 1.0]) == pytest.approx(0.75)
    assert ranking.mean([None]) is None
    qrels = {"trec-20212": {"NCT1": 0}, "trec-202117": {"NCT9": 2, "NCT1": 1}, "sigir-20141": {"NCT7": 1}}
    assert ranking.usable_judgments(qrels, ["NCT1"]) == {
        "trec-20212": {"NCT1": 0},
        "trec-202117": {"NCT1": 1},
    }
    assert sorted(qrels, key=ranking.topic_sort_key) == ["sigir-20141", "trec-20212", "trec-202117"]


def test_trec_202117_judgments_of_the_shared_qrels() -> None:
    bench = require_shared("data", "trialgpt-benchmarks")
    qrels = ranking.load_qrels(bench)
    held = ["NCT02215967", "NCT03430011", "NCT04244656", "NCT00968760", "NCT03098355", "NCT00924287"]
    usable = ranking.usable_judgments(qrels, held)
    # ../shared/data/ctgov-act-trials/index.tsv, column qrels_judgments
    assert usable["trec-202117"] == {
        "NCT00968760": 0,
        "NCT02215967": 2,
        "NCT03098355": 0,
        "NCT03430011": 1,
        "NCT04244656": 1,
    }
    topics = ranking.load_topics(bench)
    assert topics["trec-202117"].set == "trec_2021"
    assert topics["trec-202117"].text.startswith("64yo woman with multiple myeloma")
    assert len([t for t in topics.values() if t.set == "sigir"]) == 59


def test_gold_extraction_keeps_the_annotated_words_as_evidence() -> None:
    from datetime import date
    from types import SimpleNamespace as NS

    text = "64yo woman with multiple myeloma, s/p allogeneic transplant; melphalan and octreotide."
    topic = NS(
        text=text,
        age=64,
        sex="female",
        diagnoses=[NS(text="multiple myeloma", icd10cm="C90.00", concept="multiple_myeloma")],
        labs=[],
        therapies=[NS(agent="melphalan", text="melphalan"), NS(agent="other:octreotide", text="octreotide")],
        transplants=[NS(type="allogeneic", text="s/p allogeneic transplant")],
    )
    extraction = ranking.gold_extraction(topic, as_of=date(2026, 11, 29))
    kinds = [(f.kind, f.concept or f.value) for f in extraction.patient_facts()]
    assert kinds == [
        ("age", None),
        ("sex", "female"),
        ("diagnosis", "multiple_myeloma"),
        ("therapy", "melphalan"),  # other: agents map to nothing actnav knows
        ("transplant", "allogeneic"),
    ]
    diagnosis = extraction.facts[2]
    assert text[diagnosis.span.start : diagnosis.span.end] == "multiple myeloma"
    assert diagnosis.codes[0].code == "C90.00"
