"""Laboratory values and performance status written in a note.

The analyte is found by a target rule (``data/notes/targets/labs.yaml``), so ConText applies to
it ("previous creatinine", "her mother's haemoglobin"); the value and unit are read from the text
right after the analyte's name, within its sentence: ``"platelets 85,000/uL"``, ``"Hb 9.1 (L)"``,
``"WBC 3.2 K/uL"``, ``"85 x 10^9/L"``, ``"85K"``, ``"creatinine: 2.3 mg/dL"``,
``"lactate dehydrogenase (LDH): 881 IU/L"``, ``"ALT/AST 40/35 U/L"``.

Each value becomes a :class:`~actnav.patient.notes.model.NoteFact` of kind ``lab`` whose
``number``/``unit`` are in the analyte's canonical UCUM unit (``data/terminology/labs.yaml``,
converted with :mod:`actnav.patient.units`) and whose ``original`` is the value and unit as
written. actnav never guesses a unit silently:

* no unit written: the canonical unit is assumed only where ``data/notes/measures.yaml``
  (``unstated_units``) says no other unit in use gives numbers in that range ("creatinine 2.3",
  "LVEF 45"); otherwise the fact keeps the number with ``unit`` None and says "unit not stated";
* a unit actnav does not know: ``unit`` None, "unit not recognised";
* a unit that cannot be converted (a percentage for a count), or a value outside the analyte's
  plausible range (labs.yaml ``plausible``): no fact, a warning (:func:`note_warnings`);
* a range ("80-90") or a bound ("eGFR >60"): ``number`` None, the words kept in ``detail``.

Analytes labs.yaml does not have (white cell count, albumin, calcium, HbA1c, direct bilirubin...)
are read with their LOINC code from ``data/notes/measures.yaml`` and ``concept`` None: shown to
the reviewer, never used by the rules.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from spacy.tokens import Doc
from spacy.tokens import Span as EntSpan

from actnav.errors import DataFileError, UnitError
from actnav.knowledge.loader import load_data
from actnav.knowledge.models import Reference, SourceRef
from actnav.patient import terminology, units
from actnav.patient.models import Coding
from actnav.patient.notes.model import NoteFact, Span
from actnav.patient.notes.pipeline import flags

VOCABULARY = "notes/measures.yaml"

#: Key of ``doc.user_data`` under which extractors leave warnings for the extraction.
WARNINGS_KEY = "actnav_note_warnings"


# -- vocabulary file ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnstatedUnit(_Strict):
    """The unit a value written without one is read in, only within ``[min, max]``."""

    analyte: str
    unit: str
    min: float = Field(ge=0)
    max: float
    source: SourceRef


class UnitSpelling(_Strict):
    """A unit spelling seen in notes that units.yaml does not list."""

    written: str
    ucum: str
    source: SourceRef


class LoincCode(_Strict):
    code: str
    display: str


class ExtraAnalyte(_Strict):
    """An analyte labs.yaml does not have: read and shown, never used (concept None)."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    unit: str
    label: str
    loinc: LoincCode
    plausible: terminology.Plausible
    source: SourceRef


class PerformanceReading(_Strict):
    """An unnamed "performance status" of 0..``unnamed_max`` is read on ``unnamed_scale``."""

    unnamed_scale: Literal["ecog"]
    unnamed_max: int = Field(ge=0, le=5)
    source: SourceRef


class MeasuresFile(_Strict):
    version: int
    source: str
    references: dict[str, Reference]
    unstated_units: tuple[UnstatedUnit, ...]
    unit_spellings: tuple[UnitSpelling, ...] = ()
    extra_analytes: tuple[ExtraAnalyte, ...] = ()
    ignored: tuple[str, ...] = ()
    performance: PerformanceReading
    uncoded: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> MeasuresFile:
        refs = [u.source.ref for u in self.unstated_units] + [s.source.ref for s in self.unit_spellings]
        refs += [a.source.ref for a in self.extra_analytes] + [
            a.plausible.source.ref for a in self.extra_analytes
        ]
        refs.append(self.performance.source.ref)
        for ref in refs:
            if ref not in self.references:
                raise ValueError(f"unknown reference {ref!r}")
        for u in self.unstated_units:
            if not u.max > u.min:
                raise ValueError(f"unstated unit of {u.analyte}: max must be above min")
        return self


@cache
def measures_vocabulary() -> MeasuresFile:
    """``data/notes/measures.yaml``, validated and checked against labs.yaml and units.yaml.

    Raises:
        DataFileError: invalid file; an analyte that is in neither labs.yaml nor
            ``extra_analytes``; an extra analyte that shadows a labs.yaml key; a unit units.yaml
            does not know.
    """
    table = load_data(MeasuresFile, VOCABULARY)
    lab_keys = {a.key for a in terminology.labs().analytes}
    extra = {a.key for a in table.extra_analytes}
    for a in table.extra_analytes:
        if a.key in lab_keys:
            raise DataFileError(f"extra analyte {a.key!r} is in labs.yaml", where=VOCABULARY)
        if units.known_unit(a.unit) is None:
            raise DataFileError(f"unit {a.unit!r} of {a.key} is not in units.yaml", where=VOCABULARY)
    for u in table.unstated_units:
        if u.analyte not in lab_keys | extra:
            raise DataFileError(f"unknown analyte {u.analyte!r}", where=f"{VOCABULARY}: unstated_units")
        if units.known_unit(u.unit) is None:
            raise DataFileError(
                f"unit {u.unit!r} is not in units.yaml", where=f"{VOCABULARY}: unstated_units"
            )
    for s in table.unit_spellings:
        if units.known_unit(s.ucum) is None:
            raise DataFileError(
                f"unit {s.ucum!r} is not in units.yaml", where=f"{VOCABULARY}: unit_spellings"
            )
    return table


# -- warnings ----------------------------------------------------------------------------------


def note_warnings(doc: Doc) -> list[str]:
    """Warnings the extractors left on ``doc`` (values rejected, units not convertible).

    They carry no note text beyond the analyte and the value: they go to
    :attr:`~actnav.patient.notes.model.NoteExtraction.warnings`, never to a log.
    """
    found: list[str] = doc.user_data.setdefault(WARNINGS_KEY, [])
    return found


def _warn(doc: Doc, message: str) -> None:
    note_warnings(doc).append(message)


# -- analytes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Analyte:
    key: str
    unit: str
    label: str
    codes: tuple[Coding, ...]
    used: bool  # in labs.yaml: the fact carries the key as concept


@cache
def _analytes() -> dict[str, _Analyte]:
    loinc = terminology.code_systems()
    uri = next(s.uri for s in loinc.systems if s.key == "loinc")
    vocab = measures_vocabulary()
    out: dict[str, _Analyte] = {}
    for a in terminology.labs().analytes:
        codes: tuple[Coding, ...] = ()
        if a.key not in vocab.uncoded:
            first = next((c for c in terminology.labs().codes if c.key == a.key), None)
            if first is not None:
                codes = (Coding(system=uri, code=first.code, display=first.display),)
        out[a.key] = _Analyte(a.key, a.unit, a.description, codes, used=True)
    for e in vocab.extra_analytes:
        code = Coding(system=uri, code=e.loinc.code, display=e.loinc.display)
        out[e.key] = _Analyte(e.key, e.unit, e.label, (code,), used=False)
    return out


def _implausible(key: str, value: float) -> str | None:
    if key in {a.key for a in terminology.labs().analytes}:
        return terminology.implausible(key, value)
    extra = next(e for e in measures_vocabulary().extra_analytes if e.key == key)
    bound = extra.plausible
    if not bound.min <= value <= bound.max:
        return f"{value:g} {extra.unit} is outside the plausible range for {key} ({bound.min:g} to {bound.max:g} {extra.unit})"
    return None


# -- reading the value -------------------------------------------------------------------------

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+,\d{1,2}(?![\d,])|\d+(?:\.\d+)?|\.\d+"
# Words and signs between an analyte's name and its value: "platelet count of", "Hb:",
# "lactate dehydrogenase (LDH):", "creatinine was", "elevated LDH (2000 IU/L)".
_LEAD = (
    r"(?:\s*(?:\([A-Za-z][A-Za-z0-9 .\-]{0,14}\)|[:=]|-(?=\s)|–|\((?=\s*[<>≤≥]?\s*\d)"
    r"|\b(?:count|counts|level|levels|value|values|of|is|was|were|are|at|measured|now|today|currently"
    r"|score|total|serum|result|on\s+admission)\b))*\s*"
)
_COMPARATOR = r"(?P<cmp>[<>≤≥]=?|less\s+than|greater\s+than|above|below|over|under)?\s*"
_VALUE = re.compile(
    _LEAD + _COMPARATOR + rf"(?P<num>{_NUMBER})(?P<range>\s*(?:-|–|to)\s*(?:{_NUMBER}))?", re.IGNORECASE
)
_PAIR = re.compile(_LEAD + rf"(?P<num>{_NUMBER})(?P<rest>(?:\s*/\s*(?:{_NUMBER}))+)", re.IGNORECASE)
_POWER = re.compile(
    r"\s*(?:x|×|\*)\s*10\s*(?:\^|\*\*?|e)?\s*(?P<exp>12|9|6|3|¹²|⁹|⁶|³)\s*/\s*"
    r"(?P<per>l|ul|µl|μl|mcl|mm3|mm³|cu\.?\s?mm|cmm)(?![A-Za-z])",
    re.IGNORECASE,
)
_THOUSANDS = re.compile(r"(?P<k>[Kk])(?![A-Za-z/0-9])")
_UNIT = re.compile(r"\s?(?P<u>%|[A-Za-zµμ/\[][A-Za-z0-9µμ/.*^\[\]{}²³_]*)(?P<m2>\s?m(?:2|²|\^2))?")
_FLAG = re.compile(r"\s*\((?P<flag>L|H|LL|HH|low|high|critical|abnormal)\)", re.IGNORECASE)
# A number followed by these is a time or a count of something else, not the analyte's value.
_NOT_A_UNIT = re.compile(
    r"(?:days?|d|weeks?|wks?|months?|mos?|years?|yrs?|y|hours?|hrs?|h|times|cycles?|doses?|x)$", re.IGNORECASE
)
_MASS_WORDS = {"mg", "g", "ug", "mcg", "ng", "pg", "mmol", "umol", "meq", "u", "iu", "units"}
_PER = {"l": "L", "ul": "uL", "µl": "uL", "μl": "uL", "mcl": "uL"}
_SUPERSCRIPT = str.maketrans({"¹": "1", "²": "2", "³": "3", "⁶": "6", "⁹": "9", "μ": "u", "µ": "u"})


@dataclass(frozen=True)
class _Reading:
    number: float | None
    ucum: str | None  # None: not stated or not recognised
    written_unit: str | None
    start: int  # of the value, in doc.text
    end: int
    detail: str | None = None


def _to_float(text: str) -> float:
    if re.fullmatch(r"\d+,\d{1,2}", text):
        return float(text.replace(",", "."))  # decimal comma: "9,1"
    return float(text.replace(",", ""))


def _read_unit(text: str, pos: int, end: int) -> tuple[str | None, str | None, int]:
    """(UCUM code or None, unit as written or None, end) of the unit at ``pos``."""
    m = _POWER.match(text, pos, end)
    if m:
        exp = m["exp"].translate(_SUPERSCRIPT)
        per = m["per"].translate(_SUPERSCRIPT).lower()
        per_ucum = _PER.get(per, "mm3" if "mm" in per else per)
        ucum = f"10*{exp}/{per_ucum}" if per_ucum in ("L", "uL") else None
        if per_ucum == "mm3" and exp == "3":
            ucum = "10*3/uL"
        return (ucum if ucum and units.known_unit(ucum) else None), m.group(0).strip(), m.end()
    m = _THOUSANDS.match(text, pos, end)
    if m:
        return "10*3/uL", m.group(0), m.end()
    m = _UNIT.match(text, pos, end)
    if not m:
        return None, None, pos
    written = (m["u"] + (m["m2"] or "")).rstrip(".")
    stop = m.start("u") + len(written) if not m["m2"] else m.end()
    if _NOT_A_UNIT.fullmatch(written) or re.search(r"hpf|/hp?f\b|per\b", written, re.IGNORECASE):
        return None, written, -1  # not this analyte's value
    ucum = _known(written)
    if ucum is None and not ("/" in written or "%" in written or written.lower() in _MASS_WORDS):
        return None, None, pos  # a word, not a unit: the value has no unit
    return ucum, written, stop


def _known(written: str) -> str | None:
    vocab = measures_vocabulary()
    for candidate in (written, written.translate(_SUPERSCRIPT).replace("^", "")):
        for s in vocab.unit_spellings:
            if candidate == s.written or candidate.casefold() == s.written.casefold():
                return s.ucum
        found = units.known_unit(candidate)
        if found is not None:
            return found
    return None


def _read_value(doc: Doc, name_end: int, sent_end: int) -> _Reading | None:
    text = doc.text
    m = _VALUE.match(text, name_end, sent_end)
    if not m:
        return None
    detail = None
    number: float | None = _to_float(m["num"])
    if m["range"]:
        number, detail = None, f"a range ({m.group('num')}{m.group('range')}), not one value"
    if m["cmp"]:
        number, detail = None, f"a bound ({m['cmp']} {m['num']}), not a value"
    ucum, written, stop = _read_unit(text, m.end(), sent_end)
    if stop < 0:
        return None
    flag = _FLAG.match(text, stop, sent_end)
    if flag:
        detail = f"flagged {flag['flag']}" if detail is None else f"{detail}; flagged {flag['flag']}"
    start = m.start("cmp") if m["cmp"] else m.start("num")
    return _Reading(number, ucum, written, start, max(stop, m.end()), detail)


# -- lab facts ---------------------------------------------------------------------------------


def _name_end(ent: EntSpan) -> int:
    """Where the analyte's name ends: "LVEF=45" is one token, the name is "LVEF"."""
    m = re.match(r"[A-Za-z][A-Za-z0-9]*(?:[\s\-./][A-Za-z][A-Za-z0-9]*)*", ent.text)
    return ent.start_char + (m.end() if m else len(ent.text))


def lab_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Laboratory values (and LVEF, SpO2, weight, height) written in the note.

    Args:
        doc: the note read by :func:`~actnav.patient.notes.pipeline.note_doc`.
        as_of: the date the note describes (unused: a value's own date is not read yet).

    Returns:
        One fact of kind ``lab`` per value, ``id=""``: ``concept`` the labs.yaml analyte key (None
        for analytes only ``data/notes/measures.yaml`` knows), ``number``/``unit`` in the
        canonical UCUM unit (unit None when not stated or not recognised), ``original`` the value
        and unit as written, ``codes`` the analyte's LOINC code, ConText flags of the analyte's
        name. Values that cannot be converted or are implausible are left out with a warning on
        ``doc`` (:func:`note_warnings`).

    Source:
        Canonical units and plausible ranges: ``data/terminology/labs.yaml``; unit spellings:
        ``data/terminology/units.yaml``; unstated units: ``data/notes/measures.yaml``.
    """
    del as_of
    ents = [e for e in doc.ents if e.label_ == "lab"]
    analytes = _analytes()
    ignored = set(measures_vocabulary().ignored)
    out: list[NoteFact] = []
    consumed = -1
    i = 0
    while i < len(ents):
        ent = ents[i]
        if ent.start_char < consumed:
            i += 1
            continue
        chain = _slash_chain(doc, ents, i)
        readings = _read_chain(doc, chain)
        for member, reading in zip(chain, readings, strict=True):
            key = _concept(member)
            if reading is None or key is None or key in ignored or key not in analytes:
                continue
            fact = _lab_fact(doc, member, analytes[key], reading)
            if fact is not None:
                out.append(fact)
            consumed = max(consumed, reading.end)
        i += len(chain)
    return out


def _concept(ent: EntSpan) -> str | None:
    concept = ent._.target_rule.metadata.get("concept")
    return concept if isinstance(concept, str) else None


def _slash_chain(doc: Doc, ents: Sequence[EntSpan], i: int) -> list[EntSpan]:
    """``ALT/AST``: names joined by slashes share one slash-separated value ("40/35 U/L")."""
    chain = [ents[i]]
    while i + len(chain) < len(ents):
        nxt = ents[i + len(chain)]
        between = doc.text[_name_end(chain[-1]) : nxt.start_char]
        if between.strip() != "/" or nxt.sent.start != chain[-1].sent.start:
            break
        chain.append(nxt)
    return chain


def _read_chain(doc: Doc, chain: Sequence[EntSpan]) -> list[_Reading | None]:
    last = chain[-1]
    sent_end = last.sent.end_char
    if len(chain) == 1:
        return [_read_value(doc, _name_end(last), sent_end)]
    m = _PAIR.match(doc.text, _name_end(last), sent_end)
    if not m:
        return [None] * len(chain)
    numbers = [m["num"], *re.findall(_NUMBER, m["rest"])]
    if len(numbers) != len(chain):
        return [None] * len(chain)
    ucum, written, stop = _read_unit(doc.text, m.end(), sent_end)
    if stop < 0:
        return [None] * len(chain)
    end = max(stop, m.end())
    return [_Reading(_to_float(n), ucum, written, m.start("num"), end) for n in numbers]


def _lab_fact(doc: Doc, ent: EntSpan, analyte: _Analyte, reading: _Reading) -> NoteFact | None:
    start = ent.start_char
    original = doc.text[reading.start : reading.end].strip()
    number = reading.number
    unit: str | None = None
    detail = reading.detail
    where = f"{analyte.key} at characters {start}-{reading.end}"
    if reading.ucum is not None:
        if number is not None:
            try:
                number = units.to_unit(number, reading.ucum, analyte.unit, where, analyte=analyte.key)
            except UnitError:
                _warn(doc, f"{where}: {original!r} cannot be converted to {analyte.unit}; not read")
                return None
        unit = analyte.unit
    elif reading.written_unit is not None:
        detail = _join(detail, f"unit not recognised: {reading.written_unit}")
    else:
        assumed = _unstated_unit(analyte.key, number)
        if assumed is None:
            detail = _join(detail, "unit not stated")
        else:
            unit = assumed
            detail = _join(detail, f"unit not stated: read as {assumed}")
    if number is not None and unit is not None:
        number = round(number, 6)
        why = _implausible(analyte.key, number)
        if why is not None:
            _warn(doc, f"{where}: {why}; not read")
            return None
    return NoteFact(
        id="",
        kind="lab",
        label=_lab_label(analyte.label, number, unit, original, detail),
        span=Span(start=start, end=reading.end, text=doc.text[start : reading.end]),
        sentence=_sentence(ent),
        concept=analyte.key if analyte.used else None,
        codes=analyte.codes,
        number=number,
        unit=unit,
        original=original,
        detail=detail,
        **flags(ent),
    )


def _unstated_unit(key: str, number: float | None) -> str | None:
    """The unit a value written without one is read in, when measures.yaml says it is unambiguous."""
    for rule in measures_vocabulary().unstated_units:
        if rule.analyte == key and (number is None or rule.min <= number <= rule.max):
            return rule.unit
    return None


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first}; {second}"


def _lab_label(name: str, number: float | None, unit: str | None, original: str, detail: str | None) -> str:
    name = re.sub(r"\s*\(.*?\)", "", name)
    if number is None or unit is None:
        return f"{name} {original} ({detail})" if detail else f"{name} {original}"
    return f"{name} {number:g} {unit}"


def _sentence(ent: EntSpan) -> Span:
    sent = ent.sent
    return Span(start=sent.start_char, end=sent.end_char, text=sent.text)


# -- performance status ------------------------------------------------------------------------

_SCORE = re.compile(
    r"(?:\s*(?:\((?:PS|KPS|ECOG)\)|[:=]|-(?=\s)|\b(?:of|is|was|score|PS|status|performance\s+status|grade"
    r"|currently|now|at)\b))*\s*"
    r"(?P<n>\d{1,3}(?:\.\d+)?)(?!,\d|\d)(?:\s*(?:-|–|to|/)\s*(?P<n2>\d{1,3}))?(?P<pct>\s*%)?(?!\.\d|\d)",
    re.IGNORECASE,
)


def performance_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """ECOG (0-5) and Karnofsky (0-100) performance status written in the note.

    "ECOG PS 1", "ECOG performance status of 2", "WHO PS 1", "KPS 70%", "Karnofsky 80"; an
    unnamed "performance status of 2" is read as ECOG when it is 0-4 (a number of 10 or more could
    be Karnofsky or Lansky and is not read). A range ("ECOG 0-1") gives ``number`` None with the
    range in ``detail``; a score outside the scale (ECOG 7, ECOG 1.5) gives no fact and a warning.

    Returns:
        Facts of kind ``performance_status``, ``concept`` ``ecog`` or ``karnofsky``, unit
        ``{score}``, LOINC 89247-1 / 89243-0 (labs.yaml), ``id=""``.
    """
    del as_of
    vocab = measures_vocabulary().performance
    analytes = _analytes()
    out: list[NoteFact] = []
    consumed = -1
    for ent in (e for e in doc.ents if e.label_ == "performance_status"):
        if ent.start_char < consumed:
            continue
        m = _SCORE.match(doc.text, _name_end(ent), ent.sent.end_char)
        if not m:
            continue
        named = _concept(ent)
        value = float(m["n"])
        scale = named
        detail = None
        if scale is None:
            if m["pct"] or m["n2"] or value > vocab.unnamed_max:
                continue
            scale, detail = vocab.unnamed_scale, "scale not named: read as ECOG"
        if scale == "ecog" and m["pct"]:
            continue
        number: float | None = float(value)
        if m["n2"]:
            number, detail = None, f"a range ({m['n']}-{m['n2']}), not one score"
        where = f"{scale} at characters {ent.start_char}-{m.end()}"
        if number is not None:
            why = terminology.implausible(scale, number)
            if why is not None:
                _warn(doc, f"{where}: {why}; not read")
                continue
        consumed = m.end()
        original = doc.text[m.start("n") : m.end()].strip()
        name = "ECOG" if scale == "ecog" else "Karnofsky"
        label = f"{name} {value:g}" if number is not None else f"{name} {original} ({detail})"
        out.append(
            NoteFact(
                id="",
                kind="performance_status",
                label=label,
                span=Span(start=ent.start_char, end=m.end(), text=doc.text[ent.start_char : m.end()]),
                sentence=_sentence(ent),
                concept=scale,
                codes=analytes[scale].codes,
                number=number,
                unit="{score}",
                original=original,
                detail=detail,
                **flags(ent),
            )
        )
    return out
