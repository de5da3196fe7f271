"""Tumour biomarkers and HLA alleles written in a note.

Biomarkers (BRAF V600E/K, MAGE-A4, CD19/CD20/CD22/CD30/BCMA and HER2 expression, PD-L1, EGFR, ALK)
are found by target rules (``data/notes/targets/markers.yaml``) and their result is read from the
words around them: after ("BRAF V600E negative", "CD19+", "HER2 3+", "HIV, HBV and HCV
negative"), else before ("positive for BCMA", "B cells expressing FMC-7, CD19, CD20"). Words that
assert the finding by themselves ("BRAF V600E-mutant", "ALK rearrangement") read as positive
unless a result follows. A mention with no result ("BRAF testing was sent", "CD19-directed
CAR-T") gives no fact: precision first.

HLA alleles ("HLA-A*02:01", "A*0201", "HLA-A2 positive") keep the allele as written in ``value``
and map to their P group (``concept``) with :func:`actnav.patient.terminology.hla_p_group`.

The result reading here is shared with :mod:`actnav.patient.notes.findings` (infection tests,
pregnancy tests).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from spacy.tokens import Doc
from spacy.tokens import Span as EntSpan

from actnav.errors import DataFileError
from actnav.knowledge.loader import load_data
from actnav.knowledge.models import Reference, SourceRef
from actnav.patient import terminology
from actnav.patient.models import Coding, FindingValue
from actnav.patient.notes.model import NoteFact, Span
from actnav.patient.notes.pipeline import flags

VOCABULARY = "notes/markers.yaml"


# -- vocabulary file ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeDef(_Strict):
    system: terminology.SystemKey
    code: str
    display: str | None = None


class Marker(_Strict):
    """A biomarker a target rule names (its ``concept``)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    #: The finding key of observations.yaml the fact carries as concept; None: shown, never used.
    finding: str | None
    label: str
    #: The results this mention can give (a gene-level "BRAF mutated" does not show V600).
    results: tuple[FindingValue, ...] = ("positive", "negative", "indeterminate")
    codes: tuple[CodeDef, ...] = ()
    ihc_scores: dict[str, FindingValue] = Field(default_factory=dict)
    source: SourceRef


class HlaCodes(_Strict):
    high_resolution: CodeDef
    low_resolution: CodeDef
    source: SourceRef


class MarkersVocabulary(_Strict):
    version: int
    source: str
    references: dict[str, Reference]
    markers: tuple[Marker, ...]
    result_words: dict[FindingValue, tuple[str, ...]] = Field(default_factory=dict)
    hla_codes: HlaCodes

    @model_validator(mode="after")
    def _consistent(self) -> MarkersVocabulary:
        for ref in [m.source.ref for m in self.markers] + [self.hla_codes.source.ref]:
            if ref not in self.references:
                raise ValueError(f"unknown reference {ref!r}")
        ids = [m.id for m in self.markers]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate marker id")
        return self


def finding_keys() -> frozenset[str]:
    """Every finding key observations.yaml defines (codes, genes and code-text findings)."""
    obs = terminology.observations()
    keys = {o.key for o in obs.observations if o.key is not None}
    keys |= {g.finding for g in obs.genes} | {t.key for t in obs.text_findings}
    return frozenset(keys)


@cache
def markers_vocabulary() -> MarkersVocabulary:
    """``data/notes/markers.yaml``, validated; every ``finding`` must be an observations.yaml key.

    Raises:
        DataFileError: invalid file or an unknown finding key.
    """
    table = load_data(MarkersVocabulary, VOCABULARY)
    known = finding_keys()
    for m in table.markers:
        if m.finding is not None and m.finding not in known:
            raise DataFileError(
                f"marker {m.id}: {m.finding!r} is not a finding of observations.yaml", where=VOCABULARY
            )
    return table


def codings(codes: tuple[CodeDef, ...]) -> tuple[Coding, ...]:
    """Codes of a data file as FHIR codings (system key -> URI of code-systems.yaml)."""
    uri = {s.key: s.uri for s in terminology.code_systems().systems}
    return tuple(Coding(system=uri[c.system], code=c.code, display=c.display) for c in codes)


# -- reading a result --------------------------------------------------------------------------

# One word or sign that may stand between a name and its result ("BRAF V600E mutation testing
# was negative"): the result is the first thing after the name that is not one of these.
_FILLER_STEP = re.compile(
    r"(?:\s+|[,/&:=()\-]|\b(?:and|or|is|was|were|are|be|been|both|all|status|tests?|testing|tested|results?|"
    r"serolog(?:y|ies)|screen(?:ing)?|by\s+(?:IHC|PCR|NGS|FISH|flow(?:\s+cytometry)?|immunohistochemistry|"
    r"sequencing)|mutations?|expression|staining|assay|IHC|PCR|NGS|FISH|antibod(?:y|ies)|Ab|came\s+back|"
    r"reported\s+as|found\s+to\s+be|on\s+(?:the\s+)?tumou?r|in\s+(?:the\s+)?tumou?r|cells?|strongly|"
    r"weakly|diffusely|confirmed|again|also|remains?|remained)\b)",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(r"[.;]\s|\b(?:but|however|although|whereas)\b", re.IGNORECASE)
_CLAUSE_START = re.compile(r"[.;:]\s|\b(?:but|however|although|whereas)\b", re.IGNORECASE)
_BEFORE_LIST = r"(?:[\w*:+\-/]+(?:\s*,\s*|\s+and\s+|\s+or\s+|\s+))*"


@cache
def _result_regex() -> re.Pattern[str]:
    """One alternation of result phrases (longest first), named by value."""
    obs = terminology.observations()
    extra = markers_vocabulary().result_words
    parts: list[tuple[str, str]] = []
    for value in ("indeterminate", "negative", "positive"):
        words = (*obs.result_words.get(value, ()), *extra.get(value, ()))
        parts += [(w, value) for w in words]
    parts.sort(key=lambda p: -len(p[0]))
    groups: dict[str, list[str]] = {"positive": [], "negative": [], "indeterminate": []}
    for word, value in parts:
        groups[value].append(re.escape(word).replace(r"\ ", r"[\s-]+"))
    alternation = "|".join(f"(?P<{value}>{'|'.join(words)})" for value, words in groups.items() if words)
    # "+" and "-" only as a suffix: "CD19+", "CD19 (+)", "BCMA-" before a space or the end.
    return re.compile(
        rf"(?:(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])|(?P<plus>\(?\+\)?)|(?P<minus>\(-\)|-(?=[\s,;.)]|$)))",
        re.IGNORECASE,
    )


_Value = Literal["positive", "negative", "indeterminate"]


def _value_of(m: re.Match[str]) -> _Value:
    for name in ("indeterminate", "negative", "positive"):
        if m.groupdict().get(name):
            return name
    return "positive" if m["plus"] else "negative"


def masked_text(doc: Doc, ent: EntSpan, siblings: list[EntSpan]) -> str:
    """The note text with the other mentions of the same kind blanked (lists share a result)."""
    chars = list(doc.text[ent.sent.start_char : ent.sent.end_char])
    for other in siblings:
        if other is ent or other.sent.start != ent.sent.start:
            continue
        for i in range(other.start_char, other.end_char):
            chars[i - ent.sent.start_char] = " "
    return "".join(chars)


def read_result(
    doc: Doc, ent: EntSpan, name_end: int, siblings: list[EntSpan], ihc: dict[str, FindingValue] | None = None
) -> tuple[FindingValue | None, str]:
    """The result written after (else before) a mention, and where it was read.

    Args:
        doc, ent: the mention.
        name_end: where the mention's name ends in ``doc.text`` (``"CD19+"`` is one token).
        siblings: the other mentions of the same kind (blanked, so "HIV, HBV and HCV negative"
            gives each the same result).
        ihc: immunohistochemistry scores of the marker (``"3+"`` -> positive), if any.

    Returns:
        ``(value, how)``: how is ``"after"``, ``"before"``, ``"negative for"`` (a "negative for X"
        phrase, which ConText reads as negation) or ``""`` when no result is written.
    """
    offset = ent.sent.start_char
    text = masked_text(doc, ent, siblings)
    after = text[name_end - offset :]
    stop = _CLAUSE_END.search(after)
    after = after[: stop.start()] if stop else after
    if ihc:
        m = re.match(r"\s*(?:IHC\s*)?(?:score\s*(?:of\s*)?)?(?P<s>[0-3]\+?)(?![\d.])", after, re.IGNORECASE)
        if m:
            score = m["s"] if m["s"] == "0" else m["s"].rstrip("+") + "+"
            if score in ihc:
                return ihc[score], "after"
    pos = 0
    while True:
        m = _result_regex().match(after, pos)
        if m:
            return _value_of(m), "after"
        step = _FILLER_STEP.match(after, pos)
        if not step or step.end() == pos:
            break
        pos = step.end()
    before = doc.text[offset : ent.start_char]
    starts = list(_CLAUSE_START.finditer(before))
    before = before[starts[-1].end() :] if starts else before
    m = re.search(rf"\b(?P<res>positive|negative|pos|neg)\s+for\s+{_BEFORE_LIST}$", before, re.IGNORECASE)
    if m:
        res = m["res"].lower()
        return ("positive", "before") if res.startswith("pos") else ("negative", "negative for")
    m = re.search(rf"\b(?:expressing|expresses|expressed|express)\s+{_BEFORE_LIST}$", before, re.IGNORECASE)
    if m:
        return "positive", "before"
    m = re.search(rf"\b(?:lacking|lacks|lack\s+of|loss\s+of)\s+{_BEFORE_LIST}$", before, re.IGNORECASE)
    if m:
        return "negative", "before"
    return None, ""


_RESULT_NEGATION = re.compile(
    r"(?:(?:is|was|were|are|came\s+back|tested|test(?:ed)?\s+was)\s+)?(?:negative|neg)(?:\s+for)?",
    re.IGNORECASE,
)


def negation_is_the_result(ent: EntSpan) -> bool:
    """True when every negation ConText found is the negative result itself ("negative for
    BRAF V600E", "pregnancy test is negative"): the words state a negative result of the patient,
    not the absence of a mention."""
    negations = [m for m in ent._.modifiers if m.category == "NEGATED_EXISTENCE"]
    if not negations:
        return False
    doc = ent.doc
    for mod in negations:
        start, end = mod.modifier_span
        if not _RESULT_NEGATION.fullmatch(doc[start:end].text.strip()):
            return False
    return True


def name_end(ent: EntSpan) -> int:
    """Where the rule's own words end inside the matched span ("HBsAg+" is one token)."""
    rule = ent._.target_rule
    pattern = rule.pattern if isinstance(rule.pattern, str) else re.escape(rule.literal)
    m = re.search(pattern, ent.text, re.IGNORECASE)
    return ent.start_char + (m.end() if m else len(ent.text))


def sentence_of(ent: EntSpan) -> Span:
    sent = ent.sent
    return Span(start=sent.start_char, end=sent.end_char, text=sent.text)


def span_of(doc: Doc, start: int, end: int) -> Span:
    text = doc.text[start:end].rstrip(" .,;:")
    return Span(start=start, end=start + len(text), text=text)


# -- biomarkers --------------------------------------------------------------------------------


def biomarker_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Biomarker results written in the note.

    Args:
        doc: the note read by :func:`~actnav.patient.notes.pipeline.note_doc`.
        as_of: the date the note describes (unused).

    Returns:
        Facts of kind ``biomarker``, ``id=""``: ``concept`` the finding key of observations.yaml
        (``braf_v600``, ``mage_a4``, ``antigen_cd19``, ``antigen_bcma``, ``antigen_her2``...; None
        for PD-L1, EGFR, ALK), ``value`` positive / negative / indeterminate, codes from
        ``data/notes/markers.yaml``. "Negative for X" is a negative result of the patient
        (``negated`` False, value negative); "no BRAF mutation" keeps ConText's negation.

    Source:
        Result words: observations.yaml ``result_words`` and markers.yaml; HER2 IHC scores:
        ASCO/CAP 2018 (markers.yaml).
    """
    del as_of
    vocab = {m.id: m for m in markers_vocabulary().markers}
    ents = [e for e in doc.ents if e.label_ == "biomarker"]
    out: list[NoteFact] = []
    for ent in ents:
        concept = ent._.target_rule.metadata.get("concept")
        marker = vocab.get(concept) if isinstance(concept, str) else None
        if marker is None:
            continue
        end = name_end(ent)
        value, _how = read_result(doc, ent, end, ents, marker.ihc_scores or None)
        asserted = ent._.target_rule.metadata.get("value") == "positive"
        modifiers = flags(ent)
        if value is None and asserted:
            value = "positive"
        if value is None and modifiers["negated"] and "negative" in marker.results:
            value = "negative"  # "no BRAF mutation": kept, negated, for the reviewer
        if value is None or value not in marker.results:
            continue
        if value == "negative" and negation_is_the_result(ent):
            modifiers["negated"] = False
        name = "negated: " + marker.label if modifiers["negated"] else marker.label
        out.append(
            NoteFact(
                id="",
                kind="biomarker",
                label=f"{name}: {value}",
                span=span_of(doc, ent.start_char, max(end, ent.start_char + 1)),
                sentence=sentence_of(ent),
                concept=marker.finding,
                codes=codings(marker.codes),
                value=value,
                detail=None if marker.finding else "not a finding actnav uses",
                original=doc.text[ent.start_char : ent.end_char],
                **modifiers,
            )
        )
    return out


# -- HLA ---------------------------------------------------------------------------------------

_SEROLOGIC = re.compile(r"^HLA[\s-]?(?P<locus>A|B|C)\s?(?P<antigen>\d{1,3})$", re.IGNORECASE)


def hla_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """HLA alleles written in the note.

    "HLA-A*02:01", "A*02:01:01", legacy "HLA-A*0201", one-field "A*02", serological "HLA-A2".

    Returns:
        Facts of kind ``hla``, ``id=""``: ``value`` the allele as written without the ``HLA-``
        prefix (``A*02:01``, ``A*0201``, ``A2``); ``concept`` its P group when hla.yaml maps it
        (``A*02:01P``), else None with the reason in ``detail``; codes LOINC 57290-9 (two fields
        or more) or 78014-8 (one field, serological) for locus A. "HLA-A2 negative" is kept with
        ``negated`` True: the allele is absent.

    Source:
        P groups: data/terminology/hla.yaml; codes: observations.yaml via markers.yaml.
    """
    del as_of
    vocab = markers_vocabulary().hla_codes
    ents = [e for e in doc.ents if e.label_ == "hla"]
    out: list[NoteFact] = []
    for ent in ents:
        end = name_end(ent)
        written = doc.text[ent.start_char : end].strip()
        allele = re.sub(r"^HLA[\s-]?", "", written, flags=re.IGNORECASE)
        serologic = _SEROLOGIC.match(written)
        detail: str | None
        if serologic:
            locus, p_group = serologic["locus"].upper(), None
            detail = "serological antigen: high-resolution typing needed for a P group"
            high = False
        else:
            call = terminology.hla_p_group(allele)
            if call.locus is None:
                continue
            locus, p_group, detail, high = call.locus, call.p_group, call.note or None, call.fields >= 2
        value, _how = read_result(doc, ent, end, ents)
        modifiers = flags(ent)
        if value == "negative":
            modifiers["negated"] = True
        elif value == "indeterminate":
            modifiers["uncertain"] = True
        code = vocab.high_resolution if high else vocab.low_resolution
        codes = codings((code,)) if locus == "A" else ()
        label = f"HLA-{allele}" + (f" ({p_group})" if p_group else "")
        out.append(
            NoteFact(
                id="",
                kind="hla",
                label=("no " + label) if modifiers["negated"] else label,
                span=span_of(doc, ent.start_char, end),
                sentence=sentence_of(ent),
                concept=p_group,
                codes=codes,
                value=allele,
                original=written,
                detail=detail,
                **modifiers,
            )
        )
    return out
