"""CNS involvement, infections, pregnancy and lactation written in a note.

Mentions are found by target rules (``data/notes/targets/findings.yaml``); what each rule means
(the fact key, the ICD-10-CM code of the wording, whether a test result must follow) is in
``data/notes/findings.yaml``. ConText decides whether the mention is asserted: "No CNS
involvement", "not pregnant" and "No history of HIV" are kept with ``negated`` True, so the
reviewer sees the negative statement, and never become patient facts. A test result written
after a mention ("HIV negative", "HBsAg positive", "pregnancy test is negative") is the fact's
``value``; a test named without a result ("HIV test was sent") gives no fact.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, model_validator
from spacy.tokens import Doc
from spacy.tokens import Span as EntSpan

from actnav.errors import DataFileError
from actnav.knowledge.loader import load_data
from actnav.knowledge.models import Reference, SourceRef
from actnav.patient import terminology
from actnav.patient.models import Coding
from actnav.patient.notes.markers import (
    name_end,
    negation_is_the_result,
    read_result,
    sentence_of,
    span_of,
)
from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.pipeline import flags

VOCABULARY = "notes/findings.yaml"
FINDING_KINDS = ("cns_involvement", "infection", "pregnancy")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FindingEntry(_Strict):
    """What a findings target rule (its ``concept``) means."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    #: The fact key (facts.yaml id) the fact carries as concept; None: shown, never used.
    finding: str | None
    label: str
    #: The words for a negated mention ("not pregnant"); default "no <label>".
    negated_label: str | None = None
    icd10cm: tuple[str, ...] = ()
    #: Codes from the conditions lexicon (data/notes/conditions.yaml) for this key, when given.
    lexicon: str | None = None
    #: A test: a fact only when a result is written.
    needs_result: bool = False
    #: Read only when the sentence does not speak of a man or an infant (pregnancy, lactation).
    women_only: bool = False
    #: False: recognised only so that a shorter rule does not read the words (a vaccine, a plan).
    report: bool = True
    source: SourceRef


class FindingsVocabulary(_Strict):
    version: int
    source: str
    references: dict[str, Reference]
    entries: tuple[FindingEntry, ...]
    birth_words: tuple[str, ...] = ()
    male_words: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> FindingsVocabulary:
        ids = [e.id for e in self.entries]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate entry id")
        for e in self.entries:
            if e.source.ref not in self.references:
                raise ValueError(f"{e.id}: unknown reference {e.source.ref!r}")
        return self


@cache
def findings_vocabulary() -> FindingsVocabulary:
    """``data/notes/findings.yaml``, validated.

    Raises:
        DataFileError: invalid file, or a ``lexicon`` key the conditions lexicon does not have.
        (That every ``finding`` is a fact of facts.yaml is checked by the tests.)
    """
    from actnav.patient.notes.conditions import condition_lexicon

    table = load_data(FindingsVocabulary, VOCABULARY)
    lexicon = {c.key for c in condition_lexicon().conditions}
    for e in table.entries:
        if e.lexicon is not None and e.lexicon not in lexicon:
            raise DataFileError(f"{e.id}: {e.lexicon!r} is not in the conditions lexicon", where=VOCABULARY)
    return table


@cache
def _codes(entry_id: str) -> tuple[Coding, ...]:
    """ICD-10-CM codes of the entry (with simple_icd_10_cm's title), then the lexicon's codes."""
    from actnav.patient.notes.conditions import condition_lexicon, icd10cm_title

    uri = {s.key: s.uri for s in terminology.code_systems().systems}
    entry = next(e for e in findings_vocabulary().entries if e.id == entry_id)
    out = [Coding(system=uri["icd10cm"], code=c, display=icd10cm_title(c)) for c in entry.icd10cm]
    if entry.lexicon is not None:
        lex = next(c for c in condition_lexicon().conditions if c.key == entry.lexicon)
        if lex.icd10cm and lex.icd10cm not in entry.icd10cm:
            out.append(Coding(system=uri["icd10cm"], code=lex.icd10cm, display=icd10cm_title(lex.icd10cm)))
        if lex.snomed:
            out.append(Coding(system=uri["snomed"], code=lex.snomed, display=lex.label))
    return tuple(out)


def finding_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """CNS involvement, infections (HIV, hepatitis B/C, active infection, sepsis, tuberculosis,
    COVID-19) and pregnancy / breastfeeding written in the note.

    Args:
        doc: the note read by :func:`~actnav.patient.notes.pipeline.note_doc`.
        as_of: the date the note describes (unused).

    Returns:
        Facts of kind ``cns_involvement``, ``infection`` or ``pregnancy``, ``id=""``: ``concept``
        the fact key (``cns_involvement``, ``hiv``, ``hbv``, ``hcv``, ``active_infection``,
        ``pregnant``, ``breastfeeding``; None for tuberculosis, COVID-19 and antibody tests that do
        not show a current infection); ``value`` positive, or the test result written
        (negative / indeterminate); ``codes`` ICD-10-CM (and SNOMED CT from the conditions
        lexicon) of the wording, for a positive statement only. ConText flags as found:
        "No history of HIV" is ``negated`` True. "Negative for HIV" is a negative result of the
        patient (``negated`` False, value negative).

    Source:
        data/notes/findings.yaml (ICD-10-CM 2025; docs/fhir-input.md for the fact keys).
    """
    del as_of
    vocab = {e.id: e for e in findings_vocabulary().entries}
    birth = findings_vocabulary().birth_words
    male = findings_vocabulary().male_words
    ents = [e for e in doc.ents if e.label_ in FINDING_KINDS]
    out: list[NoteFact] = []
    for ent in ents:
        concept = ent._.target_rule.metadata.get("concept")
        entry = vocab.get(concept) if isinstance(concept, str) else None
        if entry is None or not entry.report:
            continue
        if entry.id == "gestation" and _mentions(ent, birth, before_only=True):
            continue
        if entry.women_only and _mentions(ent, male, before_only=False):
            continue
        end = name_end(ent)
        siblings = [e for e in ents if e.label_ == ent.label_]
        value, _how = read_result(doc, ent, end, siblings)
        if value is None and entry.needs_result:
            continue
        modifiers = flags(ent)
        if value == "negative" and negation_is_the_result(ent):
            modifiers["negated"] = False
        value = value or "positive"
        out.append(
            NoteFact(
                id="",
                kind=ent.label_,
                label=_label(entry, value, negated=modifiers["negated"]),
                span=span_of(doc, ent.start_char, end),
                sentence=sentence_of(ent),
                concept=entry.finding,
                codes=_codes(entry.id) if value == "positive" else (),
                value=value,
                detail=None if entry.finding else "not a finding actnav uses",
                original=doc.text[ent.start_char : end].strip(),
                **modifiers,
            )
        )
    return out


def _mentions(ent: EntSpan, words: tuple[str, ...], *, before_only: bool) -> bool:
    """Whether the sentence (or its part before the mention) has one of ``words``: "She was born
    at 38 weeks of gestation" is about the patient's birth, "He is breast feeding" about an infant."""
    end = ent.start_char if before_only else ent.sent.end_char
    text = ent.doc.text[ent.sent.start_char : end].lower()
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)


def _label(entry: FindingEntry, value: str, *, negated: bool) -> str:
    if negated:
        return entry.negated_label or f"no {entry.label}"
    if value == "positive" and not entry.needs_result:
        return entry.label
    return f"{entry.label}: {value}"
