"""The 10 Synthea FHIR R4 oncology bundles of ../shared import without error.

Source of the expectations: shared/data/synthea-fhir-r4-oncology/index.csv (patient id, gender,
birth date, deceased date, cancer conditions, entry counts) and SOURCE.md (Synthea models no
leukaemia, lymphoma or myeloma). The expected concepts per bundle restate the cancer conditions
of index.csv in actnav's concepts; "Darin_Skiles" is the exception: his colon cancer Condition has
clinicalStatus "resolved" (abated 2018-06-27) and resolved conditions are not imported
(docs/fhir-input.md).

../shared is found from this file's location; when it is absent the tests skip with the reason,
except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from datetime import date
from functools import cache
from pathlib import Path

import pytest

from actnav.patient.fhir import READ_TYPES, read_bundle
from actnav.patient.models import PatientRecord

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SYNTHEA = SHARED / "data" / "synthea-fhir-r4-oncology"
AS_OF = date(2026, 11, 29)

pytestmark = pytest.mark.shared

# bundle file prefix -> concepts its active cancer conditions must map to (index.csv cancer_conditions)
EXPECTED: dict[str, set[str]] = {
    "Darin_Skiles": set(),  # primary colon cancer, resolved: not imported
    "Florentino_Mertz": {"colorectal_cancer"},  # Primary malignant neoplasm of colon
    "Micah_Schinner": {"metastatic_disease"},  # Secondary malignant neoplasm of colon
    "Andy_Schaden": {"prostate_cancer"},  # Neoplasm of prostate (+ carcinoma in situ: not a cancer concept)
    "Adan_Pulido": {"prostate_cancer", "metastatic_disease"},  # Metastasis from malignant tumor of prostate
    "Austin_Franecki": {"nsclc", "lung_cancer"},  # Non-small cell lung cancer
    "Gilbert_Wunsch": {"nsclc", "lung_cancer"},
    "Sherman_McGlynn": {"sclc", "lung_cancer", "prostate_cancer"},  # small cell lung + neoplasm of prostate
    "Whitney_Ortiz": {"colorectal_cancer"},  # Malignant tumor of colon
    "Gabriela_Streich": {"colorectal_cancer"},
}
TARGET_DISEASES = {"hematologic_malignancy", "melanoma", "sarcoma"}


def _require_shared() -> None:
    if SYNTHEA.joinpath("index.csv").exists():
        return
    message = f"{SYNTHEA.resolve()} is missing: the shared Synthea bundles are needed for this test"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@cache
def _index() -> dict[str, dict[str, str]]:
    with (SYNTHEA / "index.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {Path(r["file"]).name.rsplit("_", 1)[0]: r for r in rows}


@cache
def _record(prefix: str) -> PatientRecord:
    return read_bundle(SYNTHEA / _index()[prefix]["file"], as_of=AS_OF)


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_bundle_imports_with_demographics_of_the_index(prefix: str) -> None:
    _require_shared()
    row = _index()[prefix]
    record = _record(prefix)
    assert record.id == row["patient_id"]
    assert record.birth_date == date.fromisoformat(row["birthDate"])
    assert record.sex == row["gender"]
    if row["deceased"]:
        assert record.deceased
        assert record.deceased_date == date.fromisoformat(row["deceased"][:10])
    else:
        assert not record.deceased


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_cancer_conditions_map_to_their_non_target_concepts(prefix: str) -> None:
    _require_shared()
    concepts = {c for d in _record(prefix).diagnoses for c in d.concepts}
    cancer = concepts & {
        "colorectal_cancer",
        "nsclc",
        "sclc",
        "lung_cancer",
        "prostate_cancer",
        "metastatic_disease",
    }
    assert cancer == EXPECTED[prefix]
    # SOURCE.md: Synthea models no leukaemia, lymphoma or myeloma; none is a CAR-T/TIL/TCR-T target.
    assert not concepts & TARGET_DISEASES


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_unread_resource_types_are_counted(prefix: str) -> None:
    _require_shared()
    row = _index()[prefix]
    record = _record(prefix)
    read = 1 + sum(
        int(row[k]) for k in ("n_observations", "n_conditions", "n_medicationrequests", "n_procedures")
    )
    assert sum(record.skipped.values()) == int(row["n_entries"]) - read
    assert not set(record.skipped) & READ_TYPES
    assert {"Claim", "Encounter", "ExplanationOfBenefit"} <= set(record.skipped)


def test_platelets_in_thousands_per_microlitre_keep_their_number() -> None:
    # UCUM: 10*3/uL = 10^3 / 10^-6 L = 10*9/L, so the value is unchanged.
    _require_shared()
    path = SYNTHEA / _index()["Gilbert_Wunsch"]["file"]
    raw = json.loads(gzip.decompress(path.read_bytes()))
    written = sorted(
        e["resource"]["valueQuantity"]["value"]
        for e in raw["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "777-3"
    )
    imported = sorted(m.value for m in _record("Gilbert_Wunsch").measurements if m.key == "platelets")
    assert written and imported == pytest.approx(written)


def test_synthea_chemotherapy_is_recognised() -> None:
    # Gilbert_Wunsch's NSCLC: MedicationRequests "Cisplatin 50 MG Injection", "PACLitaxel 100 MG Injection".
    _require_shared()
    agents = {a for t in _record("Gilbert_Wunsch").therapies for a in t.agents}
    assert {"cisplatin", "paclitaxel"} <= agents
    assert _record("Gilbert_Wunsch").treatment_history_recorded
