"""Read a clinical note into facts: :func:`extract_note`.

The note runs once through the medspacy pipeline (:func:`~actnav.patient.notes.pipeline.note_doc`);
every extractor reads the same Doc and returns facts with ``id=""``:

* demographics: age, sex; conditions: diagnoses, disease states; therapies: therapies and
  transplants (ordered), responses to therapies;
* measures: laboratory values, performance status; markers: biomarkers, HLA alleles; findings:
  CNS involvement, infections, pregnancy.

Facts of the same kind whose spans overlap are one fact: the longest span is kept (then the one
with a concept, then the first). Facts are sorted by span and numbered ``f1``, ``f2``...; the
sentences that carry no fact are ``unparsed``; values an extractor read and refused (a platelet
count of 300000 x10^9/L) are ``warnings``. An optional language model (:class:`FactProposer`)
then proposes facts; each is kept only if its span and sentence are the note's own text, and is
marked ``origin="language_model"``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from spacy.tokens import Doc

from actnav.errors import InputError
from actnav.patient.notes import conditions, demographics, findings, markers, measures, therapies
from actnav.patient.notes.model import MAX_NOTE_CHARS, NoteExtraction, NoteFact, Span
from actnav.patient.notes.pipeline import note_doc

#: Longest note read (characters): a referral letter is a few thousand; a whole record is not a note.

Extractor = Callable[[Doc, dt.date], list[NoteFact]]

#: Every extractor, in the order their facts are considered for de-duplication.
EXTRACTORS: tuple[Extractor, ...] = (
    demographics.age_facts,
    demographics.sex_facts,
    conditions.diagnosis_facts,
    therapies.response_facts,
    conditions.disease_status_facts,
    therapies.treatment_facts,
    measures.lab_facts,
    measures.performance_facts,
    markers.biomarker_facts,
    markers.hla_facts,
    findings.finding_facts,
)


@runtime_checkable
class FactProposer(Protocol):
    """Proposes facts for an extraction (the optional language model of language_model.py)."""

    def propose(self, extraction: NoteExtraction) -> list[NoteFact]:
        """Facts for the unparsed sentences of ``extraction`` (ids may be empty)."""
        ...


def normalise_note(text: str) -> str:
    """The note with CRLF and lone CR line ends as LF.

    Raises:
        InputError: (``where="note"``) empty or blank text, more than :data:`MAX_NOTE_CHARS`
            characters, or a NUL character.
    """
    if "\x00" in text:
        raise InputError("the note contains a NUL character: is it a binary file?", where="note")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError("the note is empty", where="note")
    if len(text) > MAX_NOTE_CHARS:
        raise InputError(
            f"the note has {len(text)} characters; at most {MAX_NOTE_CHARS} are read", where="note"
        )
    return text


def extract_note(text: str, *, as_of: dt.date, language_model: FactProposer | None = None) -> NoteExtraction:
    """Read a note into facts with their evidence.

    Args:
        text: the note (plain text; CRLF line ends are normalised to LF, and spans are offsets
            into the normalised text, which the extraction keeps).
        as_of: the date the note describes (dates after it are not read as dates).
        language_model: optional proposer for the sentences the rules leave unparsed.

    Returns:
        The extraction: facts sorted by span with ids ``f1``..., unparsed sentences, warnings.

    Raises:
        InputError: (``where="note"``) see :func:`normalise_note`.
    """
    text = normalise_note(text)
    doc = note_doc(text)
    found: list[NoteFact] = []
    for extractor in EXTRACTORS:
        found.extend(extractor(doc, as_of))
    facts = _numbered(deduplicate(found))
    extraction = NoteExtraction(
        text=text,
        as_of=as_of,
        facts=tuple(facts),
        unparsed=tuple(_unparsed(doc, facts)),
        # Values the extractors read and refused (implausible, unit not convertible).
        warnings=tuple(dict.fromkeys(measures.note_warnings(doc))),
    )
    if language_model is None:
        return extraction
    return _with_proposals(extraction, language_model)


def deduplicate(facts: Sequence[NoteFact]) -> list[NoteFact]:
    """One fact per overlapping span of the same kind: the longest, then the one with a concept,
    then the first found."""
    ranked = sorted(
        enumerate(facts),
        key=lambda ix: (-(ix[1].span.end - ix[1].span.start), ix[1].concept is None, ix[0]),
    )
    kept: list[NoteFact] = []
    for _, fact in ranked:
        if not any(
            k.kind == fact.kind and k.span.start < fact.span.end and fact.span.start < k.span.end
            for k in kept
        ):
            kept.append(fact)
    return kept


def _numbered(facts: Sequence[NoteFact]) -> list[NoteFact]:
    ordered = sorted(facts, key=lambda f: (f.span.start, f.span.end, f.kind))
    return [f.model_copy(update={"id": f"f{i}"}) for i, f in enumerate(ordered, 1)]


def _unparsed(doc: Doc, facts: Sequence[NoteFact]) -> list[Span]:
    """Sentences (trimmed) with at least one word and no fact in them."""
    out: list[Span] = []
    for sent in doc.sents:
        text = sent.text
        lead = len(text) - len(text.lstrip())
        start = sent.start_char + lead
        end = sent.start_char + len(text.rstrip())
        if end <= start or not re.search(r"\w", doc.text[start:end]):
            continue
        if any(f.span.start < end and start < f.span.end for f in facts):
            continue
        out.append(Span(start=start, end=end, text=doc.text[start:end]))
    return out


def _in_note(text: str, span: Span) -> bool:
    return 0 <= span.start <= span.end <= len(text) and text[span.start : span.end] == span.text


def _with_proposals(extraction: NoteExtraction, model: FactProposer) -> NoteExtraction:
    """Add the language model's facts whose spans are the note's text and lie in their sentence;
    a proposal overlapping a rule fact of the same kind is dropped (the rules were there first)."""
    text = extraction.text
    warnings = list(extraction.warnings)
    kept: list[NoteFact] = []
    rejected = 0
    for fact in model.propose(extraction):
        inside = fact.sentence.start <= fact.span.start and fact.span.end <= fact.sentence.end
        if not (isinstance(fact, NoteFact) and _in_note(text, fact.span) and _in_note(text, fact.sentence)):
            rejected += 1
            continue
        if not inside:
            rejected += 1
            continue
        clash = any(
            f.kind == fact.kind and f.span.start < fact.span.end and fact.span.start < f.span.end
            for f in (*extraction.facts, *kept)
        )
        if not clash:
            kept.append(fact.model_copy(update={"origin": "language_model", "review": "pending"}))
    warnings.extend(str(w) for w in getattr(model, "warnings", ()) if str(w) not in warnings)
    if rejected:
        warnings.append(
            f"language model: {rejected} proposed facts were not text of the note and were left out"
        )
    facts = _numbered([*extraction.facts, *kept])
    covered = [f for f in facts]
    unparsed = tuple(
        s
        for s in extraction.unparsed
        if not any(f.span.start < s.end and s.start < f.span.end for f in covered)
    )
    return extraction.model_copy(
        update={"facts": tuple(facts), "unparsed": unparsed, "warnings": tuple(warnings)}
    )
