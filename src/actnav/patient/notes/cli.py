"""What ``actnav extract`` and ``actnav evaluate --note`` do with a note file (the commands stay thin).

* :func:`check_note_dates`: ``--as-of`` between 1900 and today, ``--birth-date`` not after it.
* :func:`read_note`: the note as text, or an input error naming the problem (missing, not a
  file, empty, larger than :data:`MAX_NOTE_BYTES`, binary, not UTF-8).
* :func:`facts_text` / :func:`facts_json`: every fact found, for review: its kind, label, the words
  of the note in quotes, the ConText flags (negated, family, historical, hypothetical, uncertain)
  and "not used" with the reason for those that do not become patient facts.
* :func:`note_patient`: note -> extraction -> bundle -> the importer's patient record, with the
  resources made from the note (for :func:`actnav.patient.notes.report.mark_from_note`).

The note's words are printed on purpose (the reviewer checks them); the file name never is.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actnav.errors import InputError

if TYPE_CHECKING:
    from actnav.patient.models import PatientRecord
    from actnav.patient.notes.bundle import NoteEvidence
    from actnav.patient.notes.model import NoteExtraction, NoteFact

#: The largest note read (bytes): a referral letter or case summary is a few kilobytes.
MAX_NOTE_BYTES = 200_000

_FLAGS = ("negated", "family", "historical", "hypothetical", "uncertain")
_WHERE = "NOTE"


def check_note_dates(as_of: dt.date, *, today: dt.date, birth_date: dt.date | None = None) -> None:
    """Refuse an evaluation date a note cannot have, and a birth date after it.

    Why: a note is read as of the day it was written, which cannot be in the future, and ages read
    from it become birth dates (:data:`~actnav.patient.notes.bundle.EARLIEST_DATE`, 1900, is the
    earliest the bundle writer accepts, as the web form).

    Raises:
        InputError: ``where="--as-of"``: ``as_of`` after ``today`` or before 1900;
            ``where="--birth-date"``: ``birth_date`` after ``as_of`` or before 1900.
    """
    from actnav.patient.notes.bundle import EARLIEST_DATE

    if as_of > today:
        raise InputError(
            f"{as_of.isoformat()} is after today ({today.isoformat()})",
            where="--as-of",
            hint="a note is read as of the day it was written: give that date, or leave --as-of out",
        )
    if as_of < EARLIEST_DATE:
        raise InputError(f"{as_of.isoformat()} is before {EARLIEST_DATE.year}", where="--as-of")
    if birth_date is not None and birth_date > as_of:
        raise InputError(
            f"{birth_date.isoformat()} is after the evaluation date ({as_of.isoformat()})",
            where="--birth-date",
            hint="give the patient's date of birth (YYYY-MM-DD)",
        )
    if birth_date is not None and birth_date < EARLIEST_DATE:
        raise InputError(f"{birth_date.isoformat()} is before {EARLIEST_DATE.year}", where="--birth-date")


def read_note(path: Path) -> str:
    """The note in ``path`` as text (UTF-8, a BOM is dropped; line ends kept as written).

    Raises:
        InputError: ``where="NOTE"``: no such file, not a file, unreadable, empty (or only
            blanks), more than :data:`MAX_NOTE_BYTES`, binary (a NUL byte), not UTF-8.
    """
    if not path.exists():
        raise InputError("no such file", where=_WHERE, hint="give the path of a clinical note (plain text)")
    if not path.is_file():
        raise InputError("not a file", where=_WHERE, hint="give the path of a clinical note (plain text)")
    try:
        size = path.stat().st_size
        if size > MAX_NOTE_BYTES:
            raise InputError(
                f"the note is too large ({size} bytes; actnav reads at most {MAX_NOTE_BYTES})",
                where=_WHERE,
                hint="give one referral letter or case summary",
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read the note ({exc.strerror or type(exc).__name__})", where=_WHERE
        ) from exc
    if b"\x00" in raw:
        raise InputError(
            "the note is a binary file, not text", where=_WHERE, hint="save it as plain text (UTF-8)"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the note is not UTF-8 text (byte {exc.start})",
            where=_WHERE,
            hint="save it as plain text (UTF-8)",
        ) from exc
    if not text.strip():
        raise InputError("the note is empty", where=_WHERE)
    return text


def extract_file(path: Path, *, as_of: dt.date) -> NoteExtraction:
    """Read the note in ``path`` and extract its facts (see :func:`read_note` for the errors)."""
    text = read_note(path)
    from actnav.patient.notes.extract import extract_note

    return extract_note(text, as_of=as_of)


def _flags(fact: NoteFact) -> list[str]:
    return [name for name in _FLAGS if getattr(fact, name)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def facts_text(extraction: NoteExtraction) -> str:
    """Every fact for review, one line each, then what the reader should know; ASCII-safe text.

    A line reads ``  f3  diagnosis       multiple myeloma  "multiple myeloma"  [historical]``, with
    ``not used: <reason>`` at the end of a fact that does not become a patient fact.
    """
    from actnav.patient.notes.bundle import fact_uses

    uses = fact_uses(extraction)
    used = sum(reason is None for reason in uses.values())
    reviewed = sum(f.review != "pending" for f in extraction.facts)
    lines = [
        f"Facts read from the note as of {extraction.as_of.isoformat()}: {len(extraction.facts)} found, "
        f"{used} used, {reviewed or 'none'} reviewed.",
        "Check each one against the note before relying on it: facts read by machine are unconfirmed.",
        "",
    ]
    width = max((len(f.id) for f in extraction.facts), default=2)
    for fact in extraction.facts:
        line = (
            f'  {fact.id:<{width}}  {fact.kind:<18}  {_one_line(fact.label)}  "{_one_line(fact.span.text)}"'
        )
        flags = _flags(fact)
        if flags:
            line += f"  [{', '.join(flags)}]"
        if fact.origin != "rules":
            line += f"  (proposed by {fact.origin.replace('_', ' ')})"
        if uses[fact.id] is not None:
            line += f"  not used: {uses[fact.id]}"
        lines.append(line)
    if not extraction.facts:
        lines.append("  No fact found.")
    if not any(f.kind == "age" and uses[f.id] is None for f in extraction.facts):
        lines += ["", "The note states no age: add it (or --birth-date YYYY-MM-DD) before evaluation."]
    if extraction.unparsed:
        lines += ["", f"{len(extraction.unparsed)} sentence(s) in which the rules found nothing."]
    for warning in extraction.warnings:
        lines.append(f"Warning: {warning}")
    return "\n".join(lines) + "\n"


def facts_json(extraction: NoteExtraction) -> str:
    """The facts as JSON: ``{"as_of", "facts": [{...NoteFact, "used", "not_used"}], "unparsed",
    "warnings"}`` (the note's text is not repeated; each fact has its span)."""
    from actnav.patient.notes.bundle import fact_uses

    uses = fact_uses(extraction)
    facts: list[dict[str, Any]] = []
    for fact in extraction.facts:
        item = fact.model_dump(mode="json")
        item["used"] = uses[fact.id] is None
        item["not_used"] = uses[fact.id]
        facts.append(item)
    doc = {
        "as_of": extraction.as_of.isoformat(),
        "facts": facts,
        "unparsed": [s.model_dump(mode="json") for s in extraction.unparsed],
        "warnings": list(extraction.warnings),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def bundle_json(extraction: NoteExtraction, *, include_note: bool, birth_date: dt.date | None) -> str:
    """The extraction's FHIR Bundle as JSON text (:func:`~actnav.patient.notes.bundle.extraction_bundle`)."""
    from actnav.patient.notes.bundle import extraction_bundle

    bundle = extraction_bundle(extraction, include_note=include_note, birth_date=birth_date)
    return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"


def note_patient(
    path: Path, *, as_of: dt.date, birth_date: dt.date | None = None
) -> tuple[PatientRecord, dict[str, tuple[NoteEvidence, ...]]]:
    """The patient a note describes, read as any FHIR record, and the resources made from the note.

    Raises:
        InputError: the note cannot be read (:func:`read_note`), states no age and no
            ``birth_date`` is given, or states two ages or sexes.
    """
    from actnav.patient.fhir import patient_from_bundle
    from actnav.patient.notes.bundle import extracted_resources, extraction_bundle

    bundle = extraction_bundle(extract_file(path, as_of=as_of), birth_date=birth_date)
    return patient_from_bundle(bundle, as_of=as_of), extracted_resources(bundle)


__all__ = [
    "MAX_NOTE_BYTES",
    "bundle_json",
    "check_note_dates",
    "extract_file",
    "facts_json",
    "facts_text",
    "note_patient",
    "read_note",
]
