"""Read trial records from files into :class:`~actnav.trials.models.TrialRecord`.

Accepted inputs (by content, not only by file name):

* ClinicalTrials.gov API v2 **single study** JSON: ``{"protocolSection": {...}, "derivedSection": ...}``
  (``derivedSection``, ``hasResults`` and ``resultsSection`` are optional and kept in ``raw``).
* API v2 **paged search responses**: ``{"studies": [...], "nextPageToken": ..., "totalCount": ...}``.
* A JSON **array** of studies or of flattened records.
* **NDJSON** / JSON Lines (``.ndjson``, ``.jsonl``): one study or flattened record per line.
* The **flattened TrialGPT record** (``nctid``, ``title``, ``brief_summary``, ``raw_criteria``,
  ``minimum_age``, ``maximum_age``, ``sex``, ``condition``, ``phases``, ``overall_status``...), where
  list fields may be stored as Python-repr strings such as ``"['PHASE1']"``: they are parsed with
  :func:`ast.literal_eval` (literals only; nothing is ever evaluated as code).
* ``.gz`` of any of those, and ``.zip`` archives holding any of those (members read in name order).
* A **directory**: every ``.json``, ``.ndjson``, ``.jsonl``, ``.gz`` and ``.zip`` file below it, in
  path order (other files such as ``index.tsv`` or ``SOURCE.md`` are ignored).

Reading never stops at a bad record: :func:`read_path` yields one :class:`SourceResult` per record,
either a record or a :class:`RecordProblem` naming the file, the record (NCT id when known, else its
1-based position or line) and the field, so the caller reports it and imports the rest. A file that
cannot be read at all (not JSON, corrupt zip) yields one problem for the file.

Ages: ``"18 Years"``, ``"6 Months"``, ``"2 Weeks"``, ``"3 Days"``, ``"1 Year"`` become years
(a month is 1/12 year, a week 7/365.25, a day 1/365.25); ``""``, ``"N/A"`` and a missing field
mean no limit (``None``).
"""

from __future__ import annotations

import ast
import datetime as dt
import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO, Any, cast

from pydantic import ValidationError

from actnav.errors import InputError
from actnav.trials.models import Intervention, Site, SourceFormat, TrialRecord

JSON_SUFFIXES = (".json", ".ndjson", ".jsonl")
ARCHIVE_SUFFIXES = (".zip", ".gz")
MAX_MEMBER_BYTES = 2 * 1024**3
"""A zip member larger than this (uncompressed) is refused, to stop decompression bombs."""

_NCT_ID = re.compile(r"^NCT\d{8}$")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(year|month|week|day|hour|minute)s?\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {
    "year": 1.0,
    "month": 1.0 / 12.0,
    "week": 7.0 / 365.25,
    "day": 1.0 / 365.25,
    "hour": 1.0 / (365.25 * 24.0),
    "minute": 1.0 / (365.25 * 24.0 * 60.0),
}
_NO_AGE = {"", "n/a", "na", "none", "not applicable"}
_SEXES = {"ALL": "ALL", "BOTH": "ALL", "FEMALE": "FEMALE", "MALE": "MALE"}


class TrialSourceError(InputError):
    """A trial source (file, record, field) cannot be read as given (exit code 2).

    ``where`` names ``file:record:field``; the message says what is wrong with it.
    """


@dataclass(frozen=True)
class RecordProblem:
    """Why one record (or a whole file) was skipped.

    Attributes:
        file: the file, as given (zip members as ``archive.zip!member.json``).
        record: the NCT id when known, else ``record N`` / ``line N`` (1-based), or ``-`` for
            a problem with the whole file.
        field: the field at fault, in the source's own names
            (``raw_criteria``, ``protocolSection.eligibilityModule.eligibilityCriteria``).
        problem: what is wrong, in one sentence.
    """

    file: str
    record: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.record}:{self.field}: {self.problem}"


@dataclass(frozen=True)
class SourceResult:
    """One record read from a file: exactly one of ``record`` and ``problem`` is set.

    Attributes:
        file: the file the record came from (zip members as ``archive.zip!member.json``).
        position: 1-based position of the record in its file (line number for NDJSON).
        record: the normalised record, or None when the record was malformed.
        problem: why the record was skipped, or None.
    """

    file: str
    position: int
    record: TrialRecord | None = None
    problem: RecordProblem | None = None


class RecordError(ValueError):
    """A record is malformed; raised by the ``from_*`` converters, caught by :func:`read_path`.

    Args:
        field: the field at fault (source naming).
        problem: what is wrong with it.
        nct_id: the record's NCT id when it is known.
    """

    def __init__(self, field: str, problem: str, nct_id: str | None = None):
        self.field = field
        self.problem = problem
        self.nct_id = nct_id
        super().__init__(f"{field}: {problem}")


# --------------------------------------------------------------------------------------------
# Field helpers
# --------------------------------------------------------------------------------------------


def parse_age_years(value: object, field: str = "minimum_age") -> float | None:
    """Convert a registry age (``"18 Years"``, ``"6 Months"``, ``"N/A"``) to years.

    Args:
        value: the age text as the registry gives it; None or ``""`` when there is no limit.
        field: the field name, for the error.

    Returns:
        The age in years (months are 1/12 year, weeks 7/365.25, days 1/365.25), or None when the
        record sets no limit (``""``, ``"N/A"``, missing).

    Raises:
        RecordError: the value is not text or not ``<number> <unit>``.

    Example:
        >>> parse_age_years("6 Months")
        0.5
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected text like '18 Years', got {type(value).__name__}")
    text = value.strip()
    if text.lower() in _NO_AGE:
        return None
    match = _AGE.match(text)
    if match is None:
        raise RecordError(field, f"cannot read age {value!r} (expected e.g. '18 Years', '6 Months', 'N/A')")
    years = float(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).lower()]
    return round(years, 4)


def parse_str_list(value: object, field: str) -> tuple[str, ...]:
    """A list of strings, also when stored as a Python-repr string such as ``"['PHASE1']"``.

    The repr form is parsed with :func:`ast.literal_eval`, which accepts literals only (strings,
    numbers, lists, tuples...) and never runs code.

    Args:
        value: a list of strings, a repr string of one, a single plain string, or None.
        field: the field name, for the error.

    Returns:
        The strings, stripped, empty ones dropped (an empty tuple for None or ``""``).

    Raises:
        RecordError: the value is neither a list of strings nor a literal of one.
    """
    if value is None:
        return ()
    items: object = value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        if text[0] in "[(":
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
                raise RecordError(field, f"not a list literal ({type(exc).__name__})") from None
        else:
            items = [text]
    if not isinstance(items, (list, tuple)):
        raise RecordError(field, f"expected a list of strings, got {type(items).__name__}")
    out: list[str] = []
    for position, item in enumerate(items):
        if not isinstance(item, str):
            raise RecordError(f"{field}[{position}]", f"expected a string, got {type(item).__name__}")
        if item.strip():
            out.append(item.strip())
    return tuple(out)


def _opt_str(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {type(value).__name__}")
    text = value.strip()
    return text or None


def _text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {type(value).__name__}")
    return value


def _nct_id(value: object, field: str) -> str:
    if value is None or value == "":
        raise RecordError(field, "missing: every record needs its NCT id")
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {type(value).__name__}")
    text = value.strip().upper()
    if not _NCT_ID.match(text):
        raise RecordError(field, f"{value!r} is not an NCT id (NCT followed by 8 digits)")
    return text


def _sex(value: object, field: str) -> str:
    if value is None or value == "":
        return "ALL"
    if not isinstance(value, str) or value.strip().upper() not in _SEXES:
        raise RecordError(field, f"{value!r} is not ALL, FEMALE or MALE")
    return _SEXES[value.strip().upper()]


def parse_registry_date(value: object, field: str) -> dt.date | None:
    """A registry date: ``YYYY-MM-DD``, or ``YYYY-MM`` (taken as the first of the month).

    Args:
        value: the date text, or None.
        field: the field name, for the error.

    Returns:
        The date, or None when absent.

    Raises:
        RecordError: the value is not such a date.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected a date string, got {type(value).__name__}")
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}", text):
            return dt.date.fromisoformat(text + "-01")
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RecordError(field, f"{value!r} is not a date (YYYY-MM-DD or YYYY-MM)") from None


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(field, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: object, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list, got {type(value).__name__}")
    return value


def _float(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(field, f"expected a number, got {type(value).__name__}")
    return float(value)


def _build(fields: dict[str, Any], nct_id: str, names: Mapping[str, str]) -> TrialRecord:
    """Validate the normalised fields; a pydantic error names the source field."""
    try:
        return TrialRecord.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        key = str(loc[0]) if loc else "record"
        field = names.get(key, key)
        raise RecordError(field, first["msg"], nct_id) from None


# --------------------------------------------------------------------------------------------
# Converters
# --------------------------------------------------------------------------------------------

_V2_NAMES = {
    "nct_id": "protocolSection.identificationModule.nctId",
    "title": "protocolSection.identificationModule.briefTitle",
    "eligibility_text": "protocolSection.eligibilityModule.eligibilityCriteria",
    "sex": "protocolSection.eligibilityModule.sex",
    "sites": "protocolSection.contactsLocationsModule.locations",
    "interventions": "protocolSection.armsInterventionsModule.interventions",
}

_FLAT_NAMES = {
    "nct_id": "nctid",
    "title": "title",
    "eligibility_text": "raw_criteria",
    "sex": "sex",
    "brief_summary": "brief_summary",
}


def from_ctgov_v2(study: Mapping[str, Any]) -> TrialRecord:
    """Normalise one ClinicalTrials.gov API v2 study (``{"protocolSection": ...}``).

    Args:
        study: the study object as the API returns it (``/api/v2/studies/{nctId}`` or one element
            of a search response's ``studies``), with or without ``derivedSection``.

    Returns:
        The normalised record; ``raw`` is the study object unchanged.

    Raises:
        RecordError: a required field is missing or a field has the wrong type (names the v2 path).
    """
    ps = "protocolSection"
    proto = _mapping(study.get(ps), ps)
    if not proto:
        raise RecordError(ps, "missing: not an API v2 study")
    ident = _mapping(proto.get("identificationModule"), f"{ps}.identificationModule")
    nct_id = _nct_id(ident.get("nctId"), _V2_NAMES["nct_id"])
    try:
        return _from_v2(study, proto, ident, nct_id)
    except RecordError as exc:
        exc.nct_id = exc.nct_id or nct_id
        raise


def _from_v2(
    study: Mapping[str, Any], proto: Mapping[str, Any], ident: Mapping[str, Any], nct_id: str
) -> TrialRecord:
    ps = "protocolSection"
    status = _mapping(proto.get("statusModule"), f"{ps}.statusModule")
    desc = _mapping(proto.get("descriptionModule"), f"{ps}.descriptionModule")
    cond = _mapping(proto.get("conditionsModule"), f"{ps}.conditionsModule")
    design = _mapping(proto.get("designModule"), f"{ps}.designModule")
    arms = _mapping(proto.get("armsInterventionsModule"), f"{ps}.armsInterventionsModule")
    elig = _mapping(proto.get("eligibilityModule"), f"{ps}.eligibilityModule")
    sponsor_mod = _mapping(proto.get("sponsorCollaboratorsModule"), f"{ps}.sponsorCollaboratorsModule")
    contacts = _mapping(proto.get("contactsLocationsModule"), f"{ps}.contactsLocationsModule")

    brief = _opt_str(ident.get("briefTitle"), _V2_NAMES["title"])
    official = _opt_str(ident.get("officialTitle"), f"{ps}.identificationModule.officialTitle")
    title = brief or official
    if title is None:
        raise RecordError(_V2_NAMES["title"], "missing (and no officialTitle either)", nct_id)

    interventions: list[Intervention] = []
    ipath = _V2_NAMES["interventions"]
    for i, item in enumerate(_list(arms.get("interventions"), ipath)):
        entry = _mapping(item, f"{ipath}[{i}]")
        name = _opt_str(entry.get("name"), f"{ipath}[{i}].name")
        if name is None:
            raise RecordError(f"{ipath}[{i}].name", "missing", nct_id)
        interventions.append(
            Intervention(
                type=_opt_str(entry.get("type"), f"{ipath}[{i}].type"),
                name=name,
                description=_opt_str(entry.get("description"), f"{ipath}[{i}].description"),
                other_names=parse_str_list(entry.get("otherNames"), f"{ipath}[{i}].otherNames"),
            )
        )

    sites: list[Site] = []
    lpath = _V2_NAMES["sites"]
    for i, item in enumerate(_list(contacts.get("locations"), lpath)):
        loc = _mapping(item, f"{lpath}[{i}]")
        geo = _mapping(loc.get("geoPoint"), f"{lpath}[{i}].geoPoint")
        sites.append(
            Site(
                facility=_opt_str(loc.get("facility"), f"{lpath}[{i}].facility"),
                city=_opt_str(loc.get("city"), f"{lpath}[{i}].city"),
                state=_opt_str(loc.get("state"), f"{lpath}[{i}].state"),
                postcode=_opt_str(loc.get("zip"), f"{lpath}[{i}].zip"),
                country=_opt_str(loc.get("country"), f"{lpath}[{i}].country"),
                status=_opt_str(loc.get("status"), f"{lpath}[{i}].status"),
                lat=_float(geo.get("lat"), f"{lpath}[{i}].geoPoint.lat"),
                lon=_float(geo.get("lon"), f"{lpath}[{i}].geoPoint.lon"),
            )
        )

    update_struct = _mapping(
        status.get("lastUpdatePostDateStruct"), f"{ps}.statusModule.lastUpdatePostDateStruct"
    )
    last_update = parse_registry_date(
        update_struct.get("date"), f"{ps}.statusModule.lastUpdatePostDateStruct.date"
    ) or parse_registry_date(status.get("lastUpdateSubmitDate"), f"{ps}.statusModule.lastUpdateSubmitDate")

    lead = _mapping(sponsor_mod.get("leadSponsor"), f"{ps}.sponsorCollaboratorsModule.leadSponsor")
    fields: dict[str, Any] = {
        "nct_id": nct_id,
        "title": title,
        "official_title": official,
        "brief_summary": _text(desc.get("briefSummary"), f"{ps}.descriptionModule.briefSummary"),
        "conditions": parse_str_list(cond.get("conditions"), f"{ps}.conditionsModule.conditions"),
        "keywords": parse_str_list(cond.get("keywords"), f"{ps}.conditionsModule.keywords"),
        "interventions": tuple(interventions),
        "phases": parse_str_list(design.get("phases"), f"{ps}.designModule.phases"),
        "study_type": _opt_str(design.get("studyType"), f"{ps}.designModule.studyType"),
        "overall_status": _opt_str(status.get("overallStatus"), f"{ps}.statusModule.overallStatus"),
        "eligibility_text": _text(elig.get("eligibilityCriteria"), _V2_NAMES["eligibility_text"]),
        "minimum_age_years": parse_age_years(elig.get("minimumAge"), f"{ps}.eligibilityModule.minimumAge"),
        "maximum_age_years": parse_age_years(elig.get("maximumAge"), f"{ps}.eligibilityModule.maximumAge"),
        "sex": _sex(elig.get("sex"), _V2_NAMES["sex"]),
        "sponsor": _opt_str(lead.get("name"), f"{ps}.sponsorCollaboratorsModule.leadSponsor.name"),
        "sites": tuple(sites),
        "last_update": last_update,
        "source_format": "ctgov_v2",
        "raw": dict(study),
    }
    return _build(fields, nct_id, _V2_NAMES)


def from_trialgpt_flat(obj: Mapping[str, Any]) -> TrialRecord:
    """Normalise one flattened TrialGPT record (``nctid``, ``title``, ``raw_criteria``...).

    List fields (``condition``, ``phases``, ``keywords``, ``intervention``) may be lists or
    Python-repr strings (``"['PHASE1']"``), parsed with :func:`ast.literal_eval`.

    Args:
        obj: the record object.

    Returns:
        The normalised record; ``raw`` is the object unchanged. The flattened shape has no
        last-update date, so ``last_update`` is None.

    Raises:
        RecordError: a required field is missing or a field has the wrong type (names the field).
    """
    nct_id = _nct_id(obj.get("nctid"), "nctid")
    try:
        return _from_flat(obj, nct_id)
    except RecordError as exc:
        exc.nct_id = exc.nct_id or nct_id
        raise


def _from_flat(obj: Mapping[str, Any], nct_id: str) -> TrialRecord:
    title = _opt_str(obj.get("title"), "title")
    if title is None:
        raise RecordError("title", "missing", nct_id)
    interventions = tuple(
        Intervention(name=name) for name in parse_str_list(obj.get("intervention"), "intervention")
    )
    fields: dict[str, Any] = {
        "nct_id": nct_id,
        "title": title,
        "official_title": _opt_str(obj.get("official_title"), "official_title"),
        "brief_summary": _text(obj.get("brief_summary"), "brief_summary"),
        "conditions": parse_str_list(obj.get("condition"), "condition"),
        "keywords": parse_str_list(obj.get("keywords"), "keywords"),
        "interventions": interventions,
        "phases": parse_str_list(obj.get("phases"), "phases"),
        "study_type": _opt_str(obj.get("study_type"), "study_type"),
        "overall_status": _opt_str(obj.get("overall_status"), "overall_status"),
        "eligibility_text": _text(obj.get("raw_criteria"), "raw_criteria"),
        "minimum_age_years": parse_age_years(obj.get("minimum_age"), "minimum_age"),
        "maximum_age_years": parse_age_years(obj.get("maximum_age"), "maximum_age"),
        "sex": _sex(obj.get("sex"), "sex"),
        "last_update": None,
        "source_format": "trialgpt_flat",
        "raw": dict(obj),
    }
    return _build(fields, nct_id, _FLAT_NAMES)


def detect_format(obj: object) -> SourceFormat | None:
    """The record shape of one parsed JSON object, or None when it is neither known shape."""
    if isinstance(obj, Mapping):
        if "protocolSection" in obj:
            return "ctgov_v2"
        if "nctid" in obj or "raw_criteria" in obj:
            return "trialgpt_flat"
    return None


def parse_record(obj: object) -> TrialRecord:
    """Normalise one record of either shape.

    Raises:
        RecordError: the object is not a known record shape, or it is malformed.
    """
    if not isinstance(obj, Mapping):
        raise RecordError("record", f"expected a JSON object, got {_json_type(obj)}")
    shape = detect_format(obj)
    if shape == "ctgov_v2":
        return from_ctgov_v2(obj)
    if shape == "trialgpt_flat":
        return from_trialgpt_flat(obj)
    keys = ", ".join(sorted(str(k) for k in obj)[:6]) or "none"
    raise RecordError(
        "record", f"not an API v2 study (protocolSection) nor a flattened record (nctid); keys: {keys}"
    )


def _json_type(obj: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(obj), "number" if isinstance(obj, (int, float)) else type(obj).__name__
    )


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _result(file: str, position: int, obj: object, label: str) -> SourceResult:
    try:
        return SourceResult(file=file, position=position, record=parse_record(obj))
    except RecordError as exc:
        record = exc.nct_id or _guess_nct(obj) or f"{label} {position}"
        return SourceResult(
            file=file, position=position, problem=RecordProblem(file, record, exc.field, exc.problem)
        )


def _guess_nct(obj: object) -> str | None:
    """The NCT id of a malformed record when it can be found, to name it in the report."""
    if not isinstance(obj, Mapping):
        return None
    candidates: list[object] = [obj.get("nctid")]
    proto = obj.get("protocolSection")
    if isinstance(proto, Mapping):
        ident = proto.get("identificationModule")
        if isinstance(ident, Mapping):
            candidates.append(ident.get("nctId"))
    for value in candidates:
        if isinstance(value, str) and _NCT_ID.match(value.strip().upper()):
            return value.strip().upper()
    return None


def _file_problem(file: str, problem: str, field: str = "(file)") -> SourceResult:
    return SourceResult(file=file, position=0, problem=RecordProblem(file, "-", field, problem))


def iter_json_text(text: str, file: str, *, ndjson: bool = False) -> Iterator[SourceResult]:
    """Records from the text of one JSON or NDJSON document.

    A ``.json`` file whose content is several JSON values, one per line, is read as NDJSON.

    Args:
        text: the document.
        file: its name, for problems.
        ndjson: read one JSON value per line from the start.

    Yields:
        One result per record.
    """
    if not ndjson:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":
                ndjson = True  # several values, one per line: NDJSON under a .json name
            else:
                yield _file_problem(
                    file, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                )
                return
        else:
            yield from _iter_document(doc, file)
            return
    yield from _iter_lines(text.splitlines(), file)


def _iter_lines(lines: Iterable[str], file: str, start: int = 1) -> Iterator[SourceResult]:
    """Records from NDJSON lines numbered from ``start`` (a line may hold a whole search response)."""
    for lineno, line in enumerate(lines, start=start):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield SourceResult(
                file=file,
                position=lineno,
                problem=RecordProblem(file, f"line {lineno}", "(line)", f"not valid JSON: {exc.msg}"),
            )
            continue
        if isinstance(obj, Mapping) and isinstance(obj.get("studies"), list):
            yield from _iter_document(obj, f"{file}:line {lineno}")
            continue
        yield _result(file, lineno, obj, "line")


def _is_ndjson(name: str) -> bool:
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return lower.endswith((".ndjson", ".jsonl"))


def _iter_stream(stream: IO[bytes], name: str, file: str) -> Iterator[SourceResult]:
    """NDJSON read line by line from a binary stream (``.gz`` decompressed on the fly).

    Large exports are never held in memory whole; a line that is not UTF-8 is reported and skipped.
    """
    raw = (
        cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb")) if name.lower().endswith(".gz") else stream
    )
    lineno = 0
    try:
        for lineno, data in enumerate(raw, start=1):
            try:
                line = data.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                problem = RecordProblem(
                    file, f"line {lineno}", "(line)", f"not UTF-8 text (byte {exc.start})"
                )
                yield SourceResult(file=file, position=lineno, problem=problem)
                continue
            yield from _iter_lines([line], file, start=lineno)
    except (OSError, EOFError) as exc:
        yield _file_problem(
            file, f"not a readable gzip file ({exc})" if lineno <= 1 else f"read error ({exc})"
        )


def _iter_document(doc: object, file: str) -> Iterator[SourceResult]:
    if isinstance(doc, list):
        for position, obj in enumerate(doc, start=1):
            yield _result(file, position, obj, "record")
        return
    if isinstance(doc, Mapping) and "studies" in doc and detect_format(doc) is None:
        studies = doc["studies"]
        if not isinstance(studies, list):
            yield _file_problem(file, f"expected a list, got {_json_type(studies)}", field="studies")
            return
        for position, obj in enumerate(studies, start=1):
            yield _result(file, position, obj, "record")
        return
    yield _result(file, 1, doc, "record")


def _decode(data: bytes, file: str) -> str | SourceResult:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _file_problem(file, f"not UTF-8 text (byte {exc.start})")


def _iter_bytes(data: bytes, name: str, file: str) -> Iterator[SourceResult]:
    """Records from the bytes of a file called ``name`` (suffix decides how to read it)."""
    lower = name.lower()
    if lower.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            yield _file_problem(file, f"not a readable gzip file ({exc})")
            return
        yield from _iter_bytes(data, name[:-3], file)
        return
    if lower.endswith(".zip"):
        yield from _iter_zip(data, file)
        return
    text = _decode(data, file)
    if isinstance(text, SourceResult):
        yield text
        return
    yield from iter_json_text(text, file, ndjson=lower.endswith((".ndjson", ".jsonl")))


def _iter_zip(source: Path | bytes, file: str) -> Iterator[SourceResult]:
    try:
        archive = zipfile.ZipFile(source if isinstance(source, Path) else io.BytesIO(source))
    except (zipfile.BadZipFile, OSError) as exc:
        yield _file_problem(file, f"not a readable zip archive ({exc})")
        return
    with archive:
        members = sorted(
            (info for info in archive.infolist() if not info.is_dir() and _wanted(info.filename)),
            key=lambda info: info.filename,
        )
        if not members:
            yield _file_problem(file, "the archive holds no .json, .ndjson, .jsonl or .gz files")
        for info in members:
            member_file = f"{file}!{info.filename}"
            if info.file_size > MAX_MEMBER_BYTES:
                yield _file_problem(member_file, f"member too large ({info.file_size} bytes uncompressed)")
                continue
            try:
                if _is_ndjson(info.filename):
                    with archive.open(info) as stream:
                        yield from _iter_stream(stream, info.filename, member_file)
                    continue
                member = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                yield _file_problem(member_file, f"cannot read the member ({exc})")
                continue
            yield from _iter_bytes(member, info.filename, member_file)


def _wanted(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    if base.startswith(".") or name.startswith("__MACOSX/"):
        return False
    lower = base.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return lower.endswith(JSON_SUFFIXES)


def list_input_files(path: Path) -> list[Path]:
    """The files :func:`read_path` reads for ``path``: itself, or the wanted files below a folder.

    Raises:
        TrialSourceError: the path does not exist.
    """
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and (_wanted(p.name) or p.name.lower().endswith(".zip"))
        )
    if not path.exists():
        raise TrialSourceError("no such file or folder", where=str(path))
    return [path]


def read_file(path: Path) -> Iterator[SourceResult]:
    """Records from one file (JSON, NDJSON, ``.gz``, ``.zip``), each a record or a problem.

    Zip archives and NDJSON (plain or gzipped) are streamed; a JSON document is read whole.

    Args:
        path: the file.

    Yields:
        One :class:`SourceResult` per record; a file that cannot be read yields one problem.
    """
    file = str(path)
    try:
        if path.name.lower().endswith(".zip"):
            yield from _iter_zip(path, file)
            return
        if _is_ndjson(path.name):
            with path.open("rb") as stream:
                yield from _iter_stream(stream, path.name, file)
            return
        data = path.read_bytes()
    except OSError as exc:
        yield _file_problem(file, f"cannot read the file: {exc.strerror or exc}")
        return
    yield from _iter_bytes(data, path.name, file)


def read_path(path: Path) -> Iterator[SourceResult]:
    """Records from a file or from every wanted file below a folder.

    Raises:
        TrialSourceError: the path does not exist (raised before anything is yielded).
    """
    files = list_input_files(path)
    return _chain(read_file(f) for f in files)


def _chain(parts: Iterable[Iterator[SourceResult]]) -> Iterator[SourceResult]:
    for part in parts:
        yield from part


# --------------------------------------------------------------------------------------------
# Bundled offline records
# --------------------------------------------------------------------------------------------

BUNDLED_FILE = "act-trials.ndjson.gz"


def bundled_trials_file() -> Traversable:
    """The packaged offline trial records (``actnav/data/trials/bundled/act-trials.ndjson.gz``)."""
    return resources.files("actnav") / "data" / "trials" / "bundled" / BUNDLED_FILE


def iter_bundled_records() -> Iterator[SourceResult]:
    """The packaged offline records (56 ACT trial records and 3 API v2 samples; see its SOURCE.md).

    Yields:
        One result per record (they are all well formed; a problem would mean a broken install).
    """
    source = bundled_trials_file()
    yield from _iter_bytes(source.read_bytes(), BUNDLED_FILE, f"(bundled) {BUNDLED_FILE}")
