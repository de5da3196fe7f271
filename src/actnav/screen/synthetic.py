"""A synthetic patient population for screening tests and benchmarks (illustrative, not epidemiology).

:func:`generate` draws patients from a seeded :class:`random.Random` (same seed and count, same
output, byte for byte) and :func:`write_bulk` writes them as a FHIR Bulk Data export: one NDJSON
file per resource type, references as ``Patient/<id>``. The distributions are documented in
``docs/screening.md``; they are chosen so that every label criterion is exercised both ways
(eligible, not eligible, needs information), not to mirror any real population. The codes are the
ones the importer reads (ICD-10-CM and ICD-O-3 diagnoses, LOINC labs in UCUM units, regimen names
of ``data/terminology/drugs.yaml``, the actnav code system for transplant ineligibility and
MAGE-A4) as in ``examples/patients``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actnav.patient.fhir import LINE_OF_THERAPY_URL
from actnav.screen.records import BULK_TYPES

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ACTNAV = "https://actnav.dev/fhir/CodeSystem/actnav"
_NAMESPACE = uuid.UUID("5b0d1c1e-8f0a-4c43-9a61-5c2e8d1f7a10")


@dataclass(frozen=True)
class Disease:
    """A diagnosis the generator draws: weight (relative share), age (mean, sd, min, max in
    years), ICD-10-CM and ICD-O-3 codes with displays, and the regimens given by line."""

    key: str
    weight: float
    age: tuple[float, float, int, int]
    icd10: tuple[str, str]
    icdo3: tuple[str, str] | None
    text: str
    regimens: tuple[str, ...]
    solid: bool = False


#: Diseases, shares and ages: illustrative (see docs/screening.md), not incidence figures.
DISEASES: tuple[Disease, ...] = (
    Disease("b_all", 8, (30, 18, 2, 80), ("C91.00", "Acute lymphoblastic leukemia not having achieved remission"),
            ("9811/3", "B lymphoblastic leukemia/lymphoma, NOS"), "B-cell precursor acute lymphoblastic leukaemia",
            ("hyper-CVAD", "blinatumomab", "inotuzumab ozogamicin", "ponatinib")),
    Disease("lbcl", 22, (64, 13, 18, 90), ("C83.38", "Diffuse large B-cell lymphoma, lymph nodes of multiple sites"),
            ("9680/3", "Diffuse large B-cell lymphoma, NOS"), "Diffuse large B-cell lymphoma, NOS",
            ("R-CHOP", "R-ICE", "R-GemOx", "polatuzumab vedotin", "glofitamab")),
    Disease("fl", 10, (62, 12, 25, 90), ("C82.18", "Follicular lymphoma grade II, lymph nodes of multiple sites"),
            ("9691/3", "Follicular lymphoma, grade 2"), "Follicular lymphoma grade 2",
            ("R-CHOP", "bendamustine", "lenalidomide", "mosunetuzumab")),
    Disease("mcl", 6, (68, 10, 35, 90), ("C83.18", "Mantle cell lymphoma, lymph nodes of multiple sites"),
            ("9673/3", "Mantle cell lymphoma"), "Mantle cell lymphoma",
            ("bendamustine", "ibrutinib", "R-DHAP", "venetoclax")),
    Disease("cll", 12, (70, 10, 35, 95), ("C91.10", "Chronic lymphocytic leukemia of B-cell type not having achieved remission"),
            ("9823/3", "B-cell chronic lymphocytic leukemia/small lymphocytic lymphoma"), "Chronic lymphocytic leukaemia",
            ("ibrutinib", "venetoclax", "obinutuzumab", "acalabrutinib")),
    Disease("mm", 16, (67, 10, 30, 92), ("C90.00", "Multiple myeloma not having achieved remission"),
            ("9732/3", "Multiple myeloma"), "Multiple myeloma",
            ("lenalidomide", "bortezomib", "daratumumab", "carfilzomib", "pomalidomide")),
    Disease("melanoma", 12, (62, 14, 18, 95), ("C43.5", "Malignant melanoma of trunk"),
            ("8720/3", "Malignant melanoma, NOS"), "Cutaneous melanoma", ("nivolumab", "ipilimumab", "pembrolizumab"),
            solid=True),
    Disease("synovial_sarcoma", 3, (38, 14, 12, 80), ("C49.22", "Malignant neoplasm of connective and soft tissue of left lower limb, including hip"),
            ("9040/3", "Synovial sarcoma, NOS"), "Synovial sarcoma", ("doxorubicin", "ifosfamide", "pazopanib"),
            solid=True),
    Disease("hodgkin", 4, (35, 15, 15, 85), ("C81.12", "Nodular sclerosis Hodgkin lymphoma, intrathoracic lymph nodes"),
            ("9663/3", "Hodgkin lymphoma, nodular sclerosis, NOS"), "Classical Hodgkin lymphoma",
            ("ABVD", "brentuximab vedotin", "pembrolizumab")),
    Disease("breast", 7, (60, 12, 25, 95), ("C50.912", "Malignant neoplasm of unspecified site of left female breast"),
            None, "Breast cancer", ("doxorubicin", "paclitaxel"), solid=True),
)  # fmt: skip

#: Labs: LOINC code, UCUM unit, (median, spread) of a log-normal draw, rounding digits.
LABS: tuple[tuple[str, str, str, float, float, int], ...] = (
    ("anc", "751-8", "10*3/uL", 2.6, 0.6, 2),
    ("platelets", "777-3", "10*3/uL", 170.0, 0.5, 0),
    ("creatinine", "2160-0", "mg/dL", 0.9, 0.3, 2),
    ("bilirubin", "1975-2", "mg/dL", 0.6, 0.45, 1),
    ("alt", "1742-6", "U/L", 24.0, 0.55, 0),
    ("lvef", "10230-1", "%", 60.0, 0.1, 0),
)


def _uid(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(map(str, parts))))


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        out["text"] = text
    return out


def _day(d: dt.date) -> str:
    return d.isoformat()


def patient_resources(index: int, rng: random.Random, as_of: dt.date, seed: int) -> list[dict[str, Any]]:
    """The resources of synthetic patient number ``index`` (Patient first), drawn from ``rng``.

    Dates are at most ``as_of``; labs are dated within the last 30 days (some older than their
    currency window, on purpose); references are ``Patient/<id>`` as in a bulk export.
    """
    disease = rng.choices(DISEASES, weights=[d.weight for d in DISEASES])[0]
    mean, sd, lo, hi = disease.age
    age = min(hi, max(lo, round(rng.gauss(mean, sd))))
    birth = as_of - dt.timedelta(days=int(age * 365.25) + rng.randrange(365))
    pid = _uid(seed, index, "Patient")
    subject = {"reference": f"Patient/{pid}"}
    sex = "female" if disease.key == "breast" else rng.choice(("female", "male"))
    deceased = rng.random() < 0.02
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": sex, "birthDate": _day(birth)}
    if deceased:
        patient["deceasedBoolean"] = True
    out: list[dict[str, Any]] = [patient]
    n = 0

    def rid(kind: str) -> str:
        nonlocal n
        n += 1
        return _uid(seed, index, kind, n)

    diagnosed = as_of - dt.timedelta(days=rng.randrange(120, 365 * 8))
    if rng.random() < 0.97:  # a few patients have no coded diagnosis (unknown, not an error)
        code = _concept(ICD10, *disease.icd10, text=disease.text)
        if disease.icdo3 is not None:
            code["coding"].append({"system": ICDO3, "code": disease.icdo3[0], "display": disease.icdo3[1]})
        status = rng.choice(("active", "relapse", "recurrence"))
        out.append(
            {
                "resourceType": "Condition",
                "id": rid("Condition"),
                "clinicalStatus": _concept(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", status, status
                ),
                "code": code,
                "subject": subject,
                "onsetDateTime": _day(diagnosed),
            }
        )
        if disease.solid and rng.random() < 0.7:
            out.append(
                {
                    "resourceType": "Condition",
                    "id": rid("Condition"),
                    "code": _concept(ICD10, "C78.00", "Secondary malignant neoplasm of unspecified lung"),
                    "subject": subject,
                    "onsetDateTime": _day(diagnosed + (as_of - diagnosed) / 2),
                }
            )
    # Lines of therapy: 0 to 5, regimens of the disease in order (a later line may repeat one).
    lines = rng.choices((0, 1, 2, 3, 4, 5), weights=(10, 30, 25, 18, 10, 7))[0]
    span = (as_of - diagnosed).days
    med_ids: list[str] = []
    for line in range(1, lines + 1):
        start = diagnosed + dt.timedelta(days=span * (line - 1) // (lines + 1) + 7)
        end = start + dt.timedelta(days=rng.randrange(28, 180))
        end = min(end, as_of)
        regimen = disease.regimens[min(line - 1, len(disease.regimens) - 1)]
        med_id = rid("MedicationStatement")
        med_ids.append(med_id)
        resource: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "id": med_id,
            "status": "completed",
            "medicationCodeableConcept": {"text": regimen},
            "subject": subject,
            "effectivePeriod": {"start": _day(start), "end": _day(end)},
        }
        if rng.random() < 0.6:
            resource["extension"] = [{"url": LINE_OF_THERAPY_URL, "valuePositiveInt": line}]
        out.append(resource)
        outcome = rng.choices(("refractory", "relapse", "response"), weights=(3, 4, 3))[0]
        status_code = (
            _concept(ACTNAV, outcome, outcome.capitalize())
            if outcome != "response"
            else _concept(SNOMED, "268910001", "Patient's condition improved")
        )
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid("Observation"),
            "status": "final",
            "code": _concept(LOINC, "97509-4", "Cancer disease progression"),
            "subject": subject,
            "effectiveDateTime": _day(min(end + dt.timedelta(days=14), as_of)),
            "valueCodeableConcept": status_code,
        }
        if outcome == "refractory" and rng.random() < 0.5:
            observation["focus"] = [{"reference": f"MedicationStatement/{med_id}"}]
        out.append(observation)
    if not disease.solid and lines >= 1 and rng.random() < 0.25:
        kind = rng.choice(("Autologous", "Allogeneic"))
        out.append(
            {
                "resourceType": "Procedure",
                "id": rid("Procedure"),
                "status": "completed",
                "code": _concept(
                    SNOMED,
                    "234336002",
                    "Hemopoietic stem cell transplant",
                    text=f"{kind} haematopoietic stem cell transplant",
                ),
                "subject": subject,
                "performedDateTime": _day(diagnosed + dt.timedelta(days=span // 2)),
            }
        )
    if rng.random() < 0.3:
        out.append(
            {
                "resourceType": "Observation",
                "id": rid("Observation"),
                "status": "final",
                "code": _concept(
                    ACTNAV, "transplant-ineligible", "Not eligible for haematopoietic stem cell transplant"
                ),
                "subject": subject,
                "effectiveDateTime": _day(as_of - dt.timedelta(days=rng.randrange(10, 400))),
                "valueBoolean": rng.random() < 0.7,
            }
        )
    for _key, loinc, unit, median, spread, digits in LABS:
        if rng.random() < 0.15:  # not measured: the fact is unknown
            continue
        value = round(median * rng.lognormvariate(0, spread), digits)
        if unit == "%":
            value = min(value, 80)
        when = as_of - dt.timedelta(days=rng.randrange(0, 45))
        out.append(
            {
                "resourceType": "Observation",
                "id": rid("Observation"),
                "status": "final",
                "code": _concept(LOINC, loinc, loinc),
                "subject": subject,
                "effectiveDateTime": _day(when),
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )
    out.append(
        {
            "resourceType": "Observation",
            "id": rid("Observation"),
            "status": "final",
            "code": _concept(LOINC, "89247-1", "ECOG Performance Status score"),
            "subject": subject,
            "effectiveDateTime": _day(as_of - dt.timedelta(days=rng.randrange(0, 60))),
            "valueInteger": rng.choices((0, 1, 2, 3), weights=(35, 45, 15, 5))[0],
        }
    )
    if disease.key == "melanoma" and rng.random() < 0.8:
        present = rng.random() < 0.45
        variant: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid("Observation"),
            "status": "final",
            "code": _concept(LOINC, "69548-6", "Genetic variant assessment"),
            "subject": subject,
            "effectiveDateTime": _day(diagnosed + dt.timedelta(days=30)),
            "valueCodeableConcept": _concept(
                LOINC, *(("LA9633-4", "Present") if present else ("LA9634-2", "Absent"))
            ),
            "component": [
                {
                    "code": _concept(LOINC, "48018-6", "Gene studied [ID]"),
                    "valueCodeableConcept": _concept("http://www.genenames.org/geneId", "HGNC:1097", "BRAF"),
                }
            ],
        }
        if present:
            variant["component"].append(
                {
                    "code": _concept(LOINC, "48005-3", "Amino acid change (pHGVS)"),
                    "valueCodeableConcept": {"text": "p.Val600Glu"},
                }
            )
        out.append(variant)
    if disease.key == "synovial_sarcoma" or rng.random() < 0.03:
        if rng.random() < 0.8:
            alleles = rng.choices(
                ("HLA-A*02:01:01:01", "HLA-A*02:05:01", "HLA-A*02:06:01", "HLA-A*24:02:01:01", "HLA-A*01:01:01:01", "HLA-A*03:01:01:01"),
                weights=(30, 3, 3, 20, 25, 19),
                k=2,
            )  # fmt: skip
            out.append(
                {
                    "resourceType": "Observation",
                    "id": rid("Observation"),
                    "status": "final",
                    "code": _concept(LOINC, "57290-9", "HLA-A [Type] by High resolution"),
                    "subject": subject,
                    "effectiveDateTime": _day(as_of - dt.timedelta(days=rng.randrange(20, 400))),
                    "valueString": "+".join(alleles),
                }
            )
        if disease.key == "synovial_sarcoma" and rng.random() < 0.7:
            positive = rng.random() < 0.7
            out.append(
                {
                    "resourceType": "Observation",
                    "id": rid("Observation"),
                    "status": "final",
                    "code": _concept(ACTNAV, "mage-a4-ihc", "MAGE-A4 expression by immunohistochemistry"),
                    "subject": subject,
                    "effectiveDateTime": _day(as_of - dt.timedelta(days=rng.randrange(20, 400))),
                    "valueCodeableConcept": _concept(
                        LOINC, *(("LA6576-8", "Positive") if positive else ("LA6577-6", "Negative"))
                    ),
                }
            )
    return out


def generate(count: int, *, seed: int = 1, as_of: dt.date) -> Iterator[list[dict[str, Any]]]:
    """Yield ``count`` synthetic patients, each as its list of resources (Patient first).

    Deterministic: patient ``i`` depends only on ``seed`` and ``i`` (a generator of 30,000
    patients starts with the 10,000 of a run of 10,000).
    """
    for index in range(count):
        yield patient_resources(index, random.Random(f"{seed}:{index}"), as_of, seed)


def write_bulk(directory: Path, count: int, *, seed: int = 1, as_of: dt.date) -> dict[str, int]:
    """Write ``count`` synthetic patients as FHIR Bulk Data NDJSON files (``<Type>.ndjson``).

    Args:
        directory: created if needed; existing NDJSON files of the same names are replaced.
        count: number of patients.
        seed: random seed (same seed and count, same bytes).
        as_of: no date written is after it.

    Returns:
        Number of resources written per resource type.
    """
    directory.mkdir(parents=True, exist_ok=True)
    handles = {t: (directory / f"{t}.ndjson").open("w", encoding="utf-8") for t in BULK_TYPES}
    counts = dict.fromkeys(BULK_TYPES, 0)
    try:
        for resources in generate(count, seed=seed, as_of=as_of):
            for resource in resources:
                rtype = resource["resourceType"]
                handles[rtype].write(json.dumps(resource, separators=(",", ":")) + "\n")
                counts[rtype] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return counts
