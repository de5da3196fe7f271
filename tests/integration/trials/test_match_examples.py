"""The example patients against the 56 real ACT trial records bundled with actnav (and the 3 API v2
samples): sensible verdicts, asserted from the record text cited beside each test.

The trials come from the bundled offline records (the database URL points at a file that does not
exist, so nothing is read or created).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from actnav.eligibility.facts import PatientFacts
from actnav.eligibility.report_model import TrialMatchReport, Verdict
from actnav.knowledge.loader import load_facts
from actnav.patient.fhir import read_bundle
from actnav.trials.search import LoadedIndex, load_trial_index, match_patient

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "patients"
AS_OF = date(2026, 11, 29)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedIndex:
    missing = tmp_path_factory.mktemp("db") / "absent" / "actnav.db"
    result = load_trial_index(f"sqlite:///{missing}")
    assert not missing.exists()  # matching never creates a database
    return result


def _match(loaded: LoadedIndex, name: str) -> TrialMatchReport:
    patient = read_bundle(EXAMPLES / name, as_of=AS_OF)
    return match_patient(patient, as_of=AS_OF, loaded=loaded, limit=None)


def test_the_bundled_records_are_the_source(loaded: LoadedIndex) -> None:
    assert loaded.source == "bundled"
    assert len(loaded.index) == 59
    assert sum(t.classification.is_act for t in loaded.index.trials) == 56


@pytest.mark.parametrize(
    "nct_id",
    [
        "NCT03391466",  # ZUMA-7: "Histologically proven large B-cell lymphoma (BCL) ..."
        "NCT03575351",  # TRANSFORM (JCAR017): "Histologically proven diffuse large B-cell lymphoma ..."
        "NCT03287817",  # CD19/22 CAR-T: "Histologically confirmed DLBCL and large B cell lymphoma ..."
    ],
)
def test_the_all_patient_is_not_eligible_for_lymphoma_only_trials_naming_the_diagnosis(
    loaded: LoadedIndex, nct_id: str
) -> None:
    report = _match(loaded, "all-second-relapse-34f.json")
    trial = next(t for t in report.trials if t.nct_id == nct_id)
    assert trial.verdict is Verdict.NOT_ELIGIBLE
    # The failed diagnosis criterion cites the patient's Condition as what was found.
    assert any(
        r.startswith("Inclusion:") and "not met (found: B-cell precursor acute lymphoblastic leukaemia" in r
        for r in trial.reasons
    ), trial.reasons


def test_the_all_patient_may_enter_a_cd19_car_t_trial_for_adults_with_b_lineage_malignancies(
    loaded: LoadedIndex,
) -> None:
    # NCT00968760, "CD19-specific T Cell Infusion in Patients With B-Lineage Lymphoid Malignancies":
    # inclusion 1 "Patients with a history of CD19+ lymphoid malignancies that are beyond first
    # remission or primary refractory to treatment" (B-ALL in second relapse qualifies), inclusion 2
    # "Age 18 to 75 years" (she is 34), structured ages 18-75. Nothing in it excludes her; ECOG/
    # Karnofsky, consent and pregnancy are still to be checked.
    report = _match(loaded, "all-second-relapse-34f.json")
    trial = next(t for t in report.trials if t.nct_id == "NCT00968760")
    assert trial.modality == "CAR-T" and "CD19" in trial.targets
    assert trial.verdict in (Verdict.ELIGIBLE, Verdict.NEEDS_INFORMATION)
    ages = [c for c in trial.criteria if c.text.startswith("Age 18 to 75")]
    assert ages and ages[0].result.result == "met"
    assert any(w.startswith("Target: CD19") for w in trial.why_listed)


def test_the_all_patient_is_not_eligible_above_a_trials_maximum_age(loaded: LoadedIndex) -> None:
    # NCT03241940 (CD19/CD22 CAR-T in children and young adults): maximumAge 30 Years; she is 34.
    report = _match(loaded, "all-second-relapse-34f.json")
    trial = next(t for t in report.trials if t.nct_id == "NCT03241940")
    assert trial.verdict is Verdict.NOT_ELIGIBLE
    assert trial.reasons[0].startswith("Record field: Maximum age 30 years (structured field): not met")


@pytest.mark.parametrize(
    ("patient", "best"),
    [
        # Spearhead 1 (afami-cel, MAGE-A4 TCR-T) is for advanced synovial sarcoma.
        ("synovial-sarcoma-a0201-mage-a4-39f.json", {"NCT04044768"}),
        # BCMA CAR-T trials for relapsed/refractory multiple myeloma.
        ("myeloma-three-lines-63m.json", {"NCT02215967", "NCT04244656"}),
    ],
)
def test_the_trials_for_the_patients_disease_rank_first(
    loaded: LoadedIndex, patient: str, best: set[str]
) -> None:
    report = _match(loaded, patient)
    top = {t.nct_id for t in report.trials[: len(best)]}
    assert top == best
    assert all(t.verdict is not Verdict.NOT_ELIGIBLE for t in report.trials[: len(best)])


@pytest.mark.parametrize("patient", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_the_pre_filter_equals_the_full_evaluation(loaded: LoadedIndex, patient: str) -> None:
    record = read_bundle(EXAMPLES / patient, as_of=AS_OF)
    index = loaded.index
    fast = index.rank(PatientFacts(record, AS_OF, load_facts()))
    full = index.rank(PatientFacts(record, AS_OF, load_facts()), full=True)
    assert fast.verdicts.tolist() == full.verdicts.tolist()
    facts = PatientFacts(record, AS_OF, load_facts())
    for match, position in zip(index.matches(facts, fast), fast.order.tolist(), strict=True):
        assert match.verdict is fast.verdict(position), match.nct_id
