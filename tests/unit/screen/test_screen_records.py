"""Bulk-export resources give the same record as the bundle importer, with or without validation."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from actnav.errors import FhirImportError
from actnav.patient.fhir import patient_from_bundle
from actnav.screen.records import bundle_resources, patient_id_of, record_from_resources

AS_OF = date(2026, 11, 29)
EXAMPLES = sorted((Path(__file__).parents[3] / "examples" / "patients").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_thin_view_equals_validated_import(path: Path) -> None:
    bundle = json.loads(path.read_text())
    resources = bundle_resources(bundle)
    expected = patient_from_bundle(bundle, as_of=AS_OF)
    assert record_from_resources(resources, as_of=AS_OF) == expected
    assert record_from_resources(resources, as_of=AS_OF, validate=True) == expected


def test_patient_id_of() -> None:
    assert patient_id_of({"resourceType": "Patient", "id": "p1"}) == "p1"
    assert patient_id_of({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}) == "p1"
    assert (
        patient_id_of({"resourceType": "MedicationRequest", "subject": {"reference": "urn:uuid:p2"}}) == "p2"
    )
    assert patient_id_of({"resourceType": "Observation"}) is None


def test_date_after_as_of_is_an_input_error_without_validation() -> None:
    resources = [
        {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"},
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2027-01-01",
            "valueQuantity": {
                "value": 1.0,
                "unit": "10*3/uL",
                "system": "http://unitsofmeasure.org",
                "code": "10*3/uL",
            },
        },
    ]
    with pytest.raises(FhirImportError, match="after the evaluation date"):
        record_from_resources(resources, as_of=AS_OF)


def test_date_written_as_number_is_refused_without_validation() -> None:
    resources = [{"resourceType": "Patient", "id": "p1", "birthDate": 19700101}]
    with pytest.raises(FhirImportError):
        record_from_resources(resources, as_of=AS_OF)
