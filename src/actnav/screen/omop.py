"""OMOP CDM v5.4 input for a screening run: tables converted, per patient, into FHIR R4 resources.

An OMOP export is a folder of tables (``person``, ``condition_occurrence``, ``measurement``,
``drug_exposure``, ``procedure_occurrence``; optional ``observation``, ``death``, ``concept``,
``episode``, ``episode_event``), each one file ``<table>.csv``, ``<table>.csv.gz`` or
``<table>.parquet`` with the CDM v5.4 column names (https://ohdsi.github.io/CommonDataModel/cdm54.html).
:func:`shard_omop` reads them with pyarrow in batches and writes each row as the FHIR resource the
bulk path would carry (Patient, Condition, Observation, MedicationStatement, Procedure) into the
same partition shards (``part-NNNNN/<Type>.ndjson``), so the importer, the vectorised screen and
their verdicts are exactly those of a FHIR Bulk Data export.

Codes: a concept_id is read through the export's ``concept`` table (vocabulary_id + concept_code,
vocabulary -> code system in ``data/terminology/omop.yaml``). Without the table (or for concept 0)
``condition_source_value`` is read as ICD-10-CM when it is a valid ICD-10-CM code,
``measurement_source_value`` as LOINC when it has the LOINC shape, ``unit_source_value`` as the
unit text; any other source value becomes the CodeableConcept text (read by the text tables).
The full mapping is in ``docs/screening.md`` ("OMOP CDM input").

Memory: the person table is read once into a map person_id -> partition (about 100 bytes per
person), the concept table is filtered to the concept ids the export uses, and clinical rows are
streamed in batches of :data:`BATCH_ROWS` and appended to their partition's files.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import logging
import math
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from actnav.errors import InputError
from actnav.knowledge.models import SourceRef
from actnav.patient.terminology import SystemKey, _DataFile

log = logging.getLogger(__name__)

#: Rows read per batch (pyarrow record batches).
BATCH_ROWS = 65536
InputFormat = Literal["fhir", "omop"]
_UCUM = "http://unitsofmeasure.org"
_CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CLINICAL_CODES = frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"})
_LOINC_SHAPE = re.compile(r"^\d{1,7}-\d$")
_ICDO3_HISTOLOGY = re.compile(r"^\d{4}/\d$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")


# -- omop.yaml ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OmopVocabulary(_Strict):
    """A vocabulary_id of the OMOP vocabularies and the code system it is (None: text only)."""

    vocabulary_id: str
    system: SystemKey | None
    source: SourceRef


class OmopGender(_Strict):
    """A gender_concept_id and the FHIR administrative gender it means."""

    concept_id: int
    gender: Literal["male", "female"]
    source: SourceRef


class TreatmentEpisode(_Strict):
    """An episode_concept_id whose episode_number is a line of therapy."""

    concept_id: int
    name: str
    source: SourceRef


class FieldConcept(_Strict):
    """The CDM field concept ``drug_exposure.drug_exposure_id`` (by name and known ids)."""

    name: str
    concept_ids: tuple[int, ...]
    source: SourceRef


class BirthEstimate(_Strict):
    """Month and day used when person gives only the year (or year and month) of birth."""

    month: int
    day: int
    day_when_month_known: int
    source: SourceRef


class OmopFile(_DataFile):
    """``terminology/omop.yaml``."""

    vocabularies: tuple[OmopVocabulary, ...]
    genders: tuple[OmopGender, ...]
    treatment_episodes: tuple[TreatmentEpisode, ...]
    drug_exposure_field: FieldConcept
    birth_estimate: BirthEstimate


@cache
def omop_tables() -> OmopFile:
    """``data/terminology/omop.yaml``, validated. Raises DataFileError when invalid."""
    from actnav.knowledge.loader import load_data

    return load_data(OmopFile, "terminology/omop.yaml")


@cache
def _system_uris() -> dict[str, str | None]:
    """vocabulary_id -> FHIR system URI (None: a vocabulary read as text only)."""
    from actnav.patient.terminology import code_systems

    uri_of = {s.key: s.uri for s in code_systems().systems}
    return {v.vocabulary_id: (uri_of[v.system] if v.system else None) for v in omop_tables().vocabularies}


# -- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


#: Tables read, with the columns actnav needs (CDM v5.4 names) and the optional ones it reads.
TABLES: dict[str, _Spec] = {
    "person": _Spec(
        ("person_id", "gender_concept_id", "year_of_birth"),
        ("month_of_birth", "day_of_birth", "birth_datetime"),
    ),
    "death": _Spec(("person_id", "death_date")),
    "concept": _Spec(("concept_id", "concept_name", "vocabulary_id", "concept_code")),
    "episode": _Spec(("episode_id", "person_id", "episode_concept_id"), ("episode_number",)),
    "episode_event": _Spec(("episode_id", "event_id", "episode_event_field_concept_id")),
    "condition_occurrence": _Spec(
        ("condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date"),
        ("condition_source_value", "condition_source_concept_id", "condition_status_source_value"),
    ),
    "measurement": _Spec(
        ("measurement_id", "person_id", "measurement_concept_id", "measurement_date"),
        (
            "value_as_number",
            "value_as_concept_id",
            "unit_concept_id",
            "range_high",
            "measurement_source_value",
            "measurement_source_concept_id",
            "unit_source_value",
            "value_source_value",
            "measurement_event_id",
            "meas_event_field_concept_id",
        ),
    ),
    "observation": _Spec(
        ("observation_id", "person_id", "observation_concept_id", "observation_date"),
        (
            "value_as_number",
            "value_as_string",
            "value_as_concept_id",
            "unit_concept_id",
            "observation_source_value",
            "observation_source_concept_id",
            "unit_source_value",
            "value_source_value",
            "observation_event_id",
            "obs_event_field_concept_id",
        ),
    ),
    "drug_exposure": _Spec(
        ("drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date"),
        ("drug_exposure_end_date", "drug_source_value", "drug_source_concept_id"),
    ),
    "procedure_occurrence": _Spec(
        ("procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date"),
        ("procedure_end_date", "procedure_source_value", "procedure_source_concept_id"),
    ),
}
#: Clinical tables and the FHIR resource type their rows become.
_RESOURCE_OF = {
    "condition_occurrence": "Condition",
    "measurement": "Observation",
    "observation": "Observation",
    "drug_exposure": "MedicationStatement",
    "procedure_occurrence": "Procedure",
}
_CONCEPT_COLUMNS = {
    "condition_occurrence": ("condition_concept_id", "condition_source_concept_id"),
    "measurement": (
        "measurement_concept_id",
        "measurement_source_concept_id",
        "value_as_concept_id",
        "unit_concept_id",
        "meas_event_field_concept_id",
    ),
    "observation": (
        "observation_concept_id",
        "observation_source_concept_id",
        "value_as_concept_id",
        "unit_concept_id",
        "obs_event_field_concept_id",
    ),
    "drug_exposure": ("drug_concept_id", "drug_source_concept_id"),
    "procedure_occurrence": ("procedure_concept_id", "procedure_source_concept_id"),
    "episode_event": ("episode_event_field_concept_id",),
}
_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def table_files(input_dir: Path) -> dict[str, Path]:
    """The OMOP tables present in ``input_dir``, by table name (file names compared case-blind).

    Raises:
        InputError: a table is given twice (``person.csv`` and ``person.parquet``).
    """
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(input_dir.iterdir()) if input_dir.is_dir() else []:
        lower = path.name.lower()
        for suffix in _SUFFIXES:
            if lower.endswith(suffix) and lower[: -len(suffix)] in TABLES and path.is_file():
                by_name[lower[: -len(suffix)]].append(path)
    for name, paths in by_name.items():
        if len(paths) > 1:
            raise InputError(
                f"the {name} table is given {len(paths)} times ({', '.join(p.name for p in paths)})",
                where=str(input_dir),
                hint="keep one file per table",
            )
    return {name: by_name[name][0] for name in TABLES if name in by_name}


def detect_format(input_dir: Path, requested: str | None = None) -> InputFormat:
    """Whether ``input_dir`` is a FHIR Bulk Data export or an OMOP CDM export.

    Args:
        input_dir: the input folder.
        requested: ``"fhir"``, ``"omop"`` or None / ``"auto"`` to decide from the files:
            ``Patient.ndjson`` -> fhir, a ``person`` table -> omop.

    Raises:
        InputError: an unknown format name; neither or both kinds of export found.
    """
    if requested not in (None, "auto", "fhir", "omop"):
        raise InputError(f"unknown input format {requested!r}", where="--format", hint="fhir, omop or auto")
    if requested in ("fhir", "omop"):
        return "fhir" if requested == "fhir" else "omop"
    fhir = (input_dir / "Patient.ndjson").exists()
    omop = "person" in table_files(input_dir)
    if fhir and omop:
        raise InputError(
            "the folder holds both a FHIR bulk export (Patient.ndjson) and an OMOP person table",
            where=str(input_dir),
            hint="choose one with --format fhir or --format omop",
        )
    if not fhir and not omop:
        raise InputError(
            "the folder has neither Patient.ndjson (FHIR bulk export) nor a person table (OMOP CDM)",
            where=str(input_dir),
        )
    return "fhir" if fhir else "omop"


# -- reading -----------------------------------------------------------------------------------


def _where(table: str, row: int, column: str) -> str:
    return f"{table} row {row}, column {column}" if row else f"{table}.{column}"


def _csv_header(path: Path, table: str) -> list[str]:
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:  # zlib: a corrupt gzip stream
        raise InputError(f"cannot read the {table} table ({_reason(exc)})", where=path.name) from exc


def _reason(exc: BaseException) -> str:
    """A short reason that never echoes file content (a row could name a person)."""
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, gzip.BadGzipFile | EOFError | zlib.error) or "zlib" in text or "inflate" in text:
        return "not a valid gzip file"
    if "Empty CSV" in text or "empty" in text.lower():
        return "the file is empty"
    if "Expected" in text and "columns" in text:
        return "a row has the wrong number of columns"
    if "Parquet" in text or "magic" in text.lower():
        return "not a valid Parquet file"
    return type(exc).__name__


def _batches(path: Path, table: str, *, optional: bool = True) -> Iterator[tuple[int, dict[str, list[Any]]]]:
    """Yield (number of the batch's first row, column -> values) for the columns actnav reads.

    Rows are numbered from 1, the header not counted. Column names are compared case-blind.

    Raises:
        InputError: unreadable file, or a required column missing (naming table and column).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    spec = TABLES[table]
    parquet = path.name.lower().endswith(".parquet")
    try:
        names = pq.ParquetFile(path).schema_arrow.names if parquet else _csv_header(path, table)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read the {table} table ({_reason(exc)})", where=path.name) from exc
    if not names:
        raise InputError(f"the {table} table is empty (no header row)", where=path.name)
    actual = {n.strip().lower(): n for n in names}
    for column in spec.required:
        if column not in actual:
            raise InputError(
                f"the {table} table has no column {column}",
                where=f"{table}.{column}",
                hint="OMOP CDM v5.4 column names are expected",
            )
    wanted = [c for c in (*spec.required, *(spec.optional if optional else ())) if c in actual]
    source = [actual[c] for c in wanted]
    first = 1
    try:
        if parquet:
            reader: Any = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=source)
        else:
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=1 << 22),
                convert_options=pacsv.ConvertOptions(
                    include_columns=source,
                    column_types=dict.fromkeys(source, pa.string()),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    null_values=["", "NULL"],
                ),
            )
        for batch in reader:
            columns = {c: _pylist(batch.column(s)) for c, s in zip(wanted, source, strict=True)}
            yield first, columns
            first += batch.num_rows
    except (OSError, pa.ArrowException) as exc:
        reason = _reason(exc)
        row = _bad_row(path) if not parquet and reason.startswith("a row has") else None
        if row is not None:
            reason = f"row {row} has the wrong number of columns"
        elif first > 1:  # the rows before were read
            reason = f"after row {first - 1}: {reason}"
        raise InputError(f"cannot read the {table} table ({reason})", where=path.name) from exc


def _bad_row(path: Path) -> int | None:
    """The first row (data rows from 1, header and blank lines not counted) whose number of
    columns differs from the header's, or None when pyarrow does not tell.

    Read again single-threaded: pyarrow numbers rows only then, and only this error path pays.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    found: list[int] = []

    def handler(row: Any) -> str:
        if row.number is not None:
            found.append(int(row.number) - 1)  # pyarrow counts the header as row 1
        return "error"

    try:
        for _batch in pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
            convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=True),
        ):
            pass
    except (OSError, pa.ArrowException):
        pass
    return found[0] if found else None


def _pylist(column: Any) -> list[Any]:
    """A column's values; Parquet dates through numpy (Arrow's per-value conversion is slow)."""
    import pyarrow as pa

    if pa.types.is_date32(column.type):
        values: list[Any] = (
            column.to_numpy(zero_copy_only=False).astype("datetime64[D]").astype(object).tolist()
        )
        return values
    return list(column.to_pylist())


def _rows(columns: dict[str, list[Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    keys = list(columns)
    length = len(columns[keys[0]]) if keys else 0
    for i in range(length):
        yield i, {k: columns[k][i] for k in keys}


def _int(value: Any, table: str, row: int, column: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError("expected a whole number", where=_where(table, row, column))
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        if math.isfinite(value) and value == int(value):
            return int(value)
        raise InputError("expected a whole number", where=_where(table, row, column))
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise InputError("expected a whole number", where=_where(table, row, column)) from None
        if math.isfinite(number) and number == int(number):
            return int(number)
        raise InputError("expected a whole number", where=_where(table, row, column)) from None


def _number(value: Any, table: str, row: int, column: str) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value) if not isinstance(value, str) or value.strip() else None
    except ValueError:
        raise InputError("expected a number", where=_where(table, row, column)) from None
    if number is not None and not math.isfinite(number):
        raise InputError("expected a finite number", where=_where(table, row, column))
    return number


def _date(value: Any, table: str, row: int, column: str) -> dt.date | None:
    """A date column: a date, a datetime (its calendar date) or ISO text ``YYYY-MM-DD[ time]``."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    m = _ISO_DATE.match(text)
    if m is None:
        raise InputError("not a date (expected YYYY-MM-DD)", where=_where(table, row, column))
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise InputError("not a calendar date", where=_where(table, row, column)) from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _person_key(value: Any, table: str, row: int, column: str) -> str | None:
    number = _int(value, table, row, column)
    return None if number is None else str(number)


# -- concepts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Concept:
    vocabulary: str
    code: str
    name: str


@dataclass
class _Concepts:
    by_id: dict[int, _Concept] = field(default_factory=dict)

    def coding(self, concept_id: int | None) -> tuple[dict[str, str] | None, str | None]:
        """(a FHIR coding, or None) and (the concept name as text when its vocabulary has no system)."""
        if not concept_id:
            return None, None
        concept = self.by_id.get(concept_id)
        if concept is None:
            return None, None
        uri = _system_uris().get(concept.vocabulary)
        code = concept.code
        if concept.vocabulary == "ICDO3":
            code = code.split("-", 1)[0]  # 9680/3-C77.8: the histology part
            if not _ICDO3_HISTOLOGY.match(code):
                return None, concept.name or None
        if uri is None:
            return None, concept.name or None
        coding = {"system": uri, "code": code}
        if concept.name:
            coding["display"] = concept.name
        return coding, None

    def is_drug_exposure_field(self, concept_id: int | None) -> bool:
        spec = omop_tables().drug_exposure_field
        if concept_id is None:
            return False
        if concept_id in spec.concept_ids:
            return True
        concept = self.by_id.get(concept_id)
        return concept is not None and spec.name in (concept.name.lower(), concept.code.lower())

    def ucum(self, concept_id: int | None) -> str | None:
        concept = self.by_id.get(concept_id) if concept_id else None
        return concept.code if concept is not None and concept.vocabulary == "UCUM" else None


def _codeable(
    concepts: _Concepts,
    concept_ids: tuple[int | None, ...],
    source_value: str | None,
    source_kind: Literal["icd10cm", "loinc", "text"],
) -> dict[str, Any] | None:
    """A CodeableConcept from concept ids and the source value (see the module docstring)."""
    codings: list[dict[str, str]] = []
    texts: list[str] = []
    for concept_id in concept_ids:
        coding, text = concepts.coding(concept_id)
        if coding is not None and coding not in codings:
            codings.append(coding)
        elif text and text not in texts:
            texts.append(text)
    if source_value:
        known = {c["code"].replace(".", "").upper() for c in codings}
        if source_value.replace(".", "").upper() not in known:
            fallback = _source_coding(source_value, source_kind)
            if fallback is not None:
                codings.append(fallback)
            elif source_value not in texts:
                texts.append(source_value)
    if not codings and not texts:
        return None
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = codings
    if texts:
        out["text"] = "; ".join(texts)
    return out


@cache
def _valid_icd10cm(code: str) -> bool:
    from actnav.patient.terminology import icd10cm_valid

    return icd10cm_valid(code)


def _source_coding(value: str, kind: str) -> dict[str, str] | None:
    if kind == "icd10cm" and _valid_icd10cm(value.upper()):
        return {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": value.upper()}
    if kind == "loinc" and _LOINC_SHAPE.match(value):
        return {"system": "http://loinc.org", "code": value}
    return None


# -- the conversion ----------------------------------------------------------------------------


@dataclass
class OmopImportStats:
    """What :func:`shard_omop` read: persons, rows per table written, rows ignored because their
    person is not in the person table (per table), and partitions."""

    persons: int = 0
    partitions: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "persons": self.persons,
            "partitions": self.partitions,
            "rows": dict(sorted(self.rows.items())),
            "ignored_rows_of_unknown_persons": dict(sorted(self.ignored.items())),
        }


class _Writer:
    """Buffers NDJSON lines per partition and resource type; appends them per batch."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.buffer: dict[tuple[int, str], list[str]] = defaultdict(list)

    def add(self, part: int, rtype: str, resource: dict[str, Any]) -> None:
        self.buffer[(part, rtype)].append(json.dumps(resource, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        for (part, rtype), lines in self.buffer.items():
            folder = self.staging / f"part-{part:05d}"
            folder.mkdir(exist_ok=True)
            with (folder / f"{rtype}.ndjson").open("a", encoding="utf-8") as handle:
                handle.writelines(lines)
        self.buffer.clear()


def shard_omop(input_dir: Path, staging: Path, partition_size: int) -> OmopImportStats:
    """Convert an OMOP CDM export into partition shards of FHIR resources.

    Args:
        input_dir: folder of OMOP tables (see :data:`TABLES`; ``person`` required).
        staging: an empty or absent folder; ``part-NNNNN/<Type>.ndjson`` are written into it
            (a stale folder from a killed run is emptied first).
        partition_size: persons per partition, in person-table order.

    Returns:
        The import statistics (also written to ``staging/omop-import.json``).

    Raises:
        InputError: no person table, or it has no rows; a required column is missing (naming
            table and column); a file cannot be read; a value is not a date or a whole number
            (naming table, row and column, never the value).
    """
    files = table_files(input_dir)
    if "person" not in files:
        raise InputError("the OMOP export has no person table", where=str(input_dir))
    if staging.exists():
        for child in sorted(staging.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
    staging.mkdir(parents=True, exist_ok=True)
    stats = OmopImportStats()
    writer = _Writer(staging)
    death = _read_death(files.get("death"), stats)
    partition_of = _write_persons(files["person"], writer, death, partition_size, stats)
    stats.persons = len(partition_of)
    stats.partitions = max(partition_of.values(), default=-1) + 1
    concepts = _read_concepts(files, partition_of)
    lines = _read_lines(files, concepts)
    for table, rtype in _RESOURCE_OF.items():
        if table not in files:
            continue
        convert = _CONVERTERS[table]
        for first, columns in _batches(files[table], table):
            for i, row in _rows(columns):
                number = first + i
                pid = _person_key(row["person_id"], table, number, "person_id")
                part = partition_of.get(pid) if pid is not None else None
                if part is None:
                    stats.ignored[table] += 1
                    continue
                resource = convert(row, pid or "", table, number, concepts, lines)
                if resource is not None:
                    writer.add(part, rtype, resource)
                    stats.rows[table] += 1
            writer.flush()
    (staging / "omop-import.json").write_text(json.dumps(stats.as_dict(), indent=1), encoding="utf-8")
    ignored = {table: n for table, n in sorted(stats.ignored.items()) if n}
    if ignored:  # counts only (never a person_id); a warning, so it shows without logging set up
        log.warning(
            "OMOP rows of persons not in the person table were ignored: %s",
            ", ".join(f"{table} {n}" for table, n in ignored.items()),
        )
    return stats


def _read_death(path: Path | None, stats: OmopImportStats) -> dict[str, dt.date]:
    out: dict[str, dt.date] = {}
    if path is None:
        return out
    for first, columns in _batches(path, "death"):
        for i, row in _rows(columns):
            pid = _person_key(row["person_id"], "death", first + i, "person_id")
            when = _date(row["death_date"], "death", first + i, "death_date")
            if pid is not None and when is not None:
                out[pid] = min(when, out.get(pid, when))
    return out


def _write_persons(
    path: Path, writer: _Writer, death: dict[str, dt.date], partition_size: int, stats: OmopImportStats
) -> dict[str, int]:
    genders = {g.concept_id: g.gender for g in omop_tables().genders}
    partition_of: dict[str, int] = {}
    count = 0
    for first, columns in _batches(path, "person"):
        for i, row in _rows(columns):
            number = first + i
            pid = _person_key(row["person_id"], "person", number, "person_id")
            if pid is None:
                raise InputError("person_id is empty", where=_where("person", number, "person_id"))
            part = partition_of.setdefault(pid, count // partition_size)
            count += 1
            gender_id = _int(row["gender_concept_id"], "person", number, "gender_concept_id")
            patient: dict[str, Any] = {
                "resourceType": "Patient",
                "id": pid,
                "gender": genders.get(gender_id or 0, "unknown"),
            }
            birth = _birth_date(row, number)
            if birth is not None:  # none: the importer reports the missing birth date for this patient
                patient["birthDate"] = birth.isoformat()
            if pid in death:
                patient["deceasedDateTime"] = death[pid].isoformat()
            writer.add(part, "Patient", patient)
        writer.flush()
    if count == 0:
        raise InputError("the person table has no rows", where=path.name)
    stats.ignored["death"] = sum(1 for pid in death if pid not in partition_of)
    return partition_of


def _birth_date(row: dict[str, Any], number: int) -> dt.date | None:
    """birth_datetime, else year_of_birth with month and day (estimated when missing; omop.yaml)."""
    exact = _date(row.get("birth_datetime"), "person", number, "birth_datetime")
    if exact is not None:
        return exact
    year = _int(row["year_of_birth"], "person", number, "year_of_birth")
    if year is None:
        return None
    month = _int(row.get("month_of_birth"), "person", number, "month_of_birth")
    day = _int(row.get("day_of_birth"), "person", number, "day_of_birth")
    estimate = omop_tables().birth_estimate
    if month is None:
        month, day = estimate.month, estimate.day
    elif day is None:
        day = estimate.day_when_month_known
    if not 1 <= year <= 9999:
        raise InputError("not a year", where=_where("person", number, "year_of_birth"))
    if not 1 <= month <= 12:
        raise InputError("not a month (1-12)", where=_where("person", number, "month_of_birth"))
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise InputError("not a day of that month", where=_where("person", number, "day_of_birth")) from None


def _read_concepts(files: dict[str, Path], partition_of: dict[str, int]) -> _Concepts:
    """The concept rows of the concept ids the clinical tables use (none without a concept table)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    concepts = _Concepts()
    path = files.get("concept")
    if path is None:
        return concepts
    used: set[int] = set()
    for table, columns_of in _CONCEPT_COLUMNS.items():
        if table not in files:
            continue
        for first, columns in _batches(files[table], table):
            for column in columns_of:
                for i, value in enumerate(columns.get(column, ())):
                    number = _int(value, table, first + i, column)
                    if number:
                        used.add(number)
    if not used:
        return concepts
    wanted_text = pa.array(sorted(str(u) for u in used), type=pa.string())
    wanted_int = pa.array(sorted(used), type=pa.int64())
    parquet = path.name.lower().endswith(".parquet")
    if parquet:  # filter in Arrow: a full vocabulary has millions of concepts
        names = {n.lower(): n for n in pq.ParquetFile(path).schema_arrow.names}
        for column in TABLES["concept"].required:
            if column not in names:
                raise InputError(f"the concept table has no column {column}", where=f"concept.{column}")
        source = [names[c] for c in TABLES["concept"].required]
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=source)
            for batch in batches:
                ids = batch.column(source[0])
                wanted = wanted_text if pa.types.is_string(ids.type) else wanted_int.cast(ids.type)
                kept = batch.filter(pc.is_in(ids, value_set=wanted))
                _add_concepts(
                    concepts,
                    dict(
                        zip(
                            TABLES["concept"].required,
                            (kept.column(s).to_pylist() for s in source),
                            strict=True,
                        )
                    ),
                )
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read the concept table ({_reason(exc)})", where=path.name) from exc
        return concepts
    for _first, columns in _batches(path, "concept"):
        ids = pa.array(columns["concept_id"], type=pa.string())
        mask = pc.is_in(pc.utf8_trim_whitespace(ids), value_set=wanted_text).to_pylist()
        kept = {k: [v for v, keep in zip(vs, mask, strict=True) if keep] for k, vs in columns.items()}
        _add_concepts(concepts, kept)
    return concepts


def _add_concepts(concepts: _Concepts, columns: dict[str, list[Any]]) -> None:
    for _i, row in _rows(columns):
        concept_id = _int(row["concept_id"], "concept", 0, "concept_id")
        if concept_id is None:
            continue
        concepts.by_id[concept_id] = _Concept(
            vocabulary=_text(row["vocabulary_id"]) or "",
            code=_text(row["concept_code"]) or "",
            name=_text(row["concept_name"]) or "",
        )


def _read_lines(files: dict[str, Path], concepts: _Concepts) -> dict[int, int]:
    """drug_exposure_id -> line of therapy, from treatment-regimen episodes and episode_event."""
    if "episode" not in files or "episode_event" not in files:
        return {}
    regimen_ids = {e.concept_id for e in omop_tables().treatment_episodes}
    line_of_episode: dict[int, int] = {}
    for first, columns in _batches(files["episode"], "episode"):
        for i, row in _rows(columns):
            number = first + i
            kind = _int(row["episode_concept_id"], "episode", number, "episode_concept_id")
            line = _int(row.get("episode_number"), "episode", number, "episode_number")
            episode = _int(row["episode_id"], "episode", number, "episode_id")
            if kind in regimen_ids and line is not None and line >= 1 and episode is not None:
                line_of_episode[episode] = line
    out: dict[int, int] = {}
    for first, columns in _batches(files["episode_event"], "episode_event"):
        for i, row in _rows(columns):
            number = first + i
            episode = _int(row["episode_id"], "episode_event", number, "episode_id")
            event = _int(row["event_id"], "episode_event", number, "event_id")
            field_id = _int(
                row["episode_event_field_concept_id"],
                "episode_event",
                number,
                "episode_event_field_concept_id",
            )
            if episode in line_of_episode and event is not None and concepts.is_drug_exposure_field(field_id):
                out[event] = line_of_episode[episode]
    return out


def _subject(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def _condition(
    row: dict[str, Any], pid: str, table: str, number: int, concepts: _Concepts, lines: dict[int, int]
) -> dict[str, Any] | None:
    ids = (
        _int(row["condition_concept_id"], table, number, "condition_concept_id"),
        _int(row.get("condition_source_concept_id"), table, number, "condition_source_concept_id"),
    )
    code = _codeable(concepts, ids, _text(row.get("condition_source_value")), "icd10cm")
    onset = _date(row["condition_start_date"], table, number, "condition_start_date")
    if code is None:
        return None
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"co-{_int(row['condition_occurrence_id'], table, number, 'condition_occurrence_id')}",
        "subject": _subject(pid),
        "code": code,
    }
    status = (_text(row.get("condition_status_source_value")) or "").lower()
    if status in _CLINICAL_CODES:
        out["clinicalStatus"] = {"coding": [{"system": _CLINICAL_STATUS, "code": status}]}
    if onset is not None:
        out["onsetDateTime"] = onset.isoformat()
    return out


def _observation(
    row: dict[str, Any], pid: str, table: str, number: int, concepts: _Concepts, lines: dict[int, int]
) -> dict[str, Any] | None:
    """A measurement or observation row as an Observation (value, unit, upper limit, focus)."""
    short = "meas" if table == "measurement" else "obs"
    prefix = "measurement" if table == "measurement" else "observation"
    ids = (
        _int(row[f"{prefix}_concept_id"], table, number, f"{prefix}_concept_id"),
        _int(row.get(f"{prefix}_source_concept_id"), table, number, f"{prefix}_source_concept_id"),
    )
    code = _codeable(concepts, ids, _text(row.get(f"{prefix}_source_value")), "loinc")
    when = _date(row[f"{prefix}_date"], table, number, f"{prefix}_date")
    if code is None:
        return None
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{'m' if table == 'measurement' else 'o'}-{_int(row[f'{prefix}_id'], table, number, f'{prefix}_id')}",
        "status": "final",
        "code": code,
        "subject": _subject(pid),
    }
    if when is not None:
        out["effectiveDateTime"] = when.isoformat()
    value = _number(row.get("value_as_number"), table, number, "value_as_number")
    unit_id = _int(row.get("unit_concept_id"), table, number, "unit_concept_id")
    unit = concepts.ucum(unit_id)
    unit_text = unit or _text(row.get("unit_source_value"))

    def quantity(number_value: float) -> dict[str, Any]:
        q: dict[str, Any] = {"value": number_value}
        if unit is not None:
            q.update({"unit": unit, "system": _UCUM, "code": unit})
        elif unit_text is not None:
            q["unit"] = unit_text
        return q

    value_concept = _int(row.get("value_as_concept_id"), table, number, "value_as_concept_id")
    if value is not None:
        out["valueQuantity"] = quantity(value)
        high = _number(row.get("range_high"), table, number, "range_high")
        if high is not None:
            out["referenceRange"] = [{"high": quantity(high)}]
    elif value_concept:
        coding, text = concepts.coding(value_concept)
        out["valueCodeableConcept"] = {"coding": [coding]} if coding else {"text": text or ""}
    elif text_value := _text(row.get("value_as_string")) or _text(row.get("value_source_value")):
        out["valueString"] = text_value
    event = _int(row.get(f"{prefix}_event_id"), table, number, f"{prefix}_event_id")
    field_id = _int(
        row.get(f"{short}_event_field_concept_id"), table, number, f"{short}_event_field_concept_id"
    )
    if event is not None and concepts.is_drug_exposure_field(field_id):
        out["focus"] = [{"reference": f"MedicationStatement/de-{event}"}]
    return out


def _drug(
    row: dict[str, Any], pid: str, table: str, number: int, concepts: _Concepts, lines: dict[int, int]
) -> dict[str, Any]:
    ids = (
        _int(row["drug_concept_id"], table, number, "drug_concept_id"),
        _int(row.get("drug_source_concept_id"), table, number, "drug_source_concept_id"),
    )
    drug = _codeable(concepts, ids, _text(row.get("drug_source_value")), "text")
    start = _date(row["drug_exposure_start_date"], table, number, "drug_exposure_start_date")
    end = _date(row.get("drug_exposure_end_date"), table, number, "drug_exposure_end_date")
    exposure = _int(row["drug_exposure_id"], table, number, "drug_exposure_id")
    period: dict[str, str] = {}
    if start is not None:
        period["start"] = start.isoformat()
    if end is not None:
        period["end"] = end.isoformat()
    out: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": f"de-{exposure}",
        "status": "completed" if end is not None else "active",
        # Concept 0 without a source value: kept (a line of therapy may still name it).
        "medicationCodeableConcept": drug or {"text": "drug not named (concept 0)"},
        "subject": _subject(pid),
        "effectivePeriod": period,
    }
    if exposure is not None and exposure in lines:
        from actnav.patient.fhir import LINE_OF_THERAPY_URL

        out["extension"] = [{"url": LINE_OF_THERAPY_URL, "valuePositiveInt": lines[exposure]}]
    return out


def _procedure(
    row: dict[str, Any], pid: str, table: str, number: int, concepts: _Concepts, lines: dict[int, int]
) -> dict[str, Any] | None:
    ids = (
        _int(row["procedure_concept_id"], table, number, "procedure_concept_id"),
        _int(row.get("procedure_source_concept_id"), table, number, "procedure_source_concept_id"),
    )
    code = _codeable(concepts, ids, _text(row.get("procedure_source_value")), "text")
    start = _date(row["procedure_date"], table, number, "procedure_date")
    end = _date(row.get("procedure_end_date"), table, number, "procedure_end_date")
    if code is None:
        return None
    out: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": f"po-{_int(row['procedure_occurrence_id'], table, number, 'procedure_occurrence_id')}",
        "status": "completed",
        "code": code,
        "subject": _subject(pid),
    }
    if start is not None and end is not None and end != start:
        out["performedPeriod"] = {"start": start.isoformat(), "end": end.isoformat()}
    elif start is not None:
        out["performedDateTime"] = start.isoformat()
    return out


_CONVERTERS: dict[str, Any] = {
    "condition_occurrence": _condition,
    "measurement": _observation,
    "observation": _observation,
    "drug_exposure": _drug,
    "procedure_occurrence": _procedure,
}

__all__ = [
    "TABLES",
    "OmopImportStats",
    "detect_format",
    "omop_tables",
    "shard_omop",
    "table_files",
]
