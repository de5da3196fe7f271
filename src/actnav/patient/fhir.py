"""Import one patient's FHIR R4 Bundle as a :class:`~actnav.patient.models.PatientRecord`.

The contract (which resource, element, code system and unit carries each fact) is
``docs/fhir-input.md``; the code tables are ``data/terminology/*.yaml``. In short:

* Each entry's resource of a type actnav reads (Patient, Condition, Observation, Procedure,
  MedicationStatement, MedicationAdministration, MedicationRequest, Medication) is validated on
  its own with its ``fhir.resources`` R4B model, so an unneeded or odd resource elsewhere in the
  bundle never breaks the import; every other type is counted in ``PatientRecord.skipped``.
* Codes are mapped through the terminology tables; quantities are converted to the analyte's
  canonical UCUM unit with pint (:mod:`actnav.patient.units`).
* Broken input raises :class:`~actnav.errors.InputError` or a subclass (exit code 2) whose
  ``where`` names the resource and element (``Observation/lab-1.valueQuantity.unit``). Messages
  never contain names, identifiers or file paths of the patient (Synthea file names carry names).
  Before a resource is validated, the elements actnav reads that pydantic would coerce are checked
  as written: every date/dateTime/instant must be a JSON string in FHIR format (a number is not a
  Unix timestamp) and ``Patient.gender`` must be an administrative-gender code. Quantities must lie
  within the analyte's plausible range (``labs.yaml``). JSON that Python cannot read (a 5000-digit
  number, NaN, nesting deeper than :data:`MAX_DEPTH`) is an input error too, never a traceback.
* Missing clinical data is not an error: the fact is simply absent (the rules report it unknown).
  Data actnav cannot use (a coding without a system it cannot map, an observation without a
  value) is skipped with a line in ``PatientRecord.notes``.

Nothing heavy happens at import: ``fhir.resources``, pint and the YAML tables load on first use.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from actnav.errors import FhirImportError, InputError
from actnav.patient import terminology as term
from actnav.patient.models import (
    Coding,
    Diagnosis,
    DiseaseStatus,
    DiseaseStatusEvent,
    Finding,
    FindingValue,
    HlaAllele,
    Measurement,
    PatientRecord,
    Sex,
    TherapyExposure,
    Transplant,
)
from actnav.patient.units import to_unit

#: Extension carrying the line of therapy on a medication resource (``valuePositiveInt``).
LINE_OF_THERAPY_URL = "https://actnav.dev/fhir/StructureDefinition/line-of-therapy"

#: Deepest JSON nesting accepted (objects and arrays). A FHIR bundle needs about 20 levels;
#: deeper input is refused before anything recursive (validation) can overflow the stack.
MAX_DEPTH = 100

#: Resource types actnav reads; every other type is counted as skipped.
READ_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "Procedure",
        "MedicationStatement",
        "MedicationAdministration",
        "MedicationRequest",
        "Medication",
    }
)
_MEDICATION_USES = ("MedicationStatement", "MedicationAdministration", "MedicationRequest")

# Statuses that mean "this did not happen" (FHIR R4 value sets of each resource).
_IGNORED_STATUS = {
    "Observation": {"entered-in-error", "cancelled"},
    "Procedure": {"entered-in-error", "not-done"},
    "MedicationStatement": {"entered-in-error", "not-taken"},
    "MedicationAdministration": {"entered-in-error", "not-done"},
    "MedicationRequest": {"entered-in-error", "cancelled"},
}
_IGNORED_VERIFICATION = {"refuted", "entered-in-error"}
_EXCLUDED_CLINICAL = {"resolved", "inactive"}
_SEXES: dict[str, Sex] = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}

# The FHIR R4 regular expressions of the date, dateTime and instant datatypes
# (https://hl7.org/fhir/R4/datatypes.html). A dateTime with a time needs a time-zone offset.
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME = (
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
_DATE_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "date": (re.compile(rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"), "1990-05-04"),
    "dateTime": (
        re.compile(rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])({_TIME})?)?)?"),
        "2024-05-04 or 2024-05-04T10:30:00Z",
    ),
    "instant": (
        re.compile(rf"{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1]){_TIME}"),
        "2024-05-04T10:30:00Z",
    ),
}
_PERIOD = ("start", "end")
#: The date elements actnav reads, per resource type: (dotted path, FHIR datatype).
_DATE_ELEMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Patient": (("birthDate", "date"), ("deceasedDateTime", "dateTime")),
    "Condition": (
        ("onsetDateTime", "dateTime"),
        *((f"onsetPeriod.{p}", "dateTime") for p in _PERIOD),
        ("recordedDate", "dateTime"),
    ),
    "Observation": (
        ("effectiveDateTime", "dateTime"),
        ("effectiveInstant", "instant"),
        *((f"effectivePeriod.{p}", "dateTime") for p in _PERIOD),
    ),
    "Procedure": (
        ("performedDateTime", "dateTime"),
        *((f"performedPeriod.{p}", "dateTime") for p in _PERIOD),
    ),
    "MedicationStatement": (
        ("effectiveDateTime", "dateTime"),
        *((f"effectivePeriod.{p}", "dateTime") for p in _PERIOD),
    ),
    "MedicationAdministration": (
        ("effectiveDateTime", "dateTime"),
        *((f"effectivePeriod.{p}", "dateTime") for p in _PERIOD),
    ),
    "MedicationRequest": (
        ("authoredOn", "dateTime"),
        *((f"dispenseRequest.validityPeriod.{p}", "dateTime") for p in _PERIOD),
    ),
}
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")
# One- to three-letter amino-acid codes, to read p.V600E and p.Val600Glu alike (HGVS).
_AA3 = {
    "A": "Ala", "R": "Arg", "N": "Asn", "D": "Asp", "C": "Cys", "E": "Glu", "Q": "Gln",
    "G": "Gly", "H": "His", "I": "Ile", "L": "Leu", "K": "Lys", "M": "Met", "F": "Phe",
    "P": "Pro", "S": "Ser", "T": "Thr", "W": "Trp", "Y": "Tyr", "V": "Val",
}  # fmt: skip


def read_bundle(path: Path, *, as_of: dt.date) -> PatientRecord:
    """Read a FHIR R4 Bundle from ``path`` (``.json`` or gzip-compressed ``.json.gz``).

    Args:
        path: the bundle file; gzip is recognised by its magic bytes, whatever the suffix.
        as_of: the evaluation date; any date actnav reads must not be after it.

    Returns:
        The patient record.

    Raises:
        InputError: the file cannot be read or decompressed, or is not UTF-8.
        FhirImportError: invalid JSON (with line and column) or any error of
            :func:`patient_from_bundle`.
        UnitError: a quantity's unit cannot be converted (see :func:`patient_from_bundle`).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"cannot read the bundle file ({reason})", where="input file") from exc
    return patient_from_bundle(parse_bundle_json(raw), as_of=as_of)


MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024  # a gzip file may not unpack to more than this


def parse_bundle_json(
    raw: bytes, *, where: str = "input file", max_bytes: int = MAX_DECOMPRESSED_BYTES
) -> object:
    """Decode bundle bytes (UTF-8 JSON, optionally gzip-compressed) into the parsed document.

    Args:
        raw: the bytes as read from a file or an upload; gzip is recognised by its magic bytes.
        where: how error messages name the input (a file, an upload field).

    Returns:
        The ``json.loads`` document (not yet checked to be a Bundle).

    Raises:
        InputError: cannot be decompressed or is not UTF-8.
        FhirImportError: invalid JSON (with line and column), NaN/Infinity, an over-long number or
            nesting deeper than actnav reads.
    """
    try:
        if raw[:2] == b"\x1f\x8b":
            # Read at most max_bytes + 1 so a small "gzip bomb" cannot fill the memory.
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unpacked:
                raw = unpacked.read(max_bytes + 1)
            if len(raw) > max_bytes:
                raise InputError(
                    f"cannot read the bundle file: it unpacks to more than {max_bytes // (1024 * 1024)} MB",
                    where=where,
                )
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile, a truncated file
        raise InputError("cannot read the bundle file: it is not a valid gzip file", where=where) from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            f"cannot read the bundle file: it is not UTF-8 text (byte {exc.start})", where=where
        ) from exc
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise FhirImportError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", where=where
        ) from exc
    except RecursionError as exc:
        raise FhirImportError(
            f"invalid JSON: arrays and objects nest too deeply to read (actnav reads at most {MAX_DEPTH} levels)",
            where=where,
        ) from exc
    except ValueError as exc:  # a number longer than Python reads, or NaN / Infinity
        raise FhirImportError(f"invalid JSON: {_json_value_problem(exc)}", where=where) from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259 has no NaN or Infinity)")


def _json_value_problem(exc: ValueError) -> str:
    m = re.search(r"value has (\d+) digits", str(exc))
    if m:
        return f"a number has {m[1]} digits; at most {sys.get_int_max_str_digits()} can be read"
    return str(exc) if "JSON number" in str(exc) else "a value cannot be read"


def patient_from_bundle(data: object, *, as_of: dt.date) -> PatientRecord:
    """Build the patient record from a parsed FHIR R4 Bundle (``json.loads`` output).

    Args:
        data: the parsed JSON document.
        as_of: the evaluation date.

    Returns:
        The patient record with diagnoses, disease course, measurements (canonical units),
        findings, HLA alleles, therapies, transplants, skipped resource types and notes.

    Raises:
        FhirImportError: the top level is not a Bundle object; there is no Patient or more than
            one; the Patient has no birthDate; a resource fails its R4B model (first error, as
            ``Type/id.element``); a date read is after ``as_of``; a coding of Condition.code,
            Observation.code, Procedure.code or a medication uses an unknown code system.
        UnitError: an Observation quantity's unit cannot be converted to the analyte's
            canonical unit (naming ``Observation/<id>.valueQuantity.unit`` and the unit).
    """
    _check_depth(data)
    try:
        return _Importer(as_of).run(data)
    except RecursionError as exc:  # a safety net: _check_depth bounds the nesting
        raise FhirImportError("the bundle nests too deeply to read", where="input file") from exc


# -- parsing the bundle ------------------------------------------------------------------------


@dataclass
class _Entry:
    """One resource of a type actnav reads, validated with its R4B model."""

    ref: str  # "Observation/abc"
    type: str
    model: Any  # the fhir.resources R4B model instance


@cache
def _model_class(resource_type: str) -> Any:
    # Imported on first use: fhir.resources takes a few hundred milliseconds to import.
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def _validate(resource_type: str, ref: str, raw: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    try:
        return _model_class(resource_type).model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _join_loc(ref, first["loc"])
        count = exc.error_count()
        more = f" (and {count - 1} more problems)" if count > 1 else ""
        # The message only: pydantic's "input" could be a name or an identifier.
        raise FhirImportError(f"invalid {resource_type}: {first['msg']}{more}", where=where) from exc


def _check_depth(data: object) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH`, naming the entry (iteratively: no recursion)."""
    stack: list[tuple[object, int, str]] = [(data, 1, "input file")]
    while stack:
        node, depth, where = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise FhirImportError(
                f"the JSON nests more than {MAX_DEPTH} levels deep; actnav reads at most {MAX_DEPTH}",
                where=where,
            )
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            child_where = where
            if depth == 1 and key == "entry":
                child_where = "Bundle.entry"
            elif where == "Bundle.entry" and depth == 2:
                child_where = f"Bundle.entry[{key}]"
            elif where.startswith("Bundle.entry[") and depth in (3, 4):
                child_where = f"{where}.{key}"
            stack.append((child, depth + 1, child_where))


def _check_written(resource_type: str, ref: str, raw: dict[str, Any]) -> None:
    """Check, as written in the JSON, the elements pydantic would coerce to a wrong value.

    Dates: pydantic reads the number 0 as 1970-01-01; FHIR dates are strings. Gender: the
    ``fhir.resources`` model accepts any code; FHIR binds it to administrative-gender.
    """
    for path, kind in _DATE_ELEMENTS.get(resource_type, ()):
        node: Any = raw
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            _check_date_text(node, kind, f"{ref}.{path}")
    if resource_type == "Patient" and "gender" in raw:
        gender = raw["gender"]
        if gender is not None and gender not in _SEXES:
            shown = (
                repr(gender)
                if isinstance(gender, str) and re.fullmatch(r"[A-Za-z ]{0,20}", gender)
                else _kind(gender)
            )
            raise FhirImportError(
                f"{shown} is not an administrative-gender code",
                where=f"{ref}.gender",
                hint="allowed codes: male, female, other, unknown",
            )


def _check_date_text(value: object, kind: str, where: str) -> None:
    pattern, example = _DATE_FORMATS[kind]
    expected = f"expected a FHIR {kind} string like {example}"
    if not isinstance(value, str):
        raise FhirImportError(f"{expected}, got {_kind(value)}", where=where)
    if not pattern.fullmatch(value):
        # Echo only what looks like a date: a name typed into the field must not reach the message.
        shown = (
            repr(value)
            if re.fullmatch(r"[0-9TZ:+\-. ]{1,40}", value)
            else f"{_kind(value)} that is not a {kind}"
        )
        raise FhirImportError(f"{expected}, got {shown}", where=where)
    m = _PARTIAL_DATE.match(value)
    if m is not None and m[3]:
        try:
            dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise FhirImportError(f"{value[:10]} is not a calendar date", where=where) from None


def _kind(value: object) -> str:
    """What a JSON value is, for a message (never the value itself)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if value == "":
        return "an empty string"
    return "text"


def _join_loc(ref: str, loc: Iterable[int | str]) -> str:
    out = ref
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _resource_ref(resource_type: str, raw: dict[str, Any], full_url: object, index: int) -> str:
    rid = raw.get("id")
    if isinstance(rid, str) and rid:
        return f"{resource_type}/{rid}"
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
        return f"{resource_type}/{full_url.removeprefix('urn:uuid:')}"
    return f"{resource_type}/entry-{index}"


# -- the importer ------------------------------------------------------------------------------


@dataclass
class _Importer:
    as_of: dt.date
    notes: list[str] = field(default_factory=list)
    by_reference: dict[str, _Entry] = field(default_factory=dict)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    status_events: list[DiseaseStatusEvent] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    hla: list[HlaAllele] = field(default_factory=list)
    therapies: list[TherapyExposure] = field(default_factory=list)
    transplants: list[Transplant] = field(default_factory=list)
    unrecognised_drugs: int = 0

    def run(self, data: object) -> PatientRecord:
        entries, skipped = self._entries(data)
        patients = [e for e in entries if e.type == "Patient"]
        if not patients:
            raise FhirImportError("the bundle has no Patient resource", where="Bundle.entry")
        if len(patients) > 1:
            refs = ", ".join(p.ref for p in patients)
            raise FhirImportError(
                f"the bundle has {len(patients)} Patient resources ({refs})", where="Bundle.entry"
            )
        record_head = self._patient(patients[0])
        handlers = {
            "Condition": self._condition,
            "Observation": self._observation,
            "Procedure": self._procedure,
            "MedicationStatement": self._medication_use,
            "MedicationAdministration": self._medication_use,
            "MedicationRequest": self._medication_use,
        }
        for entry in entries:
            handler = handlers.get(entry.type)
            if handler is not None:
                handler(entry)
        if self.unrecognised_drugs:
            self.notes.append(
                f"{self.unrecognised_drugs} medication resource(s) name no drug or regimen in drugs.yaml: "
                "imported as not recognised, and not as anticancer therapy unless they carry the "
                "line-of-therapy extension"
            )
        return PatientRecord(
            **record_head,
            diagnoses=tuple(self.diagnoses),
            disease_status=tuple(self.status_events),
            measurements=tuple(self.measurements),
            findings=tuple(self.findings),
            hla=tuple(self.hla),
            therapies=tuple(self.therapies),
            transplants=tuple(self.transplants),
            skipped=dict(sorted(skipped.items())),
            notes=tuple(self.notes),
        )

    # -- bundle ---------------------------------------------------------------------------------

    def _entries(self, data: object) -> tuple[list[_Entry], Counter[str]]:
        if not isinstance(data, dict):
            kind = "an array" if isinstance(data, list) else f"a {type(data).__name__}"
            raise FhirImportError(f"the top level is {kind}, not a FHIR Bundle object", where="input file")
        resource_type = data.get("resourceType")
        if resource_type != "Bundle":
            shown = repr(resource_type) if isinstance(resource_type, str) else "missing"
            raise FhirImportError(f"resourceType is {shown}, not 'Bundle'", where="resourceType")
        raw_entries = data.get("entry", [])
        if not isinstance(raw_entries, list):
            raise FhirImportError("Bundle.entry is not an array", where="Bundle.entry")
        entries: list[_Entry] = []
        skipped: Counter[str] = Counter()
        for i, item in enumerate(raw_entries):
            if not isinstance(item, dict):
                raise FhirImportError("entry is not an object", where=f"Bundle.entry[{i}]")
            raw = item.get("resource")
            if raw is None:
                skipped["(entry without resource)"] += 1
                continue
            if not isinstance(raw, dict):
                raise FhirImportError("resource is not an object", where=f"Bundle.entry[{i}].resource")
            rtype = raw.get("resourceType")
            if not isinstance(rtype, str) or not rtype:
                got = "missing" if rtype is None else f"{_kind(rtype)}, not a resource type name"
                raise FhirImportError(
                    f"the resource has no resourceType ({got})",
                    where=f"Bundle.entry[{i}].resource.resourceType",
                    hint='every resource in a Bundle names its type, e.g. "Observation"',
                )
            if rtype not in READ_TYPES:
                skipped[rtype] += 1
                continue
            ref = _resource_ref(rtype, raw, item.get("fullUrl"), i)
            _check_written(rtype, ref, raw)
            entry = _Entry(ref=ref, type=rtype, model=_validate(rtype, ref, raw))
            entries.append(entry)
            self.by_reference[ref] = entry
            full_url = item.get("fullUrl")
            if isinstance(full_url, str):
                self.by_reference[full_url] = entry
        return entries, skipped

    def _resolve(self, reference: str | None) -> _Entry | None:
        if not reference:
            return None
        found = self.by_reference.get(reference)
        if found is None and "/" in reference:
            # An absolute URL ending in Type/id refers to the same resource.
            found = self.by_reference.get("/".join(reference.rstrip("/").split("/")[-2:]))
        return found

    # -- dates ----------------------------------------------------------------------------------

    def _date(self, value: Any, where: str, *, future_ok: bool = False) -> dt.date | None:
        """A FHIR date/dateTime/instant as a date (partial dates: their first day).

        Raises FhirImportError when it is after the evaluation date (unless ``future_ok``).
        """
        if value is None:
            return None
        shown: str
        if isinstance(value, dt.datetime):
            day, shown = value.date(), value.date().isoformat()
        elif isinstance(value, dt.date):
            day, shown = value, value.isoformat()
        else:
            text = str(value)
            m = _PARTIAL_DATE.match(text)
            if m is None:
                return None
            day = dt.date(int(m[1]), int(m[2] or 1), int(m[3] or 1))
            shown = text[: m.end()]
        if day > self.as_of and not future_ok:
            # A partial date is "after" only when its first possible day is after as_of.
            raise FhirImportError(
                f"{shown} is after the evaluation date {self.as_of.isoformat()}", where=where
            )
        return day

    def _period(
        self, period: Any, where: str, *, future_end_ok: bool = False
    ) -> tuple[dt.date | None, dt.date | None]:
        if period is None:
            return None, None
        start = self._date(period.start, f"{where}.start")
        end = self._date(period.end, f"{where}.end", future_ok=future_end_ok)
        return start, end

    # -- codes ----------------------------------------------------------------------------------

    def _codings(self, concept: Any, where: str) -> list[tuple[str | None, Coding]]:
        """The codings of a CodeableConcept with their system keys; unknown systems are errors."""
        out: list[tuple[str | None, Coding]] = []
        if concept is None:
            return out
        for i, c in enumerate(concept.coding or []):
            if c.code is None:
                continue
            key: str | None = None
            if c.system is not None:
                key = term.system_key(c.system)
                if key is None:
                    names = ", ".join(term.known_system_names())
                    raise FhirImportError(
                        f"unknown code system {c.system!r}",
                        where=f"{where}.coding[{i}].system",
                        hint=f"known systems: {names}",
                    )
            out.append((key, Coding(system=c.system, code=str(c.code), display=c.display)))
        return out

    @staticmethod
    def _texts(concept: Any) -> list[str]:
        if concept is None:
            return []
        texts = [c.display for c in (concept.coding or []) if c.display]
        return [concept.text, *texts] if concept.text else texts

    # -- Patient --------------------------------------------------------------------------------

    def _patient(self, entry: _Entry) -> dict[str, Any]:
        p = entry.model
        if p.birthDate is None:
            raise FhirImportError(
                "the Patient has no birthDate", where=f"{entry.ref}.birthDate", hint="age-based rules need it"
            )
        birth = self._date(p.birthDate, f"{entry.ref}.birthDate")
        if birth is None:
            raise FhirImportError("birthDate is not a date", where=f"{entry.ref}.birthDate")
        if isinstance(p.birthDate, str) and len(p.birthDate) < 10:
            self.notes.append(
                f"{entry.ref}.birthDate gives no full date; the first day of the period is used"
            )
        deceased_date = self._date(p.deceasedDateTime, f"{entry.ref}.deceasedDateTime")
        deceased = bool(p.deceasedBoolean) or deceased_date is not None
        return {
            "id": entry.ref.split("/", 1)[1],
            "birth_date": birth,
            "sex": _SEXES.get(p.gender or "unknown", "unknown"),
            "deceased": deceased,
            "deceased_date": deceased_date,
        }

    # -- Condition ------------------------------------------------------------------------------

    def _condition(self, entry: _Entry) -> None:
        c = entry.model
        verification = _first_code(c.verificationStatus)
        if verification in _IGNORED_VERIFICATION:
            return
        codings = self._codings(c.code, f"{entry.ref}.code")
        onset = self._date(c.onsetDateTime, f"{entry.ref}.onsetDateTime")
        if onset is None and c.onsetPeriod is not None:
            onset, _ = self._period(c.onsetPeriod, f"{entry.ref}.onsetPeriod")
        recorded = self._date(c.recordedDate, f"{entry.ref}.recordedDate")
        clinical = _first_code(c.clinicalStatus)
        if clinical in _EXCLUDED_CLINICAL:
            return
        mapping = term.map_condition(codings, [c.code.text] if c.code is not None and c.code.text else [])
        concepts = mapping.concepts
        if self._condition_stage_iv(c) and "metastatic_disease" not in concepts:
            concepts = (*concepts, *term.concept_lineage("metastatic_disease"))
        if not mapping.concepts and any(key is None for key, _ in codings):
            self.notes.append(
                f"{entry.ref}.code: a coding without a system could not be mapped by its display; skipped"
            )
        if mapping.refined:
            labels = ", ".join(mapping.refined)
            self.notes.append(f"{entry.ref}.code: the text refines the coded diagnosis: {labels} added")
        if mapping.negated:
            labels = ", ".join(mapping.negated)
            self.notes.append(
                f"{entry.ref}.code: the text mentions {labels} only negated or as uncertain; not added"
            )
        self.diagnoses.append(
            Diagnosis(
                resource=entry.ref,
                codings=tuple(coding for _, coding in codings),
                concepts=concepts,
                text=_label(c.code),
                clinical_status=clinical,
                onset=onset or recorded,
                in_relapse=mapping.in_relapse,
            )
        )

    def _condition_stage_iv(self, c: Any) -> bool:
        """``Condition.stage.summary`` says stage IV (or unresectable), coded or as text."""
        for stage in c.stage or []:
            if self._answer_stage(stage.summary) is not None:
                return True
            if any(term.is_stage_iv(t) for t in self._texts(stage.summary)):
                return True
        return False

    # -- Observation ----------------------------------------------------------------------------

    def _observation(self, entry: _Entry) -> None:
        o = entry.model
        if o.status in _IGNORED_STATUS["Observation"]:
            return
        codings = self._codings(o.code, f"{entry.ref}.code")
        when = self._effective(o, entry.ref)
        # The first coding actnav knows decides what the Observation is.
        for key, coding in codings:
            if key == "loinc" and term.lab_code(coding.code) is not None:
                self._measurement(entry, coding.code, when)
                return
            kind = term.observation_code(key, coding.code) if key else None
            if kind is not None:
                self._observation_of_kind(entry, kind, when)
                return
        if self._answer_stage(o.valueCodeableConcept) == "unresectable":
            self._metastatic(entry, "unresectable", when)
            return
        key_by_text = next((k for t in self._texts(o.code) if (k := term.text_finding(t))), None)
        if key_by_text is not None:
            self._finding(entry, key_by_text, when, detail=f"{_label(o.code)}: {_value_text(o)}")
        elif any(key is None for key, _ in codings):
            self.notes.append(f"{entry.ref}.code: a coding without a system could not be mapped; skipped")

    def _effective(self, o: Any, ref: str) -> dt.date | None:
        when = self._date(o.effectiveDateTime, f"{ref}.effectiveDateTime")
        if when is None:
            when = self._date(o.effectiveInstant, f"{ref}.effectiveInstant")
        if when is None and o.effectivePeriod is not None:
            start, end = self._period(o.effectivePeriod, f"{ref}.effectivePeriod")
            when = end or start
        return when

    def _observation_of_kind(self, entry: _Entry, kind: term.ObservationCode, when: dt.date | None) -> None:
        o = entry.model
        if kind.kind == "disease_status":
            self._disease_status(entry, when)
        elif kind.kind == "stage_group":
            stage = self._answer_stage(o.valueCodeableConcept)
            texts = [*self._texts(o.valueCodeableConcept), *([o.valueString] if o.valueString else [])]
            if stage is not None or any(term.is_stage_iv(t) for t in texts):
                self._metastatic(entry, stage or "IV", when)
        elif kind.kind == "unresectable":
            if o.valueBoolean is not False and self._result(o, entry) != "negative":
                self._metastatic(entry, "unresectable", when)
        elif kind.kind == "genetic_variant":
            self._variant(entry, when)
        elif kind.kind == "finding":
            assert kind.key is not None  # checked when observations.yaml is loaded
            self._finding(entry, kind.key, when)
        elif kind.kind == "hla":
            self._hla(entry, kind.locus, when)

    def _measurement(self, entry: _Entry, code: str, when: dt.date | None) -> None:
        o = entry.model
        lab = term.lab_code(code)
        assert lab is not None
        analyte = term.analyte(lab.key)
        value: float | None = None
        original = ""
        if lab.key in ("ecog", "karnofsky") and o.valueQuantity is None:
            value, original, element = self._score(entry)
            if value is None:
                self.notes.append(f"{entry.ref}: no readable {lab.key.upper()} value; skipped")
                return
            _check_plausible(lab.key, value, f"{entry.ref}.{element}", original)
        else:
            q = o.valueQuantity
            if q is None or q.value is None:
                self.notes.append(f"{entry.ref}: {lab.key} observation without valueQuantity.value; skipped")
                return
            unit_written = _quantity_unit(q)
            where = f"{entry.ref}.valueQuantity.unit"
            if unit_written is None and analyte.unit == "{score}":
                unit_written = "{score}"
            value = to_unit(_float(q.value), unit_written or "", analyte.unit, where, analyte=lab.key)
            # As written for the report: the unit text a person reads, else the UCUM code.
            original = f"{q.comparator or ''}{_number(q.value)} {q.unit or unit_written or ''}".strip()
            _check_plausible(lab.key, value, f"{entry.ref}.valueQuantity.value", original)
        uln = self._upper_limit(entry, analyte, lab.key)
        self.measurements.append(
            Measurement(
                resource=entry.ref,
                key=lab.key,
                code=code,
                value=value,
                unit=analyte.unit,
                original=original,
                date=when,
                upper_limit_normal=uln,
            )
        )

    def _score(self, entry: _Entry) -> tuple[float | None, str, str]:
        """A performance score, as written, and the element it came from."""
        o = entry.model
        if o.valueInteger is not None:
            return float(o.valueInteger), str(o.valueInteger), "valueInteger"
        for key, coding in self._value_codings(o.valueCodeableConcept):
            found = term.answer(key, coding.code) if key else None
            if found is not None and found.score is not None:
                return float(found.score), coding.display or coding.code, "valueCodeableConcept"
        texts = [(t, "valueCodeableConcept") for t in self._texts(o.valueCodeableConcept)]
        texts += [(o.valueString, "valueString")] if o.valueString else []
        for text, element in texts:
            m = re.fullmatch(r"\s*(?:ecog\s*)?(\d{1,3})\s*", text, re.IGNORECASE)
            if m:
                return float(m[1]), text, element
        return None, "", ""

    def _upper_limit(self, entry: _Entry, analyte: term.Analyte, key: str) -> float | None:
        o = entry.model
        ranges = o.referenceRange or []
        if not ranges or ranges[0].high is None or ranges[0].high.value is None:
            return None
        high = ranges[0].high
        # A range without its own unit is taken to be in the value's unit.
        unit = _quantity_unit(high) or (_quantity_unit(o.valueQuantity) if o.valueQuantity else None)
        where = f"{entry.ref}.referenceRange[0].high.unit"
        uln = to_unit(_float(high.value), unit or "", analyte.unit, where, analyte=key)
        value_where = f"{entry.ref}.referenceRange[0].high.value"
        written = f"{_short(_number(high.value))} {high.unit or unit or ''}".strip()
        if math.isfinite(uln) and uln <= 0:
            raise FhirImportError(
                f"an upper limit of normal must be above 0, got {written}",
                where=value_where,
                hint="values are divided by it (ALT x ULN)",
            )
        _check_plausible(key, uln, value_where, written)
        return uln

    def _value_codings(self, concept: Any) -> list[tuple[str | None, Coding]]:
        # Values may use systems actnav does not know (AJCC, local lab codes): never an error.
        out: list[tuple[str | None, Coding]] = []
        for c in (concept.coding or []) if concept is not None else []:
            if c.code is not None:
                key = term.system_key(c.system) if c.system else None
                out.append((key, Coding(system=c.system, code=str(c.code), display=c.display)))
        return out

    def _answer_stage(self, concept: Any) -> str | None:
        for key, coding in self._value_codings(concept):
            found = term.answer(key, coding.code) if key else None
            if found is not None and found.stage is not None:
                return found.stage
        return None

    def _disease_status(self, entry: _Entry, when: dt.date | None) -> None:
        o = entry.model
        status: DiseaseStatus | None = None
        for key, coding in self._value_codings(o.valueCodeableConcept):
            found = term.answer(key, coding.code) if key else None
            if found is not None and found.status is not None:
                status = found.status
                break
        if status is None:
            texts = [*self._texts(o.valueCodeableConcept), *([o.valueString] if o.valueString else [])]
            status = next((s for t in texts if (s := _status_from_text(t))), None)
        if status is None:
            self.notes.append(f"{entry.ref}.valueCodeableConcept: disease status not recognised; skipped")
            return
        self.status_events.append(
            DiseaseStatusEvent(
                resource=entry.ref, status=status, date=when, focus=self._therapy_focus(o.focus)
            )
        )

    def _therapy_focus(self, focus: Any) -> str | None:
        for reference in focus or []:
            target = self._resolve(reference.reference)
            if target is not None and target.type in (*_MEDICATION_USES, "Procedure"):
                return target.ref
            ref = reference.reference or ""
            if ref.split("/", 1)[0] in _MEDICATION_USES:
                return ref  # "MedicationStatement/x" not in this bundle: keep the reference as given
        return None

    def _metastatic(self, entry: _Entry, stage: str, when: dt.date | None) -> None:
        text = "Unresectable" if stage == "unresectable" else "Stage IV"
        self.diagnoses.append(
            Diagnosis(
                resource=entry.ref,
                concepts=term.concept_lineage("metastatic_disease"),
                text=f"{text} ({_label(entry.model.code)})",
                onset=when,
            )
        )

    def _result(self, o: Any, entry: _Entry) -> FindingValue | None:
        """Positive / negative / indeterminate from any value[x] of a qualitative Observation."""
        if o.valueBoolean is not None:
            return "positive" if o.valueBoolean else "negative"
        for key, coding in self._value_codings(o.valueCodeableConcept):
            found = term.answer(key, coding.code) if key else None
            if found is not None and found.result is not None:
                return found.result
        for text in [*self._texts(o.valueCodeableConcept), *([o.valueString] if o.valueString else [])]:
            value = term.result_from_text(text)
            if value is not None:
                return value
        q = o.valueQuantity
        if q is not None and q.value is not None:
            if q.value < 0:
                raise FhirImportError(
                    f"a measured amount cannot be negative, got {_short(_number(q.value))}",
                    where=f"{entry.ref}.valueQuantity.value",
                )
            # Viral loads: "<15" (below the limit of detection) or 0 is negative.
            if q.comparator in ("<", "<=") or q.value == 0:
                return "negative"
            return "positive"
        return None

    def _finding(self, entry: _Entry, key: str, when: dt.date | None, *, detail: str = "") -> None:
        o = entry.model
        value = self._result(o, entry)
        if value is None:
            self.notes.append(f"{entry.ref}: {key} result not recognised; skipped")
            return
        written = detail or _value_text(o)
        self.findings.append(Finding(resource=entry.ref, key=key, value=value, detail=written, date=when))

    def _variant(self, entry: _Entry, when: dt.date | None) -> None:
        o = entry.model
        comps = term.observations().variant_components
        gene: term.Gene | None = None
        change = ""
        for comp in o.component or []:
            codes = {(k, c.code) for k, c in self._value_codings(comp.code)}
            if (comps.gene_studied.system, comps.gene_studied.code) in codes:
                for _, c in self._value_codings(comp.valueCodeableConcept):
                    gene = gene or term.gene(c.code) or (term.gene(c.display) if c.display else None)
                if gene is None and comp.valueCodeableConcept is not None and comp.valueCodeableConcept.text:
                    gene = term.gene(comp.valueCodeableConcept.text)
            elif (comps.amino_acid_change.system, comps.amino_acid_change.code) in codes:
                change = comp.valueString or _label(comp.valueCodeableConcept)
        if gene is None:
            return  # a variant of a gene the rules do not use
        value = self._result(o, entry)
        if value is None:
            self.notes.append(f"{entry.ref}: {gene.symbol} variant result not recognised; skipped")
            return
        if value == "positive":
            if not change:
                value = "indeterminate"
                change = f"{gene.symbol} variant present; amino-acid change not given"
            elif not _hotspot(gene.hotspot).search(change):
                self.notes.append(
                    f"{entry.ref}: {gene.symbol} {change} is not a {gene.hotspot} variant: "
                    f"{gene.finding} negative"
                )
                value = "negative"
        self.findings.append(
            Finding(resource=entry.ref, key=gene.finding, value=value, detail=change, date=when)
        )

    def _hla(self, entry: _Entry, locus: str | None, when: dt.date | None) -> None:
        o = entry.model
        strings: list[str] = []
        if o.valueString:
            strings.append(o.valueString)
        for key, coding in self._value_codings(o.valueCodeableConcept):
            if key in ("imgt_hla", "glstring", None):
                strings.append(coding.code)
        if not strings and o.valueCodeableConcept is not None and o.valueCodeableConcept.text:
            strings.append(o.valueCodeableConcept.text)
        for gl in strings:
            if "|" in gl:
                self.notes.append(f"{entry.ref}: GL string lists alternative genotypes; the first is read")
            for written in _gl_positions(gl):
                self._hla_allele(entry, written, locus, when)

    def _hla_allele(self, entry: _Entry, written: str, locus: str | None, when: dt.date | None) -> None:
        options = [w if "*" in w or locus is None else f"{locus}*{w}" for w in written.split("/")]
        calls = [term.hla_p_group(w) for w in options]
        if any(c.locus is None for c in calls):
            self.notes.append(f"{entry.ref}: {written!r} is not an HLA allele name; skipped")
            return
        groups = {c.p_group for c in calls}
        p_group = calls[0].p_group if len(groups) == 1 else None
        absent = all(c.known_absent for c in calls)
        for note in dict.fromkeys(c.note for c in calls if c.note and not c.known_absent):
            self.notes.append(f"{entry.ref}: {note}")
        if len(calls) > 1 and p_group is None and not absent:
            self.notes.append(
                f"{entry.ref}: ambiguous typing {written!r} spans P groups; P group not determined"
            )
        self.hla.append(
            HlaAllele(
                resource=entry.ref,
                written=written,
                locus=calls[0].locus or "",
                fields=min(c.fields for c in calls),
                p_group=p_group,
                p_group_known_absent=absent,
                date=when,
            )
        )

    # -- Procedure ------------------------------------------------------------------------------

    def _procedure(self, entry: _Entry) -> None:
        p = entry.model
        if p.status in _IGNORED_STATUS["Procedure"]:
            return
        codings = self._codings(p.code, f"{entry.ref}.code")
        start = self._date(p.performedDateTime, f"{entry.ref}.performedDateTime")
        end = start
        if start is None and p.performedPeriod is not None:
            start, end = self._period(p.performedPeriod, f"{entry.ref}.performedPeriod")
        texts = [p.code.text] if p.code is not None and p.code.text else []
        found = term.match_procedure(codings, texts)
        if found is None:
            return
        if found.kind == "hsct":
            self.transplants.append(
                Transplant(resource=entry.ref, type=found.transplant or "unknown", date=start)
            )
            return
        # Only CAR-T products count as agents here (a lymphodepletion drug named in the text
        # has its own medication resource).
        products = [
            a for a in term.match_drug([], self._texts(p.code)).agents if "car_t" in term.drug_classes([a])
        ]
        agents = tuple(products)
        self.therapies.append(
            TherapyExposure(
                resource=entry.ref,
                text=_label(p.code),
                agents=agents,
                classes=term.drug_classes(agents) if agents else ("car_t",),
                start=start,
                end=end or start,
                line=_line_of_therapy(p),
                anticancer=True,
            )
        )

    # -- medications ----------------------------------------------------------------------------

    def _medication_use(self, entry: _Entry) -> None:
        m = entry.model
        if m.status in _IGNORED_STATUS[entry.type]:
            return
        codings, texts, label = self._medication(entry)
        dates, ongoing = self._medication_dates(entry)
        line = _line_of_therapy(m)
        found = term.match_drug([c.code for k, c in codings if k == "rxnorm"], texts)
        unrecognised = not found.agents
        if unrecognised:
            # Kept, flagged, so the report can say "not recognised: <text>". Without the
            # line-of-therapy extension it is never anticancer (it counts as no line, no washout).
            self.unrecognised_drugs += 1
        given = [d for d in dates if d is not None]
        self.therapies.append(
            TherapyExposure(
                resource=entry.ref,
                text=label or "(medication not named)",
                agents=found.agents,
                classes=found.classes,
                start=min(given) if given else None,
                end=None if ongoing or not given else max(given),
                line=line,
                anticancer=line is not None if found.anticancer is None else found.anticancer,
                unrecognised=unrecognised,
            )
        )

    def _medication(self, entry: _Entry) -> tuple[list[tuple[str | None, Coding]], list[str], str]:
        """Codings, texts and a label of the drug: the CodeableConcept or the referenced Medication."""
        m = entry.model
        if m.medicationCodeableConcept is not None:
            cc = m.medicationCodeableConcept
            codings = self._codings(cc, f"{entry.ref}.medicationCodeableConcept")
            return codings, self._texts(cc), _label(cc)
        reference = m.medicationReference.reference if m.medicationReference is not None else None
        medication, where = self._medication_resource(entry, reference)
        if medication is None:
            display = m.medicationReference.display if m.medicationReference is not None else None
            return [], [display] if display else [], display or ""
        codings = self._codings(medication.code, f"{where}.code")
        texts = self._texts(medication.code)
        for i, ingredient in enumerate(medication.ingredient or []):
            item = ingredient.itemCodeableConcept
            codings += self._codings(item, f"{where}.ingredient[{i}].itemCodeableConcept")
            texts += self._texts(item)
        return codings, texts, _label(medication.code)

    def _medication_resource(self, entry: _Entry, reference: str | None) -> tuple[Any, str]:
        if reference and reference.startswith("#"):
            for i, contained in enumerate(entry.model.contained or []):
                if getattr(contained, "id", None) == reference[1:]:
                    return contained, f"{entry.ref}.contained[{i}]"
            return None, ""
        target = self._resolve(reference)
        if target is not None and target.type == "Medication":
            return target.model, target.ref
        return None, ""

    def _medication_dates(self, entry: _Entry) -> tuple[list[dt.date | None], bool]:
        """The dates a medication resource gives, and whether its period is still open."""
        m = entry.model
        ref = entry.ref
        if entry.type == "MedicationRequest":
            first = self._date(m.authoredOn, f"{ref}.authoredOn")
            period = m.dispenseRequest.validityPeriod if m.dispenseRequest is not None else None
            where = f"{ref}.dispenseRequest.validityPeriod"
        else:
            first = self._date(m.effectiveDateTime, f"{ref}.effectiveDateTime")
            period, where = m.effectivePeriod, f"{ref}.effectivePeriod"
        # A planned end after the evaluation date is legitimate (ongoing therapy): not an error;
        # the therapy's end is left open rather than set in the future.
        start, end = self._period(period, where, future_end_ok=True)
        ongoing = period is not None and (period.end is None or (end is not None and end > self.as_of))
        if end is not None and end > self.as_of:
            self.notes.append(f"{where}.end is after the evaluation date: therapy taken as ongoing")
            end = None
        return [first, start, end], ongoing


# -- small helpers -----------------------------------------------------------------------------


def _first_code(concept: Any) -> str | None:
    if concept is None:
        return None
    for c in concept.coding or []:
        if c.code:
            return str(c.code)
    return None


def _label(concept: Any) -> str:
    """The human text of a CodeableConcept: text, else the first display, else the first code."""
    if concept is None:
        return ""
    if concept.text:
        return str(concept.text)
    for c in concept.coding or []:
        if c.display:
            return str(c.display)
    for c in concept.coding or []:
        if c.code:
            return str(c.code)
    return ""


def _value_text(o: Any) -> str:
    if o.valueString:
        return str(o.valueString)
    if o.valueCodeableConcept is not None:
        return _label(o.valueCodeableConcept)
    if o.valueBoolean is not None:
        return "true" if o.valueBoolean else "false"
    if o.valueQuantity is not None and o.valueQuantity.value is not None:
        q = o.valueQuantity
        return f"{q.comparator or ''}{_number(q.value)} {_quantity_unit(q) or ''}".strip()
    return ""


def _quantity_unit(q: Any) -> str | None:
    """The unit of a Quantity: its UCUM ``code`` when given, else the ``unit`` text."""
    if q is None:
        return None
    system = (q.system or "").rstrip("/")
    if q.code and (not system or system == "http://unitsofmeasure.org"):
        return str(q.code)
    return str(q.unit) if q.unit else (str(q.code) if q.code else None)


def _float(value: Decimal | float | int) -> float:
    """A quantity's value as a float; too large a number becomes infinity (refused as implausible)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _check_plausible(key: str, value: float, where: str, written: str) -> None:
    """Refuse a value (in the canonical unit) outside the analyte's plausible range of labs.yaml."""
    problem = term.implausible(key, value)
    if problem is not None:
        shown = f"written {written!r}; " if written and len(written) <= 40 else ""
        raise FhirImportError(problem, where=where, hint=f"{shown}check the value and its unit")


def _short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for a message (a number may have thousands of digits)."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _number(value: Decimal | float | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _line_of_therapy(resource: Any) -> int | None:
    for ext in resource.extension or []:
        if ext.url == LINE_OF_THERAPY_URL and ext.valuePositiveInt is not None:
            return int(ext.valuePositiveInt)
    return None


_STATUS_WORDS: tuple[tuple[DiseaseStatus, re.Pattern[str]], ...] = (
    ("refractory", re.compile(r"refractory")),
    ("relapse", re.compile(r"relapse|recurren")),
    ("progression", re.compile(r"progressi|worsen")),
    ("complete_remission", re.compile(r"complete (remission|response)|full remission")),
    ("response", re.compile(r"partial (remission|response)|improv|respon")),
    ("stable", re.compile(r"stable")),
)


@cache
def _hotspot(hotspot: str) -> re.Pattern[str]:
    """A pattern for a protein hotspot in HGVS: ``V600`` matches p.V600E, p.Val600Glu, V600K."""
    aa, position = hotspot[0].upper(), hotspot[1:]
    return re.compile(rf"(?<![A-Za-z])(?:{aa}|{_AA3[aa]}){position}(?!\d)", re.IGNORECASE)


def _status_from_text(text: str) -> DiseaseStatus | None:
    """A disease status named in free text (used only when the value is not coded)."""
    norm = text.lower()
    for status, pattern in _STATUS_WORDS:
        if pattern.search(norm):
            return status
    return None


def _gl_positions(gl: str) -> Sequence[str]:
    """The allele positions of a GL string: ``HLA-A*02:01+HLA-A*03:01`` -> two positions.

    GL String operators (glstring.org): ``^`` loci, ``|`` genotype alternatives, ``+`` the two
    alleles of a genotype, ``~`` phased haplotype, ``/`` allele ambiguity (kept together, as one
    position). Code values such as ``hla#3.31.0#HLA-A*01:01`` carry a namespace before ``#``.
    """
    body = gl.rsplit("#", 1)[-1].strip()
    positions: list[str] = []
    for locus_part in body.split("^"):
        genotype = locus_part.split("|")[0]  # genotype alternatives: the first one is read
        for allele in re.split(r"[+~]", genotype):
            allele = allele.strip()
            if allele:
                positions.append(allele)
    return positions


__all__ = ["LINE_OF_THERAPY_URL", "READ_TYPES", "patient_from_bundle", "read_bundle"]
