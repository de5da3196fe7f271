"""The disease tier that leads the trial ranking (docs/trial-matching.md, "Relevance, score and rank").

The concept hierarchy is diagnoses.yaml's: DLBCL NOS < large B-cell lymphoma < B-cell lymphoma <
lymphoma < haematological malignancy; multiple myeloma < haematological malignancy.
"""

from __future__ import annotations

import pytest

from actnav.patient.terminology import concept_lineage
from actnav.trials.match import PatientProfile, _relevance, disease_tier


def profile(concept: str) -> PatientProfile:
    return PatientProfile(concepts=frozenset(concept_lineage(concept)), diagnosis_text=concept)


def tier(patient: str, trial: str) -> int:
    rel = _relevance(profile(patient), frozenset({trial}), None, ())
    return disease_tier(rel.diagnosis, rel.less_specific)


@pytest.mark.parametrize(
    ("patient", "trial", "expected"),
    [
        ("multiple_myeloma", "multiple_myeloma", 0),  # the patient's own disease
        ("dlbcl_nos", "lymphoma", 0),  # a lymphoma trial names an ancestor of DLBCL
        ("b_cell_lymphoma", "dlbcl_nos", 1),  # B-cell lymphoma NOS may be DLBCL: cannot tell
        ("multiple_myeloma", "hematologic_malignancy", 1),  # a broad match only
        ("multiple_myeloma", "lymphoma", 2),  # another disease
        ("dlbcl_nos", "fl", 2),  # a sibling is another disease
        ("melanoma", "multiple_myeloma", 2),
    ],
)
def test_disease_tier(patient: str, trial: str, expected: int) -> None:
    assert tier(patient, trial) == expected


def test_an_unknown_diagnosis_is_the_middle_tier() -> None:
    rel = _relevance(PatientProfile(concepts=None, diagnosis_text=""), frozenset({"lymphoma"}), None, ())
    assert disease_tier(rel.diagnosis, rel.less_specific) == 1
