"""Patient records for screening: FHIR Bulk Data NDJSON resources grouped by patient.

A bulk export (FHIR Bulk Data Access, ``$export``) gives one NDJSON file per resource type; every
resource other than Patient names its patient in ``subject`` (or ``patient``) as ``Patient/<id>``.
:func:`patient_id_of` finds that id, and :func:`record_from_resources` builds the
:class:`~actnav.patient.models.PatientRecord` of one patient with the same importer as a single
bundle (:mod:`actnav.patient.fhir`), so codes, units and dates are read exactly alike.

Speed: validating every resource with its ``fhir.resources`` model costs about 2 ms per resource
(about 30 ms per patient), which alone would take 25 minutes for 100,000 patients on two cores.
With ``validate=False`` (the screening default) each resource is read through a thin attribute
view of its JSON instead: the dates, genders and quantities actnav reads are still checked as
written (``_check_written``: FHIR date format, gender codes) and by the importer (code systems,
units, plausible ranges); what is skipped is the check of elements actnav does not read.
``tests/unit/screen/test_records.py`` checks both paths give equal records for every example.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from actnav.errors import FhirImportError
from actnav.patient import fhir
from actnav.patient.models import PatientRecord

#: The resource types a screening run reads (one NDJSON file each, ``<Type>.ndjson``).
BULK_TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationStatement",
    "Procedure",
)


def patient_id_of(resource: Mapping[str, Any]) -> str | None:
    """The id of the patient a bulk-export resource belongs to.

    Args:
        resource: one parsed NDJSON line.

    Returns:
        The Patient id (``"abc"`` for ``Patient/abc`` or ``urn:uuid:abc``), the resource's own
        id for a Patient, or None when the resource names no patient.
    """
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict):
            text = ref.get("reference")
            if isinstance(text, str) and text:
                return text.removeprefix("urn:uuid:").rsplit("/", 1)[-1]
    return None


def record_from_resources(
    resources: Iterable[Mapping[str, Any]], *, as_of: dt.date, validate: bool = False
) -> PatientRecord:
    """Build one patient's record from their resources (the Patient and everything about them).

    Args:
        resources: parsed resources of one patient (any order), references as ``Type/id``.
        as_of: the evaluation date.
        validate: validate each resource with its ``fhir.resources`` R4B model (slow, see the
            module docstring); False reads them through a thin view.

    Returns:
        The patient record, as :func:`actnav.patient.fhir.patient_from_bundle` builds it.

    Raises:
        FhirImportError: as :func:`actnav.patient.fhir.patient_from_bundle` (no Patient, a date
            after ``as_of``, an unknown code system...).
    """
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"{r.get('resourceType')}/{r.get('id')}", "resource": r} for r in resources],
    }
    if validate:
        return fhir.patient_from_bundle(bundle, as_of=as_of)
    return _LiteImporter(as_of).run(bundle)


class _View:
    """Attribute access over a resource's JSON, as the importer reads a validated model:
    a missing element is None, objects are views, arrays are lists."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return _view(self._data.get(name))


def _view(value: Any) -> Any:
    if isinstance(value, dict):
        return _View(value)
    if isinstance(value, list):
        return [_view(v) for v in value]
    return value


class _LiteImporter(fhir._Importer):
    """The bundle importer with resources read through :class:`_View` instead of validated."""

    def _entries(self, data: object) -> tuple[list[fhir._Entry], Counter[str]]:
        assert isinstance(data, dict)
        entries: list[fhir._Entry] = []
        skipped: Counter[str] = Counter()
        for i, item in enumerate(data["entry"]):
            raw = item["resource"]
            rtype = raw.get("resourceType")
            if not isinstance(rtype, str) or not rtype:
                raise FhirImportError("the resource has no resourceType", where=f"resource {i}")
            if rtype not in fhir.READ_TYPES:
                skipped[rtype] += 1
                continue
            ref = fhir._resource_ref(rtype, raw, item.get("fullUrl"), i)
            fhir._check_written(rtype, ref, raw)
            entry = fhir._Entry(ref=ref, type=rtype, model=_View(raw))
            entries.append(entry)
            self.by_reference[ref] = entry
        return entries, skipped


def bundle_resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The resources of a single-patient Bundle as a bulk export carries them: references to a
    ``fullUrl`` (``urn:uuid:...``) rewritten to ``Type/id``.

    Args:
        bundle: a parsed FHIR Bundle whose entries all have ``resource.id``.

    Returns:
        The resources, in entry order (new objects; the bundle is not changed).
    """
    import json

    names = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if isinstance(e.get("fullUrl"), str)
    }

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: names.get(v, v) if k == "reference" and isinstance(v, str) else rewrite(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return [rewrite(json.loads(json.dumps(e["resource"]))) for e in bundle.get("entry", [])]
