"""Key facts entered by hand -> FHIR Bundle -> the existing importer -> the label rules.

Expected verdicts are the labels' own words: Tecartus (brexucabtagene autoleucel) is for adults
with relapsed or refractory B-cell precursor ALL; Kymriah (tisagenlecleucel) for patients up to
25 years of age with B-cell precursor ALL that is refractory or in second or later relapse;
Amtagvi (lifileucel) for adults with unresectable or metastatic melanoma previously treated with a
PD-1 blocking antibody and, if BRAF V600 mutation-positive, a BRAF inhibitor with or without a MEK
inhibitor. Codes and conversions are those docs/fhir-input.md documents.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from actnav.care.keyfacts import (
    KeyFactsError,
    diagnosis_codings,
    keyfacts_to_bundle,
    parse_keyfacts,
)
from actnav.eligibility.evaluate import evaluate_patient
from actnav.eligibility.report_model import Evaluation, IndicationResult, Verdict
from actnav.patient.fhir import patient_from_bundle
from actnav.patient.models import PatientRecord

AS_OF = dt.date(2026, 11, 29)

# A 34-year-old woman with B-ALL in second relapse after two lines (hyper-CVAD, blinatumomab).
ALL_SECOND_RELAPSE: dict[str, Any] = {
    "birth_date": "1992-06-14",
    "sex": "female",
    "diagnosis": "b_all",
    "diagnosis_date": "2023-02-06",
    "disease_course": [
        {"status": "complete_remission", "date": "2023-03-10"},
        {"status": "relapse", "date": "2025-03-03"},
        {"status": "complete_remission", "date": "2025-04-22"},
        {"status": "relapse", "date": "2026-10-26"},
    ],
    "therapies": [
        {"name": "hyper-CVAD", "start": "2023-02-13", "end": "2023-09-18", "line": 1},
        {"name": "blinatumomab", "start": "2025-03-17", "end": "2025-07-25", "line": 2},
    ],
    "ecog": {"value": 1, "date": "2026-11-20"},
    "labs": {
        "anc": {"value": 0.8, "unit": "10*3/uL", "date": "2026-11-20"},
        "platelets": {"value": 58, "unit": "x10^9/L", "date": "2026-11-20"},
        "hemoglobin": {"value": 8.9, "unit": "g/dL", "date": "2026-11-20"},
        "creatinine_clearance": {"value": 118, "unit": "mL/min", "date": "2026-11-20"},
        "alt": {"value": 31, "unit": "U/L", "date": "2026-11-20", "upper_limit_normal": 40},
        "bilirubin": {"value": 0.5, "unit": "mg/dL", "date": "2026-11-20"},
        "lvef": {"value": 61, "unit": "%", "date": "2026-11-06"},
        "spo2": {"value": 98, "unit": "%", "date": "2026-11-20"},
    },
    "cns_involvement": {"present": False, "date": "2026-10-26"},
    "active_infection": {"present": False, "date": "2026-11-20"},
    "pregnancy": {"present": False, "date": "2026-11-25"},
    "hiv": {"result": "negative", "date": "2026-11-06"},
}

# A 42-year-old man with unresectable BRAF V600E melanoma after nivolumab and dabrafenib + trametinib.
MELANOMA: dict[str, Any] = {
    "birth_date": "1984-03-02",
    "sex": "male",
    "diagnosis": "cutaneous_melanoma",
    "diagnosis_date": "2024-01-10",
    "unresectable_or_metastatic": True,
    "braf_v600": {"result": "positive", "variant": "V600E", "date": "2024-01-20"},
    "therapies": [
        {"name": "nivolumab", "start": "2024-02-01", "end": "2024-09-01"},
        {"name": "Dabrafenib + trametinib", "start": "2024-10-01", "end": "2025-06-01"},
    ],
    "disease_course": [{"status": "progression", "date": "2025-06-01"}],
}


def _record(data: dict[str, Any]) -> PatientRecord:
    bundle = keyfacts_to_bundle(parse_keyfacts(data, as_of=AS_OF))
    return patient_from_bundle(bundle, as_of=AS_OF)


def _evaluate(data: dict[str, Any]) -> Evaluation:
    return evaluate_patient(_record(data), as_of=AS_OF)


def _indication(evaluation: Evaluation, product: str, indication: str) -> IndicationResult:
    found = next(p for p in evaluation.products if p.id == product)
    return next(i for i in found.indications if i.id == indication)


def _results(indication: IndicationResult) -> dict[str, str]:
    return {c.id: c.result.value for c in indication.criteria}


def test_b_all_in_second_relapse_is_eligible_for_tecartus_and_too_old_for_kymriah() -> None:
    evaluation = _evaluate(ALL_SECOND_RELAPSE)
    assert evaluation.patient.age_years == 34
    assert evaluation.patient.prior_lines == 2

    tecartus = _indication(evaluation, "brexucabtagene_autoleucel", "b-all-adult")
    assert tecartus.verdict is Verdict.ELIGIBLE
    assert _results(tecartus) == {
        "age-ge-18": "met",
        "diagnosis-b-all": "met",
        "relapsed-or-refractory": "met",
    }

    kymriah = _indication(evaluation, "tisagenlecleucel", "b-all-up-to-25")
    assert kymriah.verdict is Verdict.NOT_ELIGIBLE
    results = _results(kymriah)
    # Not eligible for age alone: the second relapse is read (two relapses with a remission between).
    assert results["age-le-25"] == "not_met"
    assert results["diagnosis-b-all"] == "met"
    assert results["refractory-or-second-relapse"] == "met"


def test_only_the_required_facts_leave_the_disease_course_unknown() -> None:
    minimal = {"birth_date": "1992-06-14", "sex": "female", "diagnosis": "b_all"}
    bundle = keyfacts_to_bundle(parse_keyfacts(minimal, as_of=AS_OF))
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Condition"]

    tecartus = _indication(_evaluate(minimal), "brexucabtagene_autoleucel", "b-all-adult")
    assert tecartus.verdict is Verdict.NEEDS_INFORMATION
    assert _results(tecartus) == {
        "age-ge-18": "met",
        "diagnosis-b-all": "met",
        "relapsed-or-refractory": "unknown",
    }


def test_braf_v600e_melanoma_after_pd1_and_braf_inhibitor_is_eligible_for_amtagvi() -> None:
    record = _record(MELANOMA)
    braf = next(f for f in record.findings if f.key == "braf_v600")
    assert (braf.value, braf.detail) == ("positive", "p.V600E")

    amtagvi = _indication(evaluate_patient(record, as_of=AS_OF), "lifileucel", "melanoma-after-anti-pd1")
    assert amtagvi.verdict is Verdict.ELIGIBLE
    assert set(_results(amtagvi).values()) == {"met"}


def test_braf_v600_positive_melanoma_without_a_braf_inhibitor_is_not_on_label() -> None:
    data = {**MELANOMA, "therapies": MELANOMA["therapies"][:1], "braf_v600": {"result": "positive"}}
    amtagvi = _indication(_evaluate(data), "lifileucel", "melanoma-after-anti-pd1")
    assert amtagvi.verdict is Verdict.NOT_ELIGIBLE
    assert _results(amtagvi)["braf-v600-positive-requires-braf-inhibitor"] == "not_met"


def test_omitted_labs_stay_unknown_and_name_what_is_needed() -> None:
    data = {**MELANOMA, "labs": {"platelets": {"value": 150, "date": "2026-11-20"}}}
    record = _record(data)
    assert {m.key for m in record.measurements} == {"platelets"}

    evaluation = evaluate_patient(record, as_of=AS_OF)
    # C-144-01 (lifileucel): platelets at least 100 x 10^9/L, ANC at least 1.0 x 10^9/L.
    c144 = next(f for f in evaluation.fitness if f.id == "c-144-01")
    by_id = {c.id: c for c in c144.criteria}
    assert by_id["platelets-ge-100"].result.value == "met"
    anc = by_id["anc-ge-1.0"]
    assert anc.result.value == "unknown"
    assert anc.needs is not None and "neutrophil" in anc.needs.lower()
    assert not any(c.result.value == "not_met" for c in c144.criteria)


def test_units_are_converted_by_the_importer_as_documented() -> None:
    # docs/fhir-input.md: creatinine 1 mg/dL = 88.4 umol/L; 1,500/uL = 1.5 x 10^9/L.
    data = {
        "birth_date": "1970-01-01",
        "diagnosis": "dlbcl_nos",
        "labs": {
            "creatinine": {"value": 88.4, "unit": "umol/L", "date": "2026-11-20"},
            "anc": {"value": 1500, "unit": "/uL", "date": "2026-11-20"},
        },
    }
    values = {m.key: (m.value, m.unit, m.code) for m in _record(data).measurements}
    assert values["creatinine"][0] == pytest.approx(1.0, abs=0.001)
    assert values["creatinine"][1:] == ("mg/dL", "2160-0")
    assert values["anc"] == (pytest.approx(1.5), "10*9/L", "751-8")


def test_b_all_is_coded_as_icd10cm_c91_0_with_icdo3_b_lymphoblastic_histology() -> None:
    # docs/fhir-input.md: C91.0 -> all; 9811/3 gives the B lineage C91.0 does not encode.
    codes = {(c["system"], c["code"]) for c in diagnosis_codings("b_all")}
    assert ("http://hl7.org/fhir/sid/icd-10-cm", "C91.0") in codes
    assert ("http://terminology.hl7.org/CodeSystem/icd-o-3", "9811/3") in codes
    assert ("https://actnav.dev/fhir/CodeSystem/actnav", "b_all") in codes
    record = _record({"birth_date": "1992-06-14", "diagnosis": "b_all"})
    assert record.diagnoses[0].concepts[:4] == ("b_all", "all", "leukaemia", "hematologic_malignancy")
    assert not record.diagnoses[0].in_relapse


def test_regimens_and_drugs_are_recognised_and_an_open_end_is_ongoing() -> None:
    data = {
        "birth_date": "1960-05-05",
        "diagnosis": "dlbcl_nos",
        "therapies": [
            {"name": "R-CHOP", "start": "2025-01-10", "end": "2025-05-20"},
            {"name": "Blincyto", "start": "2026-10-01"},
        ],
    }
    therapies = {t.text: t for t in _record(data).therapies}
    # R-CHOP: rituximab, cyclophosphamide, doxorubicin, vincristine, prednisone.
    assert set(therapies["R-CHOP"].agents) == {
        "rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone",
    }  # fmt: skip
    assert therapies["Blincyto"].agents == ("blinatumomab",)
    assert therapies["Blincyto"].end is None  # no end date: ongoing


def _problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(KeyFactsError) as caught:
        parse_keyfacts(data, as_of=AS_OF)
    return {p.field: p.message for p in caught.value.problems}


@pytest.mark.parametrize("birth_date", ["2027-01-01", "1800-01-01"])
def test_implausible_birth_date_and_negative_platelets_are_named(birth_date: str) -> None:
    problems = _problems(
        {
            "birth_date": birth_date,
            "diagnosis": "b_all",
            "labs": {"platelets": {"value": -5, "date": "2026-11-20"}},
        }
    )
    assert set(problems) == {"birth_date", "labs.platelets"}
    assert "plausible range for platelets" in problems["labs.platelets"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"diagnosis": "lymphoma_nos"}, "diagnosis", "not a diagnosis"),
        ({"therapies": [{"name": "XYZ-123", "start": "2025-01-01"}]}, "therapies.0.name", "not a drug"),
        (
            {"therapies": [{"name": "R-CHOP", "start": "2025-05-01", "end": "2025-01-01"}]},
            "therapies.0.end",
            "before the start",
        ),
        ({"diagnosis_date": "1980-01-01"}, "diagnosis_date", "before the birth date"),
        ({"hla_a": {"alleles": ["B*07:02"]}}, "hla_a.alleles.0", "not an HLA-A allele"),
        ({"braf_v600": {"result": "positive", "variant": "p.G469A"}}, "braf_v600.variant", "V600"),
        ({"ecog": {"value": 7, "date": "2026-11-20"}}, "ecog.value", "plausible range"),
        (
            {"labs": {"platelets": {"value": 100, "unit": "g/dL", "date": "2026-11-20"}}},
            "labs.platelets",
            "convert",
        ),
        ({"labs": {"anc": {"value": 1.2}}}, "labs.anc.date", "required"),
        ({"diagnosis_date": 20240101}, "diagnosis_date", "got a number"),
        ({"pregnancy": {"present": False}}, "pregnancy.date", "required"),
    ],
)
def test_each_invalid_fact_is_named(change: dict[str, Any], field: str, words: str) -> None:
    problems = _problems({"birth_date": "1990-01-01", "diagnosis": "b_all", **change})
    assert field in problems, problems
    assert words.lower() in problems[field].lower()
