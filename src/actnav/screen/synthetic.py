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
from collections import defaultdict
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


# -- the same population as an OMOP CDM v5.4 export --------------------------------------------

#: OMOP reserves concept ids above 2,000,000,000 for site-specific (local) concepts (CDM v5.4,
#: source_to_concept_map.source_concept_id). Real OMOP ids are used only where confirmed
#: (gender 8507/8532, episode concept 32531 "Treatment Regimen"; data/terminology/omop.yaml);
#: every coded concept of the export is a local id whose concept table row carries the real
#: vocabulary_id and concept_code, which is what actnav reads.
OMOP_LOCAL_BASE = 2_000_000_000
_TREATMENT_REGIMEN = 32531
_DRUG_EXPOSURE_FIELD = "drug_exposure.drug_exposure_id"
_VOCABULARY_OF = {
    ICD10: "ICD10CM",
    ICDO3: "ICDO3",
    LOINC: "LOINC",
    SNOMED: "SNOMED",
    UCUM: "UCUM",
    ACTNAV: "actnav",
}
_OMOP_FORMATS = ("csv", "csv.gz", "parquet")


def _single_agent_rxnorm() -> dict[str, str]:
    """Regimen names of :data:`DISEASES` that are one agent with an RxNorm code (drugs.yaml)."""
    from actnav.patient.terminology import drugs

    codes = {a.name: a.rxnorm[0] for a in drugs().agents if a.rxnorm}
    return {r: codes[r] for d in DISEASES for r in d.regimens if r in codes}


def omop_concepts() -> list[dict[str, Any]]:
    """The concept table of the synthetic OMOP export: every concept the generator can use,
    with local ids from :data:`OMOP_LOCAL_BASE` + 1 in a fixed order (same ids for every run)."""
    rows: list[tuple[str, str, str, str]] = []  # vocabulary, code, name, domain
    for d in DISEASES:
        rows.append(("ICD10CM", d.icd10[0], d.icd10[1], "Condition"))
        if d.icdo3 is not None:
            rows.append(("ICDO3", d.icdo3[0], d.icdo3[1], "Condition"))
    rows.append(("ICD10CM", "C78.00", "Secondary malignant neoplasm of unspecified lung", "Condition"))
    for _key, loinc, unit, *_ in LABS:
        rows += [("LOINC", loinc, loinc, "Measurement"), ("UCUM", unit, unit, "Unit")]
    rows += [
        ("LOINC", "89247-1", "ECOG Performance Status score", "Measurement"),
        ("LOINC", "97509-4", "Cancer disease progression", "Measurement"),
        ("LOINC", "57290-9", "HLA-A [Type] by High resolution", "Observation"),
        ("LOINC", "LA9633-4", "Present", "Meas Value"),
        ("LOINC", "LA9634-2", "Absent", "Meas Value"),
        ("LOINC", "LA6576-8", "Positive", "Meas Value"),
        ("LOINC", "LA6577-6", "Negative", "Meas Value"),
        ("SNOMED", "268910001", "Patient's condition improved", "Meas Value"),
        ("SNOMED", "234336002", "Hemopoietic stem cell transplant", "Procedure"),
        ("actnav", "refractory", "Refractory", "Meas Value"),
        ("actnav", "relapse", "Relapse", "Meas Value"),
        (
            "actnav",
            "transplant-ineligible",
            "Not eligible for haematopoietic stem cell transplant",
            "Observation",
        ),
        ("actnav", "mage-a4-ihc", "MAGE-A4 expression by immunohistochemistry", "Measurement"),
        ("CDM", _DRUG_EXPOSURE_FIELD, _DRUG_EXPOSURE_FIELD, "Metadata"),
    ]
    rows += [("RxNorm", code, name, "Drug") for name, code in _single_agent_rxnorm().items()]
    unique = list(dict.fromkeys(rows))
    return [
        {
            "concept_id": OMOP_LOCAL_BASE + 1 + i,
            "concept_name": name,
            "domain_id": domain,
            "vocabulary_id": vocabulary,
            "concept_class_id": "Local",
            "standard_concept": None,
            "concept_code": code,
            "valid_start_date": dt.date(1970, 1, 1),
            "valid_end_date": dt.date(2099, 12, 31),
            "invalid_reason": None,
        }
        for i, (vocabulary, code, name, domain) in enumerate(unique)
    ]


def _omop_schemas() -> dict[str, Any]:
    import pyarrow as pa

    i, d, s, f = pa.int64(), pa.date32(), pa.string(), pa.float64()
    columns: dict[str, list[tuple[str, Any]]] = {
        "person": [("person_id", i), ("gender_concept_id", i), ("year_of_birth", i), ("month_of_birth", i),
                   ("day_of_birth", i), ("birth_datetime", pa.timestamp("s")), ("race_concept_id", i),
                   ("ethnicity_concept_id", i), ("person_source_value", s)],
        "death": [("person_id", i), ("death_date", d), ("death_type_concept_id", i)],
        "condition_occurrence": [("condition_occurrence_id", i), ("person_id", i), ("condition_concept_id", i),
                                 ("condition_start_date", d), ("condition_type_concept_id", i),
                                 ("condition_source_value", s), ("condition_source_concept_id", i),
                                 ("condition_status_source_value", s)],
        "measurement": [("measurement_id", i), ("person_id", i), ("measurement_concept_id", i),
                        ("measurement_date", d), ("measurement_type_concept_id", i), ("value_as_number", f),
                        ("value_as_concept_id", i), ("unit_concept_id", i), ("range_high", f),
                        ("measurement_source_value", s), ("unit_source_value", s), ("measurement_event_id", i),
                        ("meas_event_field_concept_id", i)],
        "observation": [("observation_id", i), ("person_id", i), ("observation_concept_id", i),
                        ("observation_date", d), ("observation_type_concept_id", i), ("value_as_string", s),
                        ("value_as_concept_id", i), ("observation_source_value", s)],
        "drug_exposure": [("drug_exposure_id", i), ("person_id", i), ("drug_concept_id", i),
                          ("drug_exposure_start_date", d), ("drug_exposure_end_date", d),
                          ("drug_type_concept_id", i), ("drug_source_value", s)],
        "procedure_occurrence": [("procedure_occurrence_id", i), ("person_id", i), ("procedure_concept_id", i),
                                 ("procedure_date", d), ("procedure_type_concept_id", i),
                                 ("procedure_source_value", s)],
        "episode": [("episode_id", i), ("person_id", i), ("episode_concept_id", i), ("episode_start_date", d),
                    ("episode_end_date", d), ("episode_number", i), ("episode_object_concept_id", i),
                    ("episode_type_concept_id", i), ("episode_source_value", s)],
        "episode_event": [("episode_id", i), ("event_id", i), ("episode_event_field_concept_id", i)],
        "concept": [("concept_id", i), ("concept_name", s), ("domain_id", s), ("vocabulary_id", s),
                    ("concept_class_id", s), ("standard_concept", s), ("concept_code", s),
                    ("valid_start_date", d), ("valid_end_date", d), ("invalid_reason", s)],
    }  # fmt: skip
    return {name: pa.schema(cols) for name, cols in columns.items()}


class _OmopSink:
    """Rows of one table, written in chunks as CSV, gzip-compressed CSV or Parquet."""

    CHUNK = 20000

    def __init__(self, path: Path, schema: Any, file_format: str):
        self.path, self.schema, self.format = path, schema, file_format
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None
        self.stream: Any = None
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        if self.writer is None:
            if self.format == "parquet":
                self.writer = pq.ParquetWriter(self.path, self.schema)
            else:
                compression = "gzip" if self.format == "csv.gz" else None
                self.stream = pa.output_stream(str(self.path), compression=compression)
                self.writer = pacsv.CSVWriter(self.stream, self.schema)
        self.writer.write_table(table)
        self.rows.clear()

    def close(self) -> None:
        if self.rows or self.writer is None:  # an empty table still gets its header
            self.flush()
        self.writer.close()
        if self.stream is not None:
            self.stream.close()


def write_omop(
    directory: Path, count: int, *, seed: int = 1, as_of: dt.date, file_format: str = "csv"
) -> dict[str, int]:
    """Write the population of :func:`write_bulk` (same seed, same patients) as an OMOP CDM v5.4 export.

    One file per table (``person``, ``death``, ``condition_occurrence``, ``measurement``,
    ``observation``, ``drug_exposure``, ``procedure_occurrence``, ``episode``, ``episode_event``,
    ``concept``) as ``.csv``, ``.csv.gz`` or ``.parquet``. Person *i* has ``person_id`` *i* + 1 and
    the FHIR Patient id as ``person_source_value``. The mapping (docs/screening.md): diagnoses as
    ICD-10-CM source concept + ICD-O-3 condition concept, clinical status in
    ``condition_status_source_value``; labs and ECOG in measurement; disease status in measurement
    with its value concept, the therapy it is about in ``measurement_event_id``; lines of therapy
    as treatment-regimen episodes (``episode_number``) linked to drug exposures; transplant
    ineligibility (``value_as_string`` Yes/No), HLA typing (GL string) and MAGE-A4 in observation;
    BRAF V600 as a measurement named by its source value; a deceased flag as a death row dated
    ``as_of`` (the generator draws no date of death).

    Args:
        directory: created if needed; files of the same names are replaced.
        count, seed, as_of: as :func:`write_bulk`.
        file_format: ``csv``, ``csv.gz`` or ``parquet``.

    Returns:
        Rows written per table.

    Raises:
        InputError: an unknown file format.
    """
    from actnav.errors import InputError

    if file_format not in _OMOP_FORMATS:
        raise InputError(
            f"unknown OMOP file format {file_format!r}", where="--file-format", hint="csv, csv.gz or parquet"
        )
    directory.mkdir(parents=True, exist_ok=True)
    concepts = omop_concepts()
    concept_id: dict[tuple[str, str], int] = {
        (c["vocabulary_id"], c["concept_code"]): c["concept_id"] for c in concepts
    }
    rxnorm = _single_agent_rxnorm()
    sinks = {
        name: _OmopSink(directory / f"{name}.{file_format}", schema, file_format)
        for name, schema in _omop_schemas().items()
    }
    ids: dict[str, int] = defaultdict(int)

    def next_id(table: str) -> int:
        ids[table] += 1
        return ids[table]

    def cid(coding: dict[str, Any]) -> int:
        return concept_id[(_VOCABULARY_OF[coding["system"]], coding["code"])]

    field_id = concept_id[("CDM", _DRUG_EXPOSURE_FIELD)]
    try:
        for index, resources in enumerate(generate(count, seed=seed, as_of=as_of)):
            person = index + 1
            exposures: dict[str, int] = {}
            for r in resources:
                _omop_rows(r, person, as_of, sinks, next_id, cid, rxnorm, concept_id, field_id, exposures)
        for concept in concepts:
            sinks["concept"].add(concept)
    finally:
        for sink in sinks.values():
            sink.close()
    return {name: sink.count for name, sink in sinks.items()}


def _omop_rows(
    r: dict[str, Any],
    person: int,
    as_of: dt.date,
    sinks: dict[str, _OmopSink],
    next_id: Any,
    cid: Any,
    rxnorm: dict[str, str],
    concept_id: dict[tuple[str, str], int],
    field_id: int,
    exposures: dict[str, int],
) -> None:
    """The OMOP rows of one generated FHIR resource (the inverse of actnav.screen.omop)."""
    kind = r["resourceType"]
    if kind == "Patient":
        birth = dt.date.fromisoformat(r["birthDate"])
        sinks["person"].add({
            "person_id": person, "gender_concept_id": 8532 if r["gender"] == "female" else 8507,
            "year_of_birth": birth.year, "month_of_birth": birth.month, "day_of_birth": birth.day,
            "race_concept_id": 0, "ethnicity_concept_id": 0, "person_source_value": r["id"],
        })  # fmt: skip
        if r.get("deceasedBoolean"):
            sinks["death"].add({"person_id": person, "death_date": as_of, "death_type_concept_id": 0})
    elif kind == "Condition":
        codings = r["code"]["coding"]
        icd10 = next(c for c in codings if c["system"] == ICD10)
        icdo3 = next((c for c in codings if c["system"] == ICDO3), None)
        status = r.get("clinicalStatus", {}).get("coding", [{}])[0].get("code")
        sinks["condition_occurrence"].add({
            "condition_occurrence_id": next_id("condition_occurrence"), "person_id": person,
            "condition_concept_id": cid(icdo3) if icdo3 else 0,
            "condition_start_date": dt.date.fromisoformat(r["onsetDateTime"]), "condition_type_concept_id": 0,
            "condition_source_value": icd10["code"], "condition_source_concept_id": cid(icd10),
            "condition_status_source_value": status,
        })  # fmt: skip
    elif kind == "MedicationStatement":
        regimen = r["medicationCodeableConcept"]["text"]
        exposure = next_id("drug_exposure")
        exposures[r["id"]] = exposure
        start = dt.date.fromisoformat(r["effectivePeriod"]["start"])
        end = dt.date.fromisoformat(r["effectivePeriod"]["end"])
        code = rxnorm.get(regimen)
        sinks["drug_exposure"].add({
            "drug_exposure_id": exposure, "person_id": person,
            "drug_concept_id": concept_id[("RxNorm", code)] if code else 0,
            "drug_exposure_start_date": start, "drug_exposure_end_date": end, "drug_type_concept_id": 0,
            "drug_source_value": regimen,
        })  # fmt: skip
        for ext in r.get("extension", []):
            episode = next_id("episode")
            sinks["episode"].add({
                "episode_id": episode, "person_id": person, "episode_concept_id": _TREATMENT_REGIMEN,
                "episode_start_date": start, "episode_end_date": end, "episode_number": ext["valuePositiveInt"],
                "episode_object_concept_id": 0, "episode_type_concept_id": 0, "episode_source_value": regimen,
            })  # fmt: skip
            sinks["episode_event"].add(
                {"episode_id": episode, "event_id": exposure, "episode_event_field_concept_id": field_id}
            )
    elif kind == "Procedure":
        sinks["procedure_occurrence"].add({
            "procedure_occurrence_id": next_id("procedure_occurrence"), "person_id": person,
            "procedure_concept_id": cid(r["code"]["coding"][0]),
            "procedure_date": dt.date.fromisoformat(r["performedDateTime"]), "procedure_type_concept_id": 0,
            "procedure_source_value": r["code"]["text"],
        })  # fmt: skip
    elif kind == "Observation":
        _omop_observation(r, person, sinks, next_id, cid, field_id, exposures)


def _omop_observation(
    r: dict[str, Any],
    person: int,
    sinks: dict[str, _OmopSink],
    next_id: Any,
    cid: Any,
    field_id: int,
    exposures: dict[str, int],
) -> None:
    coding = r["code"]["coding"][0]
    when = dt.date.fromisoformat(r["effectiveDateTime"])
    code_id = 0 if coding["code"] == "69548-6" else cid(coding)  # BRAF: see below
    measurement: dict[str, Any] = {
        "person_id": person, "measurement_date": when, "measurement_type_concept_id": 0,
        "measurement_concept_id": code_id, "measurement_source_value": coding["code"],
    }  # fmt: skip
    observation: dict[str, Any] = {
        "person_id": person, "observation_date": when, "observation_type_concept_id": 0,
        "observation_concept_id": code_id, "observation_source_value": coding["code"],
    }  # fmt: skip
    if "valueQuantity" in r:
        unit = r["valueQuantity"]["code"]
        measurement.update(
            value_as_number=float(r["valueQuantity"]["value"]),
            unit_concept_id=cid({"system": UCUM, "code": unit}),
            unit_source_value=unit,
        )
    elif "valueInteger" in r:
        measurement["value_as_number"] = float(r["valueInteger"])
    elif coding["code"] == "97509-4":
        measurement["value_as_concept_id"] = cid(r["valueCodeableConcept"]["coding"][0])
        if "focus" in r:
            measurement["measurement_event_id"] = exposures[r["focus"][0]["reference"].split("/", 1)[1]]
            measurement["meas_event_field_concept_id"] = field_id
    elif coding["code"] == "69548-6":
        # No genomic concept is used: the simpler form the importer reads, named by its source value.
        measurement.update(
            measurement_source_value="BRAF V600",
            value_as_concept_id=cid(r["valueCodeableConcept"]["coding"][0]),
        )
    else:
        if "valueBoolean" in r:
            observation["value_as_string"] = "Yes" if r["valueBoolean"] else "No"
        elif "valueString" in r:
            observation["value_as_string"] = r["valueString"]
        else:
            observation["value_as_concept_id"] = cid(r["valueCodeableConcept"]["coding"][0])
        sinks["observation"].add({"observation_id": next_id("observation"), **observation})
        return
    sinks["measurement"].add({"measurement_id": next_id("measurement"), **measurement})
