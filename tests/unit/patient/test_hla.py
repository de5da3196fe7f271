"""HLA-A allele -> P group (actnav.patient.terminology.hla_p_group and the FHIR HLA Observation).

Sources: clinical-reference.md section 5 (afamitresgene autoleucel: A*02:01P, A*02:02P, A*02:03P,
A*02:06P eligible; A*02:05P excluded); IMGT/HLA nomenclature (a P group is named after its
lowest-numbered allele; a G group lies within one P group; N = null allele, not expressed;
fields are separated by colons, the first field is the allele group).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from actnav.patient.fhir import patient_from_bundle
from actnav.patient.terminology import hla_p_group

AS_OF = date(2026, 11, 29)


@pytest.mark.parametrize(
    ("written", "p_group"),
    [
        ("HLA-A*02:01:01:01", "A*02:01P"),
        ("A*02:01", "A*02:01P"),
        ("A*02:01P", "A*02:01P"),
        ("A*02:01:01G", "A*02:01P"),
        ("A*02:02", "A*02:02P"),
        ("A*02:03:01", "A*02:03P"),
        ("HLA-A*02:05:01", "A*02:05P"),
        ("A*02:06", "A*02:06P"),
        ("a*02:01", "A*02:01P"),  # case does not matter
        ("A*0201", "A*02:01P"),  # the pre-2010 spelling without colons
    ],
)
def test_named_a02_alleles_map_to_the_p_group_carrying_their_name(written: str, p_group: str) -> None:
    call = hla_p_group(written)
    assert call.locus == "A"
    assert call.p_group == p_group
    assert not call.known_absent


@pytest.mark.parametrize(
    "written", ["A*01:01", "HLA-A*03:01:01:01", "A*24:02", "A*11", "HLA-B*07:02", "C*07:01"]
)
def test_an_allele_outside_a02_is_known_absent_from_every_a02_group(written: str) -> None:
    call = hla_p_group(written)
    assert call.p_group is None
    assert call.known_absent


def test_one_field_a02_needs_high_resolution() -> None:
    call = hla_p_group("A*02")
    assert (call.fields, call.p_group, call.known_absent) == (1, None, False)
    assert "high-resolution" in call.note


def test_an_a02_allele_not_in_the_table_is_undetermined_with_a_note() -> None:
    call = hla_p_group("A*02:07:01")
    assert (call.p_group, call.known_absent) == (None, False)
    assert "A*02:07" in call.note


def test_a_null_allele_is_in_no_p_group() -> None:
    call = hla_p_group("A*02:01:01:02N")
    assert call.p_group is None
    assert call.known_absent


def test_fields_are_counted() -> None:
    assert hla_p_group("HLA-A*02:01:01:01").fields == 4
    assert hla_p_group("A*02:01").fields == 2


def test_text_that_is_not_an_allele_name_has_no_locus() -> None:
    assert hla_p_group("positive").locus is None


def _hla_bundle(value: dict[str, Any], code: str = "57290-9") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p", "birthDate": "1980-01-01"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": "hla",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "subject": {"reference": "Patient/p"},
                    "effectiveDateTime": "2026-01-05",
                    **value,
                }
            },
        ],
    }


def test_a_gl_string_genotype_gives_one_allele_per_position() -> None:
    record = patient_from_bundle(_hla_bundle({"valueString": "HLA-A*02:01:01:01+HLA-A*03:01"}), as_of=AS_OF)
    assert [(a.written, a.p_group, a.p_group_known_absent) for a in record.hla] == [
        ("HLA-A*02:01:01:01", "A*02:01P", False),
        ("HLA-A*03:01", None, True),
    ]
    assert {a.resource for a in record.hla} == {"Observation/hla"}
    assert all(a.date == date(2026, 1, 5) for a in record.hla)


def test_a_glstring_coding_with_namespace_is_read() -> None:
    # Genomics Reporting IG example style: system http://glstring.org, code "hla#<version>#<GL string>".
    value = {
        "valueCodeableConcept": {
            "coding": [
                {"system": "http://glstring.org", "code": "hla#3.31.0#HLA-A*02:06:01+HLA-A*24:02:01:01"}
            ]
        }
    }
    record = patient_from_bundle(_hla_bundle(value, code="84413-4"), as_of=AS_OF)
    assert [a.p_group for a in record.hla] == ["A*02:06P", None]
    assert [a.p_group_known_absent for a in record.hla] == [False, True]


def test_ambiguity_across_p_groups_leaves_the_p_group_undetermined() -> None:
    record = patient_from_bundle(_hla_bundle({"valueString": "A*02:01/A*02:05+A*01:01"}), as_of=AS_OF)
    first = record.hla[0]
    assert (first.written, first.p_group, first.p_group_known_absent) == ("A*02:01/A*02:05", None, False)
    assert any("ambiguous" in n for n in record.notes)


def test_ambiguity_within_one_p_group_keeps_it() -> None:
    record = patient_from_bundle(_hla_bundle({"valueString": "A*02:01:01:01/A*02:01:02"}), as_of=AS_OF)
    assert record.hla[0].p_group == "A*02:01P"


def test_low_resolution_typing_is_kept_with_one_field() -> None:
    record = patient_from_bundle(_hla_bundle({"valueString": "A*02+A*03"}), as_of=AS_OF)
    assert [(a.fields, a.p_group, a.p_group_known_absent) for a in record.hla] == [
        (1, None, False),
        (1, None, True),
    ]
