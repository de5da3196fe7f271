"""FHIR R4 Bundle -> PatientRecord (actnav.patient.fhir) and the terminology tables it uses.

Fixtures: tests/fixtures/fhir/ (a complete lymphoma bundle and one bad input per failure mode).
Expected values come from sources, not from the importer's output:
* counts: clinical-reference.md 6a.1 (1,500/mm3 = 1.5 x 10^9/L; /mm3 = /uL; g/L = g/dL x 10);
* creatinine 1 mg/dL = 88.42 umol/L; bilirubin 1 mg/dL = 17.1 umol/L; 1 lb = 0.45359237 kg;
  1 in = 2.54 cm (UCUM); CRP 1 mg/dL = 10 mg/L;
* LOINC 2532-0 is lactate dehydrogenase, not magnesium (clinical-reference.md section 0);
* LOINC LA9623-5 = ECOG 1 (answer list LL529-9); LA9633-4 Present, LA9634-2 Absent,
  LA6576-8 Positive, LA6577-6 Negative;
* mCODE CancerDiseaseStatus: SNOMED 550991000124107 = malignant neoplasm in full remission;
* ICD-10-CM C83.3 DLBCL, C91.02 ALL in relapse, C49 soft tissue + ICD-O-3 9040/3 synovial
  sarcoma (clinical-reference.md 7.2).
"""

from __future__ import annotations

import copy
import gzip
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from actnav.errors import EXIT_BAD_INPUT, DataFileError, FhirImportError, InputError, UnitError
from actnav.knowledge.loader import parse_file
from actnav.patient import terminology
from actnav.patient.fhir import patient_from_bundle, read_bundle
from actnav.patient.models import PatientRecord

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
DATA = Path(terminology.__file__).resolve().parents[1] / "data"
AS_OF = date(2026, 11, 29)
IDENTIFIERS = ("Testperson", "Alpha", "MRN-000123")  # in the fixtures' Patient; never in a message
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
ICDO = "http://terminology.hl7.org/CodeSystem/icd-o-3"
ACT = "https://actnav.dev/fhir/CodeSystem/actnav"


@pytest.fixture(scope="module")
def record() -> PatientRecord:
    return read_bundle(FIXTURES / "complete-lymphoma.json", as_of=AS_OF)


def by_resource(items: Any, resource: str) -> Any:
    found = [i for i in items if i.resource == resource]
    assert len(found) == 1, f"{resource}: {found}"
    return found[0]


# -- small bundles built in the tests ----------------------------------------------------------


def bundle(*resources: dict[str, Any], patient: dict[str, Any] | None = None) -> dict[str, Any]:
    pt = patient if patient is not None else {"resourceType": "Patient", "id": "p", "birthDate": "1970-03-04"}
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (pt, *resources)],
    }


def observation(
    rid: str, code: str, system: str = LOINC, when: str = "2026-11-01", **value: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when,
        **value,
    }


def condition(rid: str, *codings: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "code": {"coding": list(codings)},
        "subject": {"reference": "Patient/p"},
        **extra,
    }


def imported(*resources: dict[str, Any], **kw: Any) -> PatientRecord:
    return patient_from_bundle(bundle(*resources, **kw), as_of=AS_OF)


# -- the complete fixture ----------------------------------------------------------------------


def test_patient_demographics(record: PatientRecord) -> None:
    assert record.id == "pt-1"
    assert record.birth_date == date(1968, 5, 17)
    assert record.sex == "female"
    assert (record.deceased, record.deceased_date) == (False, None)


def test_dlbcl_maps_to_its_concept_and_every_ancestor(record: PatientRecord) -> None:
    dx = by_resource(record.diagnoses, "Condition/dx-dlbcl")
    assert dx.concepts == ("dlbcl_nos", "lbcl", "b_cell_lymphoma", "lymphoma", "hematologic_malignancy")
    assert dx.clinical_status == "active"
    assert dx.onset == date(2024, 2, 1)
    assert [c.code for c in dx.codings] == ["C83.38", "9680/3"]


def test_resolved_and_refuted_conditions_are_left_out(record: PatientRecord) -> None:
    resources = {d.resource for d in record.diagnoses}
    assert "Condition/dx-hbv-old" not in resources  # clinicalStatus resolved
    assert "Condition/dx-refuted" not in resources  # verificationStatus refuted


def test_a_condition_the_rules_do_not_know_is_kept_without_concepts(record: PatientRecord) -> None:
    assert by_resource(record.diagnoses, "Condition/dx-htn").concepts == ()


def test_a_coding_without_system_is_mapped_by_its_text(record: PatientRecord) -> None:
    assert "cns_involvement" in by_resource(record.diagnoses, "Condition/dx-cns").concepts


def test_stage_iv_is_a_metastatic_diagnosis_citing_the_observation(record: PatientRecord) -> None:
    dx = by_resource(record.diagnoses, "Observation/stage")
    assert dx.concepts == ("metastatic_disease",)
    assert dx.onset == date(2024, 2, 1)


def test_disease_course(record: PatientRecord) -> None:
    course = [(e.resource, e.status, e.date, e.focus) for e in record.disease_status]
    assert course == [
        ("Observation/ds-cr", "complete_remission", date(2024, 7, 15), None),
        ("Observation/ds-relapse", "relapse", date(2025, 6, 10), None),
        ("Observation/ds-refr", "refractory", date(2025, 10, 20), "MedicationStatement/ms-rice"),
    ]


@pytest.mark.parametrize(
    ("resource", "key", "value", "unit"),
    [
        ("Observation/lab-anc", "anc", 1.5, "10*9/L"),  # 1,500 cells/uL
        ("Observation/lab-plt", "platelets", 75.0, "10*9/L"),  # 75 x 10^3/uL
        ("Observation/lab-alc", "alc", 0.3, "10*9/L"),
        ("Observation/lab-hb", "hemoglobin", 9.5, "g/dL"),  # 95 g/L
        ("Observation/lab-crea", "creatinine", 1.0, "mg/dL"),  # 88.42 umol/L
        ("Observation/lab-crcl", "creatinine_clearance", 72.0, "mL/min"),
        ("Observation/lab-alt", "alt", 80.0, "U/L"),
        ("Observation/lab-ast", "ast", 30.0, "U/L"),  # IU/L
        ("Observation/lab-bili", "bilirubin", 1.0, "mg/dL"),  # 17.1 umol/L
        ("Observation/lab-ldh", "ldh", 310.0, "U/L"),  # 2532-0 is LDH
        ("Observation/lab-crp", "crp", 12.0, "mg/L"),  # 1.2 mg/dL
        ("Observation/vs-spo2", "spo2", 97.0, "%"),
        ("Observation/vs-weight", "weight", 69.853, "kg"),  # 154 lb x 0.45359237
        ("Observation/vs-height", "height", 165.1, "cm"),  # 65 in x 2.54
        ("Observation/echo-lvef", "lvef", 55.0, "%"),
        ("Observation/ecog-coded", "ecog", 1.0, "{score}"),  # LA9623-5
        ("Observation/ecog-int", "ecog", 2.0, "{score}"),
    ],
)
def test_measurements_are_in_the_canonical_unit(
    record: PatientRecord, resource: str, key: str, value: float, unit: str
) -> None:
    m = by_resource(record.measurements, resource)
    assert (m.key, m.unit) == (key, unit)
    assert m.value == pytest.approx(value, abs=0.002)


def test_measurements_keep_the_value_as_written_and_the_date(record: PatientRecord) -> None:
    m = by_resource(record.measurements, "Observation/lab-crea")
    assert m.original == "88.42 µmol/L"
    assert m.code == "2160-0"
    assert m.date == date(2026, 11, 2)


def test_the_upper_limit_of_normal_is_kept_converted(record: PatientRecord) -> None:
    assert by_resource(record.measurements, "Observation/lab-alt").upper_limit_normal == 40.0
    # A range without a unit is in the value's unit (IU/L = U/L).
    assert by_resource(record.measurements, "Observation/lab-ast").upper_limit_normal == 35.0


def test_entered_in_error_and_unmapped_observations_are_ignored(record: PatientRecord) -> None:
    resources = {m.resource for m in record.measurements}
    assert "Observation/lab-wrong" not in resources
    assert "Observation/vs-temp" not in resources  # body temperature: no rule uses it


def test_findings(record: PatientRecord) -> None:
    found = {(f.key, f.value, f.detail) for f in record.findings}
    assert found == {
        ("braf_v600", "positive", "p.Val600Glu"),
        ("mage_a4", "positive", "Positive"),
        ("hiv", "negative", "Negative"),
        ("hbv", "negative", "Not detected"),
        ("hcv", "negative", "<15 [IU]/mL"),  # viral load below the limit of detection
        ("transplant_ineligible", "positive", "true"),
    }


def test_hla_alleles(record: PatientRecord) -> None:
    assert [(a.written, a.p_group, a.p_group_known_absent) for a in record.hla] == [
        ("HLA-A*02:01:01:01", "A*02:01P", False),
        ("HLA-A*03:01", None, True),
    ]


def test_regimen_acronym_names_its_agents_and_line(record: PatientRecord) -> None:
    t = by_resource(record.therapies, "MedicationStatement/ms-rchop")
    assert t.agents == ("rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone")
    assert {"anti_cd20", "anthracycline", "alkylating_agent", "chemotherapy"} <= set(t.classes)
    assert (t.start, t.end, t.line, t.anticancer) == (date(2024, 2, 12), date(2024, 6, 3), 1, True)


def test_rxnorm_code_and_line_extension(record: PatientRecord) -> None:
    t = by_resource(record.therapies, "MedicationStatement/ms-rice")
    assert (t.agents, t.classes, t.line) == (("rituximab",), ("anti_cd20",), 2)


def test_contained_and_bundled_medications_are_resolved(record: PatientRecord) -> None:
    ifo = by_resource(record.therapies, "MedicationRequest/mr-ifo")
    assert ifo.agents == ("ifosfamide",)
    assert (ifo.start, ifo.end) == (date(2025, 7, 1), date(2025, 9, 1))
    carbo = by_resource(record.therapies, "MedicationAdministration/ma-carbo")
    assert carbo.agents == ("carboplatin",)


def test_corticosteroids_are_not_anticancer(record: PatientRecord) -> None:
    dex = by_resource(record.therapies, "MedicationAdministration/ma-dex")
    assert (dex.agents, dex.classes, dex.anticancer) == (("dexamethasone",), ("corticosteroid",), False)
    assert record.treatment_history_recorded


def test_cancelled_medications_are_not_therapies(record: PatientRecord) -> None:
    assert "MedicationRequest/mr-cancelled" not in {t.resource for t in record.therapies}


def test_an_unrecognised_medication_is_kept_flagged_and_never_anticancer(record: PatientRecord) -> None:
    # QA finding 7: kept so the report can say "not recognised: Amlodipine 5 MG Oral Tablet".
    t = by_resource(record.therapies, "MedicationRequest/mr-amlodipine")
    assert (t.text, t.agents, t.classes, t.anticancer, t.unrecognised) == (
        "Amlodipine 5 MG Oral Tablet",
        (),
        (),
        False,
        True,
    )
    assert t.start is not None
    assert any("1 medication resource(s)" in n for n in record.notes)
    assert not any(
        x.unrecognised for x in record.therapies if x.resource != "MedicationRequest/mr-amlodipine"
    )


def test_car_t_infusion_is_a_therapy_with_the_product(record: PatientRecord) -> None:
    t = by_resource(record.therapies, "Procedure/pr-cart")
    assert t.agents == ("axicabtagene ciloleucel",)
    assert t.classes == ("car_t", "cd19_directed")
    assert t.start == date(2025, 12, 1)


def test_transplant_type_is_read_from_the_procedure_text(record: PatientRecord) -> None:
    assert [(t.resource, t.type, t.date) for t in record.transplants] == [
        ("Procedure/pr-asct", "autologous", date(2025, 9, 20))
    ]


def test_unread_resource_types_are_counted_even_when_invalid(record: PatientRecord) -> None:
    # claim-1 is not valid FHIR: it is never parsed, so it cannot break the import.
    assert record.skipped == {"Claim": 2, "Encounter": 1}


def test_a_gzip_bundle_reads_the_same(tmp_path: Path, record: PatientRecord) -> None:
    packed = tmp_path / "bundle.json.gz"
    packed.write_bytes(gzip.compress((FIXTURES / "complete-lymphoma.json").read_bytes()))
    assert read_bundle(packed, as_of=AS_OF) == record


# -- one bad input per failure mode ------------------------------------------------------------


def _fail(name: str, error: type[Exception] = FhirImportError) -> Any:
    with pytest.raises(error) as err:
        read_bundle(FIXTURES / name, as_of=AS_OF)
    text = str(err.value)
    for identifier in IDENTIFIERS:
        assert identifier not in text
    assert getattr(err.value, "exit_code", None) == EXIT_BAD_INPUT
    return err.value


def test_invalid_json_names_line_and_column() -> None:
    err = _fail("bad-invalid-json.json")
    assert "invalid JSON at line" in err.message
    assert "column" in err.message


def test_a_resource_that_is_not_a_bundle_says_what_it_is() -> None:
    err = _fail("bad-not-a-bundle.json")
    assert err.message == "resourceType is 'Patient', not 'Bundle'"


def test_an_unconvertible_unit_names_the_element_and_the_unit() -> None:
    err = _fail("bad-unit.json", UnitError)
    assert err.where == "Observation/lab-anc.valueQuantity.unit"
    assert "'mg/dL'" in err.message


def test_an_unknown_code_system_names_the_coding_and_the_known_systems() -> None:
    err = _fail("bad-code-system.json")
    assert err.where == "Condition/dx-1.code.coding[0].system"
    assert "http://example.org/my-codes" in err.message
    for name in ("LOINC", "SNOMED CT", "ICD-10-CM", "RxNorm", "ICD-O-3"):
        assert name in (err.hint or "")


def test_a_missing_birth_date_names_the_element() -> None:
    err = _fail("bad-no-birthdate.json")
    assert err.where == "Patient/pt-1.birthDate"


def test_a_date_after_the_evaluation_date_is_an_error() -> None:
    err = _fail("bad-future-date.json")
    assert err.where == "Observation/lab-anc.effectiveDateTime"
    assert err.message == "2031-01-01 is after the evaluation date 2026-11-29"


def test_an_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the bundle file") as err:
        read_bundle(tmp_path / "absent.json", as_of=AS_OF)
    assert str(tmp_path) not in str(err.value)  # file names can carry patient names


def test_a_corrupt_gzip_file_is_an_input_error(tmp_path: Path) -> None:
    broken = tmp_path / "b.json.gz"
    broken.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(InputError, match="cannot read the bundle file"):
        read_bundle(broken, as_of=AS_OF)


def test_the_top_level_must_be_an_object() -> None:
    with pytest.raises(FhirImportError, match="the top level is an array"):
        patient_from_bundle([{"resourceType": "Bundle"}], as_of=AS_OF)


def test_a_bundle_needs_exactly_one_patient() -> None:
    with pytest.raises(FhirImportError, match="no Patient"):
        patient_from_bundle({"resourceType": "Bundle", "type": "collection", "entry": []}, as_of=AS_OF)
    second = {"resourceType": "Patient", "id": "q", "birthDate": "1990-01-01"}
    with pytest.raises(FhirImportError, match="2 Patient resources"):
        imported(second)


def test_a_birth_date_after_the_evaluation_date_is_an_error() -> None:
    with pytest.raises(FhirImportError, match="2027-01-01 is after the evaluation date") as err:
        imported(patient={"resourceType": "Patient", "id": "p", "birthDate": "2027-01-01"})
    assert err.value.where == "Patient/p.birthDate"


def test_a_resource_failing_its_r4b_model_names_type_id_and_element() -> None:
    bad = observation("x", "751-8", valueQuantity={"value": "abc", "unit": "10*9/L"})
    with pytest.raises(FhirImportError) as err:
        imported(bad)
    assert err.value.where == "Observation/x.valueQuantity.value"


def test_a_missing_required_element_fails_the_r4b_model() -> None:
    bad = observation("x", "751-8", valueQuantity={"value": 1, "unit": "10*9/L"})
    del bad["status"]
    with pytest.raises(FhirImportError) as err:
        imported(bad)
    assert err.value.where == "Observation/x.status"


def test_an_unknown_system_in_a_medication_is_an_error() -> None:
    med = {
        "resourceType": "MedicationStatement",
        "id": "m",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"coding": [{"system": "RxNorm", "code": "121191"}]},
    }
    with pytest.raises(FhirImportError) as err:
        imported(med)
    assert err.value.where == "MedicationStatement/m.medicationCodeableConcept.coding[0].system"


# -- behaviours, one small bundle each ---------------------------------------------------------


def test_an_in_relapse_icd_code_sets_in_relapse() -> None:
    record = imported(condition("c", {"system": ICD, "code": "C91.02"}))
    dx = record.diagnoses[0]
    assert dx.in_relapse
    assert dx.concepts == ("all", "leukaemia", "hematologic_malignancy")


def test_icd_o_3_histology_gives_the_all_lineage() -> None:
    record = imported(condition("c", {"system": ICD, "code": "C91.00"}, {"system": ICDO, "code": "9811/3"}))
    assert record.diagnoses[0].concepts == ("b_all", "all", "leukaemia", "hematologic_malignancy")


def test_site_code_and_histology_give_synovial_sarcoma() -> None:
    record = imported(condition("c", {"system": ICD, "code": "C49.2"}, {"system": ICDO, "code": "9040/3"}))
    assert record.diagnoses[0].concepts == ("synovial_sarcoma", "sarcoma", "solid_tumor")


def test_follicular_lymphoma_grade_3b_is_both_fl_and_lbcl() -> None:
    record = imported(condition("c", {"system": ICD, "code": "C82.48"}))
    assert set(record.diagnoses[0].concepts) == {
        "fl_grade_3b",
        "fl",
        "lbcl",
        "b_cell_lymphoma",
        "lymphoma",
        "hematologic_malignancy",
    }


def test_a_secondary_neoplasm_code_is_metastatic_disease() -> None:
    record = imported(condition("c", {"system": ICD, "code": "C78.7"}))
    assert record.diagnoses[0].concepts == ("metastatic_disease",)


def test_an_absent_clinical_status_and_remission_are_kept() -> None:
    remission = {
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "remission"}
            ]
        }
    }
    record = imported(
        condition("a", {"system": ICD, "code": "C90.00"}),
        condition("b", {"system": ICD, "code": "C90.01"}, **remission),
    )
    assert [d.clinical_status for d in record.diagnoses] == [None, "remission"]


def test_an_unmappable_coding_without_system_is_skipped_with_a_note() -> None:
    record = imported(condition("c", {"code": "X-17", "display": "Thing we do not know"}))
    assert record.diagnoses[0].concepts == ()
    assert any("Condition/c.code" in n for n in record.notes)


def test_local_unresectable_code_is_metastatic() -> None:
    record = imported(condition("c", {"system": ACT, "code": "unresectable"}))
    assert "metastatic_disease" in record.diagnoses[0].concepts


def test_condition_stage_summary_stage_iv_adds_metastatic_disease() -> None:
    staged = condition("c", {"system": ICD, "code": "C43.5"}, stage=[{"summary": {"text": "Stage IV"}}])
    assert imported(staged).diagnoses[0].concepts == (
        "cutaneous_melanoma",
        "melanoma",
        "solid_tumor",
        "metastatic_disease",
    )


def test_braf_variant_other_than_v600_is_negative_for_v600() -> None:
    variant = observation(
        "v",
        "69548-6",
        valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA9633-4"}]},
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "48018-6"}]},
                "valueCodeableConcept": {
                    "coding": [{"system": "http://www.genenames.org", "code": "HGNC:1097"}]
                },
            },
            {"code": {"coding": [{"system": LOINC, "code": "48005-3"}]}, "valueString": "p.Gly469Ala"},
        ],
    )
    record = imported(variant)
    assert [(f.key, f.value, f.detail) for f in record.findings] == [("braf_v600", "negative", "p.Gly469Ala")]
    assert any("not a V600 variant" in n for n in record.notes)


def test_braf_absent_is_negative_and_v600k_is_positive() -> None:
    gene = {
        "code": {"coding": [{"system": LOINC, "code": "48018-6"}]},
        "valueCodeableConcept": {"text": "BRAF"},
    }
    absent = observation(
        "a",
        "69548-6",
        valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA9634-2"}]},
        component=[gene],
    )
    v600k = observation(
        "k",
        "69548-6",
        valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA9633-4"}]},
        component=[
            gene,
            {"code": {"coding": [{"system": LOINC, "code": "48005-3"}]}, "valueString": "p.V600K"},
        ],
    )
    record = imported(absent, v600k)
    assert [(f.resource, f.value) for f in record.findings] == [
        ("Observation/a", "negative"),
        ("Observation/k", "positive"),
    ]


def test_a_simple_braf_observation_is_read_by_its_text() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "b",
        "status": "final",
        "code": {"text": "BRAF V600 mutation"},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2026-06-01",
        "valueString": "Not detected",
    }
    record = imported(obs)
    assert [(f.key, f.value) for f in record.findings] == [("braf_v600", "negative")]


def test_a_variant_of_another_gene_is_ignored() -> None:
    other = observation(
        "v",
        "69548-6",
        valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA9633-4"}]},
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "48018-6"}]},
                "valueCodeableConcept": {"text": "KRAS"},
            }
        ],
    )
    assert imported(other).findings == ()


def test_transplant_ineligibility_false_is_negative() -> None:
    record = imported(observation("t", "transplant-ineligible", system=ACT, valueBoolean=False))
    assert [(f.key, f.value) for f in record.findings] == [("transplant_ineligible", "negative")]


def test_disease_status_focus_through_a_bundle_reference() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "len",
        "status": "active",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"text": "lenalidomide"},
        "effectiveDateTime": "2025-01-10",
    }
    status = observation(
        "s",
        "97509-4",
        when="2026-03-01",
        valueCodeableConcept={"coding": [{"system": ACT, "code": "refractory"}]},
        focus=[{"reference": "urn:uuid:1111"}],
    )
    data = bundle(statement, status)
    data["entry"][1]["fullUrl"] = "urn:uuid:1111"
    record = patient_from_bundle(data, as_of=AS_OF)
    assert record.disease_status[0].focus == "MedicationStatement/len"


def test_snomed_trend_codes_map_to_statuses() -> None:
    statuses = [
        observation(f"s{i}", "97509-4", valueCodeableConcept={"coding": [{"system": SCT, "code": code}]})
        for i, code in enumerate(["271299001", "359746009", "268910001", "551001000124108"])
    ]
    record = imported(*statuses)
    assert [e.status for e in record.disease_status] == ["progression", "stable", "response", "response"]


def test_stage_iv_by_snomed_code_and_a_stage_ii_is_not_metastatic() -> None:
    iv = observation(
        "iv", "21902-2", valueCodeableConcept={"coding": [{"system": SCT, "code": "1222837003"}]}
    )
    ii = observation(
        "ii",
        "21908-9",
        valueCodeableConcept={"coding": [{"system": "http://cancerstaging.org", "code": "II"}]},
    )
    record = imported(iv, ii)
    assert [d.resource for d in record.diagnoses] == ["Observation/iv"]


def test_a_prescription_valid_beyond_the_evaluation_date_is_ongoing() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "r",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"text": "venetoclax 400 mg"},
        "authoredOn": "2026-10-01",
        "dispenseRequest": {"validityPeriod": {"start": "2026-10-01", "end": "2027-04-01"}},
    }
    t = imported(request).therapies[0]
    assert (t.agents, t.start, t.end) == (("venetoclax",), date(2026, 10, 1), None)


def test_a_line_of_therapy_on_an_unknown_drug_is_kept_as_anticancer() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "x",
        "status": "completed",
        "extension": [
            {"url": "https://actnav.dev/fhir/StructureDefinition/line-of-therapy", "valuePositiveInt": 3}
        ],
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"text": "investigational agent XYZ-123"},
        "effectivePeriod": {"start": "2025-01-01", "end": "2025-03-01"},
    }
    t = imported(statement).therapies[0]
    assert (t.agents, t.line, t.anticancer) == ((), 3, True)


def test_partial_dates_use_the_first_day_and_are_checked() -> None:
    record = imported(observation("a", "751-8", when="2026-11", valueQuantity={"value": 2, "unit": "10*9/L"}))
    assert record.measurements[0].date == date(2026, 11, 1)
    with pytest.raises(FhirImportError, match="2027 is after"):
        imported(observation("a", "751-8", when="2027", valueQuantity={"value": 2, "unit": "10*9/L"}))


def test_deceased_boolean_and_date() -> None:
    alive_flag = {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01", "deceasedBoolean": True}
    assert imported(patient=alive_flag).deceased
    dated = {
        "resourceType": "Patient",
        "id": "p",
        "birthDate": "1950-01-01",
        "deceasedDateTime": "2020-05-06T07:00:00Z",
    }
    record = imported(patient=dated)
    assert (record.deceased, record.deceased_date) == (True, date(2020, 5, 6))


def test_hiv_by_coded_positive_and_hbv_by_text() -> None:
    record = imported(
        observation("h", "56888-1", valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA6576-8"}]}),
        observation("b", "5196-1", valueCodeableConcept={"text": "Reactive"}),
    )
    assert [(f.key, f.value) for f in record.findings] == [("hiv", "positive"), ("hbv", "positive")]


def test_ecog_as_quantity_without_unit() -> None:
    record = imported(observation("e", "89247-1", valueQuantity={"value": 0}))
    assert (record.measurements[0].key, record.measurements[0].value) == ("ecog", 0.0)


def test_the_importer_does_not_mutate_its_input() -> None:
    data = json.loads((FIXTURES / "complete-lymphoma.json").read_text())
    before = copy.deepcopy(data)
    patient_from_bundle(data, as_of=AS_OF)
    assert data == before


# -- the terminology tables --------------------------------------------------------------------


def test_every_terminology_file_loads() -> None:
    terminology.load_all()


def test_lab_keys_and_units_agree_with_facts_yaml() -> None:
    facts = {f["id"]: f for f in yaml.safe_load((DATA / "facts.yaml").read_text())["facts"]}
    for analyte in terminology.labs().analytes:
        if analyte.key in facts:
            assert facts[analyte.key]["unit"] == analyte.unit, analyte.key
    # alt_x_uln / ast_x_uln are computed from alt / ast and their upper limit of normal.
    assert {"alt", "ast"} <= {a.key for a in terminology.labs().analytes}
    for key in (
        "anc",
        "platelets",
        "alc",
        "hemoglobin",
        "creatinine",
        "creatinine_clearance",
        "bilirubin",
        "lvef",
        "spo2",
        "ecog",
    ):
        assert key in facts


def test_loinc_2532_0_is_ldh_not_magnesium() -> None:
    lab = terminology.lab_code("2532-0")
    assert lab is not None and lab.key == "ldh"


def test_the_drug_class_vocabulary_is_exactly_the_agreed_one() -> None:
    assert set(terminology.DRUG_CLASSES) == {
        "chemotherapy", "anthracycline", "alkylating_agent", "anti_cd20", "anti_cd38",
        "proteasome_inhibitor", "imid", "anti_pd1", "anti_pdl1", "anti_ctla4", "braf_inhibitor",
        "mek_inhibitor", "btk_inhibitor", "bcl2_inhibitor", "car_t", "cd19_directed",
        "bcma_directed", "bispecific_antibody", "tyrosine_kinase_inhibitor", "corticosteroid",
    }  # fmt: skip


def test_corticosteroids_are_marked_not_anticancer_in_the_table() -> None:
    for agent in terminology.drugs().agents:
        if "corticosteroid" in agent.classes:
            assert not agent.anticancer, agent.name


def test_every_car_t_product_is_cd19_or_bcma_directed() -> None:
    for agent in terminology.drugs().agents:
        if "car_t" in agent.classes:
            assert {"cd19_directed", "bcma_directed"} & set(agent.classes), agent.name


@pytest.mark.parametrize(
    "uri",
    [
        "http://loinc.org",
        "http://snomed.info/sct",
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://hl7.org/fhir/sid/icd-10",
        "http://terminology.hl7.org/CodeSystem/icd-o-3",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
        "http://www.genenames.org",
        "http://varnomen.hgvs.org",
        "http://hl7.org/fhir/sid/cvx",
        "http://hl7.org/fhir/sid/ndc",
        "http://unitsofmeasure.org",
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
        "http://www.ebi.ac.uk/ipd/imgt/hla",
        "http://glstring.org",
        "https://actnav.dev/fhir/CodeSystem/actnav",
    ],
)
def test_the_agreed_code_systems_are_known(uri: str) -> None:
    assert terminology.system_key(uri) is not None


def test_a_broken_diagnoses_table_names_file_entry_and_field() -> None:
    data = yaml.safe_load((DATA / "terminology" / "diagnoses.yaml").read_text())
    data["concepts"].append({"id": "orphan", "label": "x", "parents": ["no_such_parent"]})
    with pytest.raises(DataFileError) as err:
        parse_file(terminology.DiagnosesFile, data, "terminology/diagnoses.yaml")
    assert "terminology/diagnoses.yaml" in str(err.value)
    assert "no_such_parent" in str(err.value)


def test_a_drug_class_outside_the_vocabulary_is_rejected() -> None:
    data = yaml.safe_load((DATA / "terminology" / "drugs.yaml").read_text())
    data["agents"][0]["classes"] = ["anti_cd19"]
    with pytest.raises(DataFileError, match="classes"):
        parse_file(terminology.DrugsFile, data, "terminology/drugs.yaml")


# -- QA findings (adversarial review, 2026-11) -------------------------------------------------
# Each expectation comes from the FHIR R4 specification (datatypes: date, dateTime and instant are
# JSON strings; administrative-gender is a required binding to male | female | other | unknown),
# from RFC 8259 (JSON has no NaN or Infinity), from physiology (no negative counts, percentages
# within 0-100, ECOG 0-5) or from ICD-10-CM / the regimen references cited in the tables.


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p", "birthDate": "1970-03-04", **fields}


def med(rid: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"text": text},
        "effectivePeriod": {"start": "2025-01-06", "end": "2025-04-28"},
        **extra,
    }


# 1. Dates must be FHIR strings: pydantic would read a number as a Unix timestamp.


@pytest.mark.parametrize("value", [0, 86400 * 7300, 1.5e8, 12, 19900504])
def test_a_numeric_birth_date_is_refused_not_read_as_a_timestamp(value: object) -> None:
    with pytest.raises(FhirImportError) as err:
        imported(patient=patient(birthDate=value))
    assert err.value.where == "Patient/p.birthDate"
    assert err.value.message == "expected a FHIR date string like 1990-05-04, got a number"
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_the_numeric_birth_date_fixture_fails_without_leaking_identifiers() -> None:
    err = _fail("bad-numeric-birthdate.json")
    assert err.where == "Patient/pt-1.birthDate"
    assert "got a number" in err.message


@pytest.mark.parametrize(
    ("value", "got"),
    [
        (True, "got a boolean"),
        ([], "got an array"),
        ({"x": 1}, "got an object"),
        ("1990-5-4", "got '1990-5-4'"),
    ],
)
def test_a_birth_date_of_the_wrong_shape_says_what_it_got(value: object, got: str) -> None:
    with pytest.raises(FhirImportError) as err:
        imported(patient=patient(birthDate=value))
    assert err.value.where == "Patient/p.birthDate"
    assert err.value.message.startswith("expected a FHIR date string like 1990-05-04")
    assert err.value.message.endswith(got)


def test_a_birth_date_that_is_no_calendar_day_is_refused() -> None:
    with pytest.raises(FhirImportError, match="not a calendar date") as err:
        imported(patient=patient(birthDate="1990-02-30"))
    assert err.value.where == "Patient/p.birthDate"


def test_a_birth_date_as_text_that_is_not_a_date_does_not_echo_the_text() -> None:
    # A name typed into the wrong field must never reach the message.
    with pytest.raises(FhirImportError) as err:
        imported(patient=patient(birthDate="Testperson Alpha"))
    assert "Testperson" not in str(err.value)


def test_a_numeric_effective_date_time_is_refused() -> None:
    # 20261110 was silently read as 1970-08-23.
    lab = observation("x", "751-8", valueQuantity={"value": 2, "unit": "10*9/L"})
    lab["effectiveDateTime"] = 20261110
    with pytest.raises(FhirImportError) as err:
        imported(lab)
    assert err.value.where == "Observation/x.effectiveDateTime"
    assert "expected a FHIR dateTime string like 2024-05-04" in err.value.message
    assert err.value.message.endswith("got a number")


@pytest.mark.parametrize(
    ("resource", "where"),
    [
        ({**condition("c", {"system": ICD, "code": "C83.38"}), "onsetDateTime": 1700000000}, "Condition/c.onsetDateTime"),
        ({**condition("c", {"system": ICD, "code": "C83.38"}), "recordedDate": 1}, "Condition/c.recordedDate"),
        (
            {**condition("c", {"system": ICD, "code": "C83.38"}), "onsetPeriod": {"start": 1}},
            "Condition/c.onsetPeriod.start",
        ),
        (
            {**observation("o", "751-8", valueQuantity={"value": 2, "unit": "10*9/L"}), "effectiveDateTime": None,
             "effectiveInstant": 1700000000},
            "Observation/o.effectiveInstant",
        ),
        (
            {**observation("o", "751-8", valueQuantity={"value": 2, "unit": "10*9/L"}), "effectiveDateTime": None,
             "effectivePeriod": {"start": "2026-01-01", "end": 1700000000}},
            "Observation/o.effectivePeriod.end",
        ),
        (
            {"resourceType": "Procedure", "id": "pr", "status": "completed", "subject": {"reference": "Patient/p"},
             "code": {"text": "autologous stem cell transplant"}, "performedDateTime": 2025},
            "Procedure/pr.performedDateTime",
        ),
        ({**med("m", "rituximab"), "effectivePeriod": {"start": 1.0}}, "MedicationStatement/m.effectivePeriod.start"),
        (
            {"resourceType": "MedicationRequest", "id": "r", "status": "active", "intent": "order",
             "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "rituximab"},
             "authoredOn": 20250101},
            "MedicationRequest/r.authoredOn",
        ),
        (
            {"resourceType": "MedicationRequest", "id": "r", "status": "active", "intent": "order",
             "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "rituximab"},
             "dispenseRequest": {"validityPeriod": {"start": 0}}},
            "MedicationRequest/r.dispenseRequest.validityPeriod.start",
        ),
    ],
)  # fmt: skip
def test_every_date_element_read_must_be_a_string(resource: dict[str, Any], where: str) -> None:
    resource = {k: v for k, v in resource.items() if v is not None}
    with pytest.raises(FhirImportError, match="got a number") as err:
        imported(resource)
    assert err.value.where == where


def test_a_numeric_deceased_date_time_is_refused() -> None:
    with pytest.raises(FhirImportError, match="got a number") as err:
        imported(patient=patient(deceasedDateTime=1_600_000_000))
    assert err.value.where == "Patient/p.deceasedDateTime"


@pytest.mark.parametrize(
    "when",
    [
        "2026",
        "2026-11",
        "2026-11-10",
        "2026-11-10T10:00:00Z",
        "2026-11-10T23:30:00-05:00",
    ],
)
def test_fhir_date_time_strings_are_still_read(when: str) -> None:
    record = imported(observation("o", "751-8", when=when, valueQuantity={"value": 2, "unit": "10*9/L"}))
    assert record.measurements[0].date is not None


def test_a_date_time_with_a_time_but_no_offset_is_refused() -> None:
    # FHIR R4 dateTime: "If hours and minutes are specified, a timezone offset SHALL be populated".
    lab = observation("o", "751-8", when="2026-11-10T10:00:00", valueQuantity={"value": 2, "unit": "10*9/L"})
    with pytest.raises(FhirImportError, match="expected a FHIR dateTime string") as err:
        imported(lab)
    assert err.value.where == "Observation/o.effectiveDateTime"


def test_a_valid_instant_is_read() -> None:
    lab = observation("o", "751-8", valueQuantity={"value": 2, "unit": "10*9/L"})
    del lab["effectiveDateTime"]
    lab["effectiveInstant"] = "2026-11-10T10:00:00.123Z"
    assert imported(lab).measurements[0].date == date(2026, 11, 10)


# 2. Numbers and nesting the JSON parser cannot take are input errors, not crashes.


def test_a_number_with_5000_digits_is_an_input_error(tmp_path: Path) -> None:
    data = json.dumps(bundle(observation("x", "751-8", valueQuantity={"value": 1, "unit": "10*9/L"})))
    path = tmp_path / "b.json"
    path.write_text(data.replace('"value": 1,', '"value": ' + "1" * 5000 + ","))
    with pytest.raises(FhirImportError) as err:
        read_bundle(path, as_of=AS_OF)
    assert err.value.where == "input file"
    assert "5000 digits" in err.value.message


def test_100000_nested_arrays_are_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FhirImportError, match="nest") as err:
        read_bundle(path, as_of=AS_OF)
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_deep_nesting_inside_a_resource_names_the_entry() -> None:
    nested: dict[str, Any] = {"url": "https://example.org/x"}
    for _ in range(400):
        nested = {"url": "https://example.org/x", "extension": [nested]}
    lab = observation("x", "751-8", valueQuantity={"value": 1, "unit": "10*9/L"}, extension=[nested])
    with pytest.raises(FhirImportError, match="nest") as err:
        imported(lab)
    assert err.value.where is not None and err.value.where.startswith("Bundle.entry[1].resource")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(tmp_path: Path, constant: str) -> None:
    path = tmp_path / "b.json"
    text = json.dumps(bundle(observation("x", "751-8", valueQuantity={"value": 1, "unit": "10*9/L"})))
    path.write_text(text.replace('"value": 1,', f'"value": {constant},'))
    with pytest.raises(FhirImportError, match=constant.lstrip("-")) as err:
        read_bundle(path, as_of=AS_OF)
    assert err.value.where == "input file"


# 3. Physiologically impossible quantities are refused, naming the element and the bound.


def _lab(code: str, value: float, unit: str, rid: str = "x") -> dict[str, Any]:
    return observation(rid, code, valueQuantity={"value": value, "unit": unit})


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        ("751-8", 1e300, "10*9/L"),  # ANC
        ("751-8", -5, "10*9/L"),
        ("751-8", -0.001, "/uL"),
        ("777-3", 1e7, "10*3/uL"),  # platelets
        ("718-7", 45, "g/dL"),  # haemoglobin
        ("59408-5", 101, "%"),  # SpO2
        ("10230-1", -1, "%"),  # LVEF
        ("29463-7", 0.1, "kg"),  # weight
        ("29463-7", 2000, "[lb_av]"),  # 907 kg
        ("2160-0", -1, "mg/dL"),  # creatinine
    ],
)
def test_an_implausible_quantity_is_an_error_naming_the_element_and_bound(
    code: str, value: float, unit: str
) -> None:
    with pytest.raises(FhirImportError, match="outside the plausible range") as err:
        imported(_lab(code, value, unit))
    assert err.value.where == "Observation/x.valueQuantity.value"
    assert " to " in err.value.message  # the bound is named


def test_an_overflowing_quantity_is_refused() -> None:
    # 4000 digits parse as JSON but are infinite as a float.
    lab = _lab("751-8", 1, "10*9/L")
    lab["valueQuantity"]["value"] = int("9" * 4000)
    with pytest.raises(FhirImportError, match=r"outside the plausible range|not a finite number"):
        imported(lab)


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("751-8", 0, "10*9/L", 0.0),  # agranulocytosis is possible
        ("751-8", 1500, "/uL", 1.5),
        ("731-0", 400, "10*9/L", 400.0),  # CLL lymphocytosis
        ("777-3", 1800, "10*3/uL", 1800.0),  # thrombocythaemia
        ("29463-7", 600, "[lb_av]", 272.155),
        ("59408-5", 100, "%", 100.0),
    ],
)
def test_extreme_but_possible_values_are_accepted(
    code: str, value: float, unit: str, expected: float
) -> None:
    assert imported(_lab(code, value, unit)).measurements[0].value == pytest.approx(expected, abs=0.001)


@pytest.mark.parametrize("value", [6, -1, 1.5])
def test_ecog_must_be_a_whole_number_from_0_to_5(value: float) -> None:
    ecog = observation("e", "89247-1", valueQuantity={"value": value})
    with pytest.raises(FhirImportError, match=r"ECOG|ecog") as err:
        imported(ecog)
    assert err.value.where == "Observation/e.valueQuantity.value"


def test_ecog_as_integer_7_is_refused() -> None:
    with pytest.raises(FhirImportError, match="outside the plausible range") as err:
        imported(observation("e", "89247-1", valueInteger=7))
    assert err.value.where == "Observation/e.valueInteger"


@pytest.mark.parametrize("high", [0, -40, 1e300])
def test_an_implausible_upper_limit_of_normal_is_refused(high: float) -> None:
    alt = observation(
        "a",
        "1742-6",
        valueQuantity={"value": 80, "unit": "U/L"},
        referenceRange=[{"high": {"value": high, "unit": "U/L"}}],
    )
    with pytest.raises(FhirImportError) as err:
        imported(alt)
    assert err.value.where == "Observation/a.referenceRange[0].high.value"


# 4. Structural errors that used to be skipped silently.


@pytest.mark.parametrize("resource", [{"id": "q"}, {"resourceType": 5, "id": "q"}, {"resourceType": None}])
def test_an_entry_resource_without_a_string_resource_type_is_an_error(resource: dict[str, Any]) -> None:
    data = bundle(_lab("751-8", 2, "10*9/L"))
    data["entry"].append({"resource": resource})
    with pytest.raises(FhirImportError, match="resourceType") as err:
        patient_from_bundle(data, as_of=AS_OF)
    assert err.value.where == "Bundle.entry[2].resource.resourceType"


@pytest.mark.parametrize("gender", ["yes", "Male", "f", ""])
def test_a_gender_outside_administrative_gender_is_an_error(gender: str) -> None:
    with pytest.raises(FhirImportError) as err:
        imported(patient=patient(gender=gender))
    assert err.value.where == "Patient/p.gender"
    for code in ("male", "female", "other", "unknown"):
        assert code in str(err.value)


def test_an_absent_gender_is_unknown() -> None:
    assert imported().sex == "unknown"


# 5. Refining text: PCNSL coded only by DLBCL codes, and the like (adding, never removing).


def test_pcnsl_coded_only_by_dlbcl_codes_is_pcnsl_by_its_text() -> None:
    record = read_bundle(FIXTURES / "pcnsl-coded-as-dlbcl.json", as_of=AS_OF)
    concepts = set(record.diagnoses[0].concepts)
    assert {"primary_cns_lymphoma", "cns_involvement", "dlbcl_nos", "lbcl"} <= concepts


def test_icd_10_cm_c83_390_is_primary_cns_lymphoma() -> None:
    record = imported(condition("c", {"system": ICD, "code": "C83.390"}))
    assert record.diagnoses[0].concepts[0] == "primary_cns_lymphoma"
    assert "cns_involvement" in record.diagnoses[0].concepts
    # C83.398 (other extranodal sites) stays DLBCL.
    other = imported(condition("c", {"system": ICD, "code": "C83.398"}))
    assert "primary_cns_lymphoma" not in other.diagnoses[0].concepts


def test_dlbcl_histology_with_a_brain_site_code_is_pcnsl() -> None:
    record = imported(condition("c", {"system": ICD, "code": "C71.9"}, {"system": ICDO, "code": "9680/3"}))
    assert "primary_cns_lymphoma" in record.diagnoses[0].concepts
    assert "other_malignancy" not in record.diagnoses[0].concepts


@pytest.mark.parametrize(
    ("text", "added", "absent"),
    [
        ("Primary CNS lymphoma", {"primary_cns_lymphoma", "cns_involvement"}, set()),
        ("DLBCL, PCNSL", {"primary_cns_lymphoma"}, set()),
        ("DLBCL, not primary CNS lymphoma", set(), {"primary_cns_lymphoma"}),
        ("DLBCL; no CNS involvement", set(), {"cns_involvement", "primary_cns_lymphoma"}),
        ("DLBCL without CNS involvement", set(), {"cns_involvement"}),
        ("DLBCL. CNS involvement: none", set(), {"cns_involvement"}),
        ("DLBCL, CNS involvement ruled out", set(), {"cns_involvement"}),
        ("Suspected primary CNS lymphoma", set(), {"primary_cns_lymphoma"}),
        ("DLBCL with secondary CNS involvement", {"cns_involvement"}, {"primary_cns_lymphoma"}),
        ("DLBCL transformed from follicular lymphoma", {"dlbcl_transformed_fl"}, set()),
        ("DLBCL, not transformed from follicular lymphoma", set(), {"dlbcl_transformed_fl"}),
        ("Primary mediastinal large B-cell lymphoma", {"pmbcl"}, set()),
        ("High-grade B-cell lymphoma, double-hit", {"hgbcl"}, set()),
    ],
)
def test_refining_text_adds_concepts_to_a_coded_dlbcl(text: str, added: set[str], absent: set[str]) -> None:
    coded = condition("c", {"system": ICD, "code": "C83.38", "display": "Diffuse large B-cell lymphoma"})
    coded["code"]["text"] = text
    concepts = set(imported(coded).diagnoses[0].concepts)
    assert {"dlbcl_nos", "lbcl"} <= concepts  # never removed
    assert added <= concepts
    assert not absent & concepts


def test_refining_text_in_a_coding_display_counts_too() -> None:
    coded = condition(
        "c",
        {"system": ICD, "code": "C83.39", "display": "Diffuse large B-cell lymphoma, extranodal"},
        {"system": ICDO, "code": "9680/3", "display": "Primary diffuse large B-cell lymphoma of the CNS"},
    )
    assert "primary_cns_lymphoma" in imported(coded).diagnoses[0].concepts


def test_a_negated_refinement_leaves_a_note() -> None:
    coded = condition("c", {"system": ICD, "code": "C83.38"})
    coded["code"]["text"] = "DLBCL, no CNS involvement"
    record = imported(coded)
    assert any("Condition/c.code" in n and "negated" in n for n in record.notes)


@pytest.mark.parametrize(
    ("text", "lineage"),
    [
        ("B-cell precursor acute lymphoblastic leukaemia, Ph-negative", "b_all"),
        ("T-ALL, early T-precursor", "t_all"),
    ],
)
def test_all_lineage_is_read_from_the_text_of_a_c91_0_code(text: str, lineage: str) -> None:
    coded = condition("c", {"system": ICD, "code": "C91.00"})
    coded["code"]["text"] = text
    assert imported(coded).diagnoses[0].concepts[0] == lineage


def test_a_refinement_never_crosses_diseases() -> None:
    # Text naming B-ALL on a myeloma code adds nothing: a refinement only narrows what is coded.
    coded = condition("c", {"system": ICD, "code": "C90.00"})
    coded["code"]["text"] = "Multiple myeloma (history: B-ALL in childhood)"
    assert "b_all" not in imported(coded).diagnoses[0].concepts


def test_uncoded_text_with_a_negated_state_no_longer_adds_it() -> None:
    record = imported(
        condition("c", {"code": "X", "display": "Diffuse large B-cell lymphoma without CNS involvement"})
    )
    assert "dlbcl_nos" in record.diagnoses[0].concepts
    assert "cns_involvement" not in record.diagnoses[0].concepts


# 6. Regimen acronyms expand into their agents in one therapy.

R_CHOP = {"rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone"}
EPOCH_R = {"etoposide", "prednisone", "vincristine", "cyclophosphamide", "doxorubicin", "rituximab"}


@pytest.mark.parametrize(
    ("written", "agents"),
    [
        ("DA-EPOCH-R", EPOCH_R),
        ("R-EPOCH", EPOCH_R),
        ("EPOCH-R x6", EPOCH_R),
        ("R-CHOP", R_CHOP),
        ("R CHOP", R_CHOP),
        ("rchop-21", R_CHOP),
        ("R-CVP", {"rituximab", "cyclophosphamide", "vincristine", "prednisone"}),
        ("R-GDP", {"rituximab", "gemcitabine", "dexamethasone", "cisplatin"}),
        ("R-ICE", {"rituximab", "ifosfamide", "carboplatin", "etoposide"}),
        ("R-DHAP", {"rituximab", "dexamethasone", "cytarabine", "cisplatin"}),
        ("BR", {"bendamustine", "rituximab"}),
        ("FCR", {"fludarabine", "cyclophosphamide", "rituximab"}),
        ("MATRix", {"methotrexate", "cytarabine", "thiotepa", "rituximab"}),
        ("DPd", {"daratumumab", "pomalidomide", "dexamethasone"}),
        ("Dara-Pd", {"daratumumab", "pomalidomide", "dexamethasone"}),
        ("KPd", {"carfilzomib", "pomalidomide", "dexamethasone"}),
        ("KRd", {"carfilzomib", "lenalidomide", "dexamethasone"}),
        ("VRd", {"bortezomib", "lenalidomide", "dexamethasone"}),
        ("VCd", {"bortezomib", "cyclophosphamide", "dexamethasone"}),
        ("CyBorD", {"bortezomib", "cyclophosphamide", "dexamethasone"}),
        ("DRd", {"daratumumab", "lenalidomide", "dexamethasone"}),
        ("Ven+O", {"venetoclax", "obinutuzumab"}),
        ("VenO", {"venetoclax", "obinutuzumab"}),
        ("Ven / O", {"venetoclax", "obinutuzumab"}),
        ("hyper-CVAD", {"cyclophosphamide", "vincristine", "doxorubicin", "dexamethasone"}),
        ("Hyper CVAD", {"cyclophosphamide", "vincristine", "doxorubicin", "dexamethasone"}),
        ("FOLFOX", {"fluorouracil", "leucovorin", "oxaliplatin"}),
        ("mFOLFOX6", {"fluorouracil", "leucovorin", "oxaliplatin"}),
    ],
)
def test_a_regimen_acronym_expands_into_its_agents(written: str, agents: set[str]) -> None:
    record = imported(med("m", written))
    assert len(record.therapies) == 1
    t = record.therapies[0]
    assert (t.text, set(t.agents), t.anticancer, t.unrecognised) == (written, agents, True, False)
    assert set(t.classes) == set(terminology.drug_classes(t.agents))


def test_a_regimen_and_an_agent_named_together_are_one_therapy() -> None:
    t = imported(med("m", "Rituximab + CHOP")).therapies[0]
    assert set(t.agents) == R_CHOP


@pytest.mark.parametrize(
    "text",
    [
        "Defibrotide for veno-occlusive disease",
        "anti-PD-1 antibody (trial drug)",
        "3rd line: study drug XY-7",
    ],
)
def test_words_that_only_look_like_regimens_are_not_regimens(text: str) -> None:
    t = imported(med("m", text)).therapies[0]
    assert t.unrecognised and t.agents == ()


# 7. Unrecognised medications are kept (flagged), never counted as anticancer.


def test_an_unrecognised_medication_keeps_its_text_and_dates() -> None:
    record = imported(med("m", "Acetaminophen 325 MG Oral Tablet"))
    t = record.therapies[0]
    assert (t.agents, t.classes, t.anticancer, t.unrecognised) == ((), (), False, True)
    assert (t.text, t.start, t.end) == (
        "Acetaminophen 325 MG Oral Tablet",
        date(2025, 1, 6),
        date(2025, 4, 28),
    )
    assert not record.treatment_history_recorded
    assert any("1 medication resource(s)" in n for n in record.notes)


def test_an_unrecognised_drug_with_a_line_extension_is_anticancer_and_flagged() -> None:
    line = {"url": "https://actnav.dev/fhir/StructureDefinition/line-of-therapy", "valuePositiveInt": 2}
    t = imported(med("m", "investigational agent XYZ-123", extension=[line])).therapies[0]
    assert (t.agents, t.line, t.anticancer, t.unrecognised) == ((), 2, True, True)


def test_a_negative_viral_load_is_refused_not_read_as_negative() -> None:
    # A negative amount was read as "negative" (not detected): a wrong silent value.
    load = observation("v", "11011-4", valueQuantity={"value": -20, "unit": "[IU]/mL"})
    with pytest.raises(FhirImportError, match="cannot be negative") as err:
        imported(load)
    assert err.value.where == "Observation/v.valueQuantity.value"
    zero = observation("v", "11011-4", valueQuantity={"value": 0, "unit": "[IU]/mL"})
    assert [(f.key, f.value) for f in imported(zero).findings] == [("hcv", "negative")]
