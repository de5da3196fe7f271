"""Diagnoses and disease states read from a clinical note.

The words that name a condition, and its codes, are in ``data/notes/conditions.yaml`` (the conditions
lexicon); the pipeline turns its terms into target rules (:func:`lexicon_rules`). A diagnosis maps to
an actnav disease concept (``multiple_myeloma``) by the lexicon entry or, failing that, by the
diagnosis text patterns of ``terminology/diagnoses.yaml``; its ICD-10-CM and ICD-O-3 codes come from
:func:`actnav.care.keyfacts.diagnosis_codings` when the concept is one of actnav's diseases, else from
the lexicon (ICD-10-CM titles from simple-icd-10-cm). Histology and stage written near a cancer go in
``detail``.

Disease states (relapse, refractory, progression) are kept only when they are about a cancer: the
adjective stands before a cancer or "disease" ("relapsed myeloma", "recurrent disease"), or the
noun's sentence names a cancer ("With relapse of her myeloma"). "Recurrent pneumonia" and
"progressive weakness" are not disease states. "Second relapse" and "2 prior relapses" give the
number of relapses (``number``, and ``detail``).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from spacy.tokens import Doc, Span

from actnav.knowledge.loader import load_data
from actnav.knowledge.models import Reference, SourceRef
from actnav.patient import terminology as term
from actnav.patient.models import Coding
from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.model import Span as TextSpan
from actnav.patient.notes.pipeline import TargetRuleDef, flags

LEXICON = "notes/conditions.yaml"

#: Disease concepts under which a diagnosis is a cancer (diagnoses.yaml roots).
_MALIGNANT_ROOTS = frozenset({"hematologic_malignancy", "solid_tumor", "other_malignancy"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionEntry(_Strict):
    """One condition of the lexicon: its words and its codes.

    ``concept`` is an actnav disease concept of diagnoses.yaml (its codes then come from there);
    ``icd10cm`` is used when diagnoses.yaml gives no ICD-10-CM code; ``not_after`` lists words
    that, just before a term, mean something else ("ST depression").
    """

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    terms: tuple[str, ...] = ()
    abbreviations: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    concept: str | None = None
    icd10cm: str | None = None
    snomed: str | None = Field(default=None, pattern=r"^\d{6,18}$")
    read_as: Literal["diagnosis", "infection"] = "diagnosis"
    not_after: tuple[str, ...] = ()
    #: For a tumour named by its histology alone (astrocytoma, mesothelioma): the ICD-10-CM code
    #: at each body site of ``sites``. A site written right after the term ("of the spine")
    #: chooses the code; a site not listed leaves the ICD-10-CM code out (never guessed).
    site_codes: dict[str, str] = Field(default_factory=dict)
    source: SourceRef


class BodySite(_Strict):
    """Words naming a body site after a tumour ("astrocytoma of the spine")."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    words: tuple[str, ...] = Field(min_length=1)
    reason: str


class FindingWords(_Strict):
    """Words that describe a finding by its shape or look (mass, nodule): no condition term may
    contain them, since a finding is not a diagnosis."""

    words: tuple[str, ...] = Field(min_length=1)
    reason: str


class DiseaseQualifiers(_Strict):
    """Words that make a condition another disease ("gestational diabetes", "secondary
    hypertension", "hypertension in pregnancy"): ``before`` the condition's words, or ``after``
    them. A mention so qualified keeps neither the entry's codes nor its concept."""

    before: tuple[str, ...] = Field(min_length=1)
    after: tuple[str, ...] = ()
    reason: str


class ConditionsFile(_Strict):
    version: int
    source: str
    references: dict[str, Reference]
    histologies: tuple[str, ...]
    finding_words: FindingWords
    disease_qualifiers: DiseaseQualifiers | None = None
    sites: tuple[BodySite, ...] = ()
    conditions: tuple[ConditionEntry, ...]

    @model_validator(mode="after")
    def _consistent(self) -> ConditionsFile:
        keys = [c.key for c in self.conditions]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate condition key")
        concepts = {c.id for c in term.diagnoses().concepts}
        for c in self.conditions:
            if c.source.ref not in self.references:
                raise ValueError(f"{c.key}: unknown reference {c.source.ref!r}")
            if c.concept is not None and c.concept not in concepts:
                raise ValueError(f"{c.key}: unknown concept {c.concept!r}")
            if not (c.terms or c.abbreviations or c.patterns):
                raise ValueError(f"{c.key}: no terms")
            for p in c.patterns:
                re.compile(p)
            unknown = set(c.site_codes) - {site.key for site in self.sites}
            if unknown:
                raise ValueError(f"{c.key}: unknown sites {sorted(unknown)}")
            for term_ in (*c.terms, *c.abbreviations):
                shape = set(re.findall(r"[a-z]+", term_.lower())) & set(self.finding_words.words)
                if shape:
                    raise ValueError(
                        f"{c.key}: term {term_!r} names a finding ({sorted(shape)[0]}), not a condition"
                    )
        return self


@cache
def condition_lexicon() -> ConditionsFile:
    """``data/notes/conditions.yaml``, validated. Raises DataFileError when invalid."""
    return load_data(ConditionsFile, LEXICON)


@cache
def _entries() -> dict[str, ConditionEntry]:
    return {c.key: c for c in condition_lexicon().conditions}


def condition_entry(key: str) -> ConditionEntry:
    """The lexicon entry of a key (``"type_2_diabetes"``); KeyError when unknown."""
    return _entries()[key]


def lexicon_rules() -> list[TargetRuleDef]:
    """Target rules (kind ``diagnosis``, ``concept`` = the lexicon key) for every condition the
    diagnosis extractor reads (not those ``read_as: infection``, which findings.py reads)."""
    out: list[TargetRuleDef] = []
    for c in condition_lexicon().conditions:
        if c.read_as != "diagnosis":
            continue
        out.extend(TargetRuleDef(literal=t, kind="diagnosis", concept=c.key) for t in c.terms)
        out.extend(
            TargetRuleDef(
                literal=a,
                kind="diagnosis",
                concept=c.key,
                # medspacy compiles regexes case-insensitive: the inline flag keeps the case.
                pattern=rf"(?<![A-Za-z0-9])(?-i:{re.escape(a)})(?![A-Za-z0-9])",
            )
            for a in c.abbreviations
        )
        out.extend(TargetRuleDef(literal=p, kind="diagnosis", concept=c.key, pattern=p) for p in c.patterns)
    return out


# -- codes -----------------------------------------------------------------------------------


def _uri(key: str) -> str:
    for system in term.code_systems().systems:
        if system.key == key:
            return system.uri
    raise KeyError(key)


def icd10cm_title(code: str) -> str | None:
    """The ICD-10-CM title of a code (simple-icd-10-cm), None when it is not a code
    (:func:`actnav.patient.terminology.icd10cm_title`)."""
    return term.icd10cm_title(code)


@cache
def _disease_concepts() -> frozenset[str]:
    return frozenset(c.id for c in term.diagnoses().concepts if c.kind == "disease")


def concept_for(entry: ConditionEntry, words: str) -> str | None:
    """The actnav disease concept of a mention: the entry's, else what the diagnosis text patterns
    of diagnoses.yaml read in the words, else ``other_malignancy`` for an ICD-10-CM malignant
    neoplasm (C00-C96), else None."""
    if entry.concept is not None:
        return entry.concept
    found = [c for c in term.map_condition([], [words]).concepts if c in _disease_concepts()]
    if found:
        return found[0]
    if entry.icd10cm is not None and entry.icd10cm.startswith("C"):
        return "other_malignancy"
    return None


def is_malignant(concept: str | None) -> bool:
    """True when a disease concept is a cancer (under a malignancy root of diagnoses.yaml)."""
    if concept is None:
        return False
    return bool(_MALIGNANT_ROOTS & set(term.concept_lineage(concept)))


@cache
def _single_snomed(concept: str) -> str | None:
    codes = [m.code for m in term.diagnoses().maps if m.system == "snomed" and m.concepts == (concept,)]
    return codes[0] if len(codes) == 1 else None


def condition_codes(
    entry: ConditionEntry, concept: str | None, site: str | None = None
) -> tuple[Coding, ...]:
    """ICD-10-CM (and ICD-O-3, actnav) codes from diagnoses.yaml for a known disease concept,
    the lexicon's ICD-10-CM code when those give none, and SNOMED CT (lexicon, else the one
    diagnoses.yaml code naming exactly the concept).

    ``site``: a body site key (``spinal_cord``) written after a tumour named by its histology;
    for an entry with ``site_codes`` it replaces the ICD-10-CM code by the site's, or leaves
    ICD-10-CM out when the entry has no code for that site.
    """
    from actnav.care.keyfacts import diagnosis_codings

    out: list[Coding] = []
    if concept is not None and concept in _disease_concepts() and concept == entry.concept:
        out = [Coding(**c) for c in diagnosis_codings(concept)]
    icd_uri = _uri("icd10cm")
    if site is not None and entry.site_codes:
        out = [c for c in out if c.system != icd_uri]
        code = entry.site_codes.get(site)
        if code is not None:
            out.insert(0, Coding(system=icd_uri, code=code, display=icd10cm_title(code)))
    elif entry.icd10cm is not None and not any(c.system == icd_uri for c in out):
        out.insert(0, Coding(system=icd_uri, code=entry.icd10cm, display=icd10cm_title(entry.icd10cm)))
    snomed = entry.snomed or (_single_snomed(entry.concept) if entry.concept else None)
    if snomed is not None:
        out.append(Coding(system=_uri("snomed"), code=snomed))
    return tuple(out)


# -- facts -----------------------------------------------------------------------------------

_STAGE = re.compile(
    r"\b(?:(?:r-?iss|iss|ann arbor|figo|ajcc)\s+)?stage\s+(?:[0-4]|iv|i{1,3})[a-c]?[12]?\b"
    r"|\b[cpy]?T(?:[0-4][a-d]?|is|x)\s?N[0-3x][a-c]?\s?M[01x][a-c]?\b",
    re.IGNORECASE,
)
_DISEASE_WORDS = frozenset({"disease", "cancer", "tumor", "tumour", "malignancy", "carcinoma", "neoplasm"})
_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
    "fourth": 4, "4th": 4, "fifth": 5, "5th": 5,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
}  # fmt: skip
_RESPONSE_LINKS = frozenset({"to", "on", "after", "despite", "following", "through", "while"})
#: Words between a status adjective and a cancer that show the adjective is not about it
#: ("recurrent laryngeal nerve in thyroid cancer").
_PHRASE_BREAKS = frozenset(
    {"in", "of", "with", "for", "to", "on", "at", "by", "from", ",", ";", ":", "(", ")"}
)


def _text_span(doc: Doc, start: int, end: int) -> TextSpan:
    return TextSpan(start=start, end=end, text=doc.text[start:end])


def sentence_span(ent: Span) -> TextSpan:
    """The sentence around a span, as char offsets into the note."""
    sent = ent.sent
    return _text_span(ent.doc, sent.start_char, sent.end_char)


def span_of(ent: Span) -> TextSpan:
    """A spaCy span as a :class:`~actnav.patient.notes.model.Span`."""
    return _text_span(ent.doc, ent.start_char, ent.end_char)


def _meta(ent: Span) -> dict[str, object]:
    rule = ent._.target_rule
    return dict(rule.metadata or {}) if rule is not None else {}


def _malignant_ent(ent: Span) -> bool:
    if ent.label_ != "diagnosis":
        return False
    key = _meta(ent).get("concept")
    if not isinstance(key, str) or key not in _entries():
        return False
    return is_malignant(concept_for(_entries()[key], ent.text))


def _detail(ent: Span, histologies: tuple[str, ...]) -> str | None:
    """Histology in or just around the mention, "metastatic" before it, and a stage in its sentence."""
    sent = ent.sent
    parts: list[str] = []
    window = ent.doc.text[
        max(sent.start_char, ent.start_char - 50) : min(sent.end_char, ent.end_char + 40)
    ].lower()
    for h in sorted(histologies, key=len, reverse=True):
        if re.search(rf"\b{re.escape(h)}\b", window) and not any(h in p for p in parts):
            parts.append(h)
            break
    before = ent.doc.text[max(sent.start_char, ent.start_char - 30) : ent.start_char].lower()
    if re.search(r"\bmetastatic\b", before):
        parts.append("metastatic")
    stage = _STAGE.search(sent.text)
    if stage is not None:
        parts.append(stage.group(0))
    return "; ".join(parts) or None


@cache
def _site_pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    """The words after a tumour that name its site ("of the spine", "in the left lung"), and the
    site key of each site word."""
    by_word = {w.lower(): site.key for site in condition_lexicon().sites for w in site.words}
    words = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(by_word, key=len, reverse=True))
    pattern = re.compile(
        r"\s*,?\s*(?:of|in|involving|within|arising\s+(?:in|from))\s+(?:the\s+)?"
        r"(?:(?:left|right|upper|lower|cervical|thoracic|lumbar|sacral)\s+)*"
        rf"(?P<site>{words})(?![A-Za-z])",
        re.IGNORECASE,
    )
    return pattern, by_word


def stated_site(ent: Span) -> tuple[str, str] | None:
    """The body site written right after a mention: ``(site key, words)`` ("astrocytoma of the
    spine" -> ``("spinal_cord", "spine")``), None when the words after it name no site of the
    lexicon."""
    if not condition_lexicon().sites:
        return None
    pattern, by_word = _site_pattern()
    m = pattern.match(ent.doc.text, ent.end_char, ent.sent.end_char)
    if m is None:
        return None
    words = re.sub(r"\s+", " ", m["site"].lower())
    return by_word[words], words


@cache
def _qualifier_patterns() -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """The qualifier words right before a mention, and the phrases right after it."""
    found = condition_lexicon().disease_qualifiers
    if found is None:
        return None

    def alternation(words: tuple[str, ...]) -> str:
        escaped = (re.escape(w).replace(r"\ ", r"\s+").replace(r"\-", r"[\s-]?") for w in words)
        return "|".join(sorted(escaped, key=len, reverse=True))

    before = re.compile(rf"(?<![\w-])(?:{alternation(found.before)})[\s-]*$", re.IGNORECASE)
    after = (
        re.compile(rf"\s*,?\s*(?:{alternation(found.after)})(?![\w-])", re.IGNORECASE)
        if found.after
        else re.compile(r"(?!)")
    )
    return before, after


def disease_qualifier(ent: Span) -> str | None:
    """The words that make a mention another disease than its entry's ("gestational" before
    "diabetes", "in pregnancy" after "hypertension"; ``disease_qualifiers`` of the lexicon), None
    when there are none. Only the words touching the mention count (within its sentence)."""
    patterns = _qualifier_patterns()
    if patterns is None:
        return None
    before, after = patterns
    doc = ent.doc
    m = before.search(doc.text[max(ent.sent.start_char, ent.start_char - 40) : ent.start_char])
    if m is not None:
        return re.sub(r"\s+", " ", m.group(0).strip(" -"))
    m = after.match(doc.text, ent.end_char, ent.sent.end_char)
    if m is not None:
        return re.sub(r"\s+", " ", m.group(0).strip(" ,"))
    return None


def diagnosis_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Diagnoses named in the note (kind ``diagnosis``), with concept, codes and detail.

    A tumour named by its histology alone takes the ICD-10-CM code of the body site written
    right after it ("anaplastic astrocytoma of the spine": C72.0, not the brain's C71.9); the
    other mentions of the same tumour in the note share that site when the note states only one.
    ``as_of`` is unused (the contract of every extractor). Facts have ``id=""``.
    """
    del as_of
    entries = _entries()
    histologies = condition_lexicon().histologies
    mentions: list[tuple[Span, ConditionEntry, tuple[str, str] | None]] = []
    for ent in doc.ents:
        if ent.label_ != "diagnosis":
            continue
        key = _meta(ent).get("concept")
        if not isinstance(key, str) or key not in entries:
            continue
        entry = entries[key]
        if entry.not_after and ent.start > 0 and doc[ent.start - 1].lower_ in entry.not_after:
            continue
        mentions.append((ent, entry, stated_site(ent) if entry.site_codes else None))
    sites_of: dict[str, dict[str, tuple[str, str]]] = {}
    for _, entry, site in mentions:
        if site is not None:
            sites_of.setdefault(entry.key, {}).setdefault(site[0], site)
    out: list[NoteFact] = []
    for ent, entry, site in mentions:
        note_sites = sites_of.get(entry.key, {})
        if site is None and len(note_sites) == 1:
            site = next(iter(note_sites.values()))
        concept = concept_for(entry, ent.text)
        detail = _detail(ent, histologies) if is_malignant(concept) else None
        if site is not None:
            detail = f"{detail}; site: {site[1]}" if detail else f"site: {site[1]}"
        codes = condition_codes(entry, concept, site[0] if site else None)
        label = entry.label
        qualifier = disease_qualifier(ent)
        if qualifier is not None:
            # "gestational diabetes" is not type 2 diabetes: shown, never coded as the other.
            label = f"{entry.label} ({qualifier}: code left out)"
            concept, codes = None, ()
            detail = f"{qualifier}: another disease than {entry.label.lower()}"
        out.append(
            NoteFact(
                id="",
                kind="diagnosis",
                label=label,
                span=span_of(ent),
                sentence=sentence_span(ent),
                concept=concept,
                codes=codes,
                detail=detail,
                **flags(ent),
            )
        )
    return out


def _relapse_count(text: str) -> int | None:
    words = text.lower().split()
    for w in words:
        if w.isdigit():
            return int(w)
        if w in _ORDINALS:
            return _ORDINALS[w]
    return None


def disease_status_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Relapse, refractory and progression of a cancer (kind ``disease_status``).

    A status followed by a therapy ("refractory to lenalidomide") is left to therapies.py, which
    names the drug. Facts have ``id=""``; ``as_of`` is unused.
    """
    del as_of
    out: list[NoteFact] = []
    ents = list(doc.ents)
    for i, ent in enumerate(ents):
        if ent.label_ != "disease_status":
            continue
        nxt = doc[ent.end] if ent.end < len(doc) else None
        if nxt is not None and nxt.lower_ in _RESPONSE_LINKS:
            continue
        if not _about_cancer(ent, ents, i):
            continue
        value = str(_meta(ent).get("value") or "")
        if value not in ("relapse", "refractory", "progression"):
            continue
        count = _relapse_count(ent.text) if value == "relapse" else None
        out.append(
            NoteFact(
                id="",
                kind="disease_status",
                label=value if count is None else f"relapse ({count} relapses)",
                span=span_of(ent),
                sentence=sentence_span(ent),
                value=value,
                number=float(count) if count is not None else None,
                detail=f"{count} relapses" if count is not None else None,
                **flags(ent),
            )
        )
    return out


def _about_cancer(ent: Span, ents: list[Span], i: int) -> bool:
    """The status word qualifies a cancer: a cancer or "disease" within four tokens after it, a
    noun phrase with "disease" in it, or (for the nouns relapse/recurrence/progression) a cancer
    named in the same sentence."""
    doc = ent.doc
    words = {t.lower_ for t in ent}
    if words & _DISEASE_WORDS:
        return True
    after = doc[ent.end : min(ent.end + 4, ent.sent.end)]
    if any(t.lower_ in _DISEASE_WORDS for t in after):
        return True
    following = [e for e in ents[i + 1 :] if e.start < ent.end + 4 and e.sent == ent.sent]
    for e in following:
        between = {t.lower_ for t in doc[ent.end : e.start]}
        if _malignant_ent(e) and not between & _PHRASE_BREAKS:
            return True
    nouns = {"relapse", "relapses", "recurrence", "recurrences", "progression", "progressed", "recurred"}
    if words & nouns:
        return any(_malignant_ent(e) for e in ents if e.sent == ent.sent)
    return False
