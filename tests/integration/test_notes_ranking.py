"""Issue 7 acceptance: TREC 2021 topic trec-202117, from its text to the ranked bundled trials.

The topic (``../shared/data/trialgpt-benchmarks/trec_2021/queries.jsonl``) is a 64-year-old woman
with multiple myeloma, relapsed after autologous and allogeneic transplants, treated with
melphalan and prednisone, VAD, thalidomide and bortezomib. The text goes through the note
extraction, the FHIR Bundle and the importer, then every bundled trial is ranked as ``actnav
match --all-trials`` ranks them. The BCMA CAR-T trials that TREC assessors judged relevant for this
topic (qrels grade 1 or 2) must rank above every trial whose conditions name other diseases.

Expected values come from the qrels (``<set>/qrels/test.tsv``) and the trial records' conditions
(``../shared/data/ctgov-act-trials/index.tsv``: NCT02215967=2, NCT03430011=1, NCT04244656=1;
NCT00968760 and NCT03098355, CD19 CAR-T for B-cell malignancies, judged 0), never from the ranker.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from tests.conftest import require_shared

from actnav.eligibility.facts import PatientFacts, age_in_years
from actnav.knowledge.loader import load_facts
from actnav.patient.models import PatientRecord
from actnav.trials.match import rank_trials
from actnav.trials.search import LoadedIndex, load_trial_index

pytestmark = pytest.mark.shared

AS_OF = date(2026, 11, 29)
TOPIC = "trec-202117"

# A condition naming myeloma is this patient's disease; these name no specific disease at all.
PATIENT_DISEASE = ("myeloma", "plasma-cell", "plasma cell")
UNSPECIFIC = {"metastatic cancer", "neoplasms", "metastases"}


def _benchmarks() -> Path:
    return require_shared("data", "trialgpt-benchmarks")


def _judgments() -> dict[str, int]:
    with (_benchmarks() / "trec_2021" / "qrels" / "test.tsv").open(encoding="utf-8", newline="") as fh:
        return {
            r["corpus-id"]: int(r["score"])
            for r in csv.DictReader(fh, delimiter="\t")
            if r["query-id"] == TOPIC
        }


def _topic_text() -> str:
    path = _benchmarks() / "trec_2021" / "queries.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["_id"] == TOPIC:
            return str(row["text"])
    raise AssertionError(f"{TOPIC} is not in {path}")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedIndex:
    missing = tmp_path_factory.mktemp("db") / "absent" / "actnav.db"
    return load_trial_index(f"sqlite:///{missing}")  # the bundled records, nothing created


@pytest.fixture(scope="module")
def patient() -> PatientRecord:
    from actnav.patient.fhir import patient_from_bundle
    from actnav.patient.notes.bundle import extraction_bundle
    from actnav.patient.notes.extract import extract_note

    extraction = extract_note(_topic_text(), as_of=AS_OF)
    return patient_from_bundle(extraction_bundle(extraction), as_of=AS_OF)


@pytest.fixture(scope="module")
def order(loaded: LoadedIndex, patient: PatientRecord) -> list[str]:
    facts = PatientFacts(patient, AS_OF, load_facts())
    _top, ranked = rank_trials(facts, loaded.index, limit=0)
    nct = [t.record.nct_id for t in loaded.index.trials]
    return [nct[p] for p in ranked.order.tolist()]


def _other_disease_trials(loaded: LoadedIndex) -> set[str]:
    """Bundled trials whose conditions name specific diseases, none of them myeloma."""
    out: set[str] = set()
    for t in loaded.index.trials:
        conditions = [c.lower() for c in t.record.conditions]
        if any(word in c for c in conditions for word in PATIENT_DISEASE):
            continue
        if conditions and not all(c in UNSPECIFIC for c in conditions):
            out.add(t.record.nct_id)
    return out


def test_the_judged_trials_we_hold(loaded: LoadedIndex) -> None:
    held = {t.record.nct_id for t in loaded.index.trials}
    judged = {nct: g for nct, g in _judgments().items() if nct in held}
    assert judged == {
        "NCT00968760": 0,
        "NCT02215967": 2,
        "NCT03098355": 0,
        "NCT03430011": 1,
        "NCT04244656": 1,
    }
    others = _other_disease_trials(loaded)
    assert {"NCT00968760", "NCT03098355"} <= others  # CD19 CAR-T, B-cell lymphoma/leukaemia
    assert not {"NCT02215967", "NCT03430011", "NCT04244656", "NCT03602612"} & others  # myeloma trials
    assert "NCT03412877" not in others  # a basket trial whose conditions include multiple myeloma


def test_the_extraction_gives_what_the_ranking_reads(patient: PatientRecord) -> None:
    # The topic: "64yo woman with multiple myeloma, s/p allogeneic transplant ... autologous stem
    # cell transplant ... melphalan and prednisone, followed by VAD regimen ... thalidomide velcade".
    assert age_in_years(patient.birth_date, AS_OF) == 64
    assert patient.sex == "female"
    assert any("multiple_myeloma" in d.concepts for d in patient.diagnoses)
    assert {t.type for t in patient.transplants} >= {"autologous", "allogeneic"}
    agents = {a for t in patient.therapies for a in t.agents}
    assert {"melphalan", "prednisone", "thalidomide", "bortezomib"} <= agents
    assert {"vincristine", "doxorubicin", "dexamethasone"} <= agents  # VAD


def test_judged_bcma_trials_rank_above_trials_for_other_diseases(
    loaded: LoadedIndex, order: list[str]
) -> None:
    relevant = sorted(nct for nct, g in _judgments().items() if g >= 1 and nct in order)
    assert relevant == ["NCT02215967", "NCT03430011", "NCT04244656"]
    rank = {nct: i + 1 for i, nct in enumerate(order)}
    others = _other_disease_trials(loaded)
    worst_relevant = max(rank[n] for n in relevant)
    above = sorted((rank[n], n) for n in others if rank[n] < worst_relevant)
    assert not above, f"trials for other diseases above a judged BCMA trial (rank, NCT): {above}"


def test_judged_bcma_trials_rank_above_other_diseases_with_the_same_verdict(
    loaded: LoadedIndex, patient: PatientRecord
) -> None:
    # Within one verdict too, relevance (the diagnosis) puts the myeloma trials first.
    facts = PatientFacts(patient, AS_OF, load_facts())
    _top, ranked = rank_trials(facts, loaded.index, limit=0)
    nct = [t.record.nct_id for t in loaded.index.trials]
    rank = {nct[p]: i for i, p in enumerate(ranked.order.tolist())}
    verdict = {nct[p]: ranked.verdict(p) for p in range(len(nct))}
    others = _other_disease_trials(loaded)
    for relevant in ("NCT02215967", "NCT03430011", "NCT04244656"):
        same = [n for n in others if verdict[n] is verdict[relevant] and rank[n] < rank[relevant]]
        assert not same, f"{relevant}: other-disease trials with its verdict rank above it: {same}"
