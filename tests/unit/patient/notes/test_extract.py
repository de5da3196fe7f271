"""extract_note: input limits, numbering, de-duplication, unparsed sentences, the optional
language model, and the acceptance topic trec-202117."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from tests.conftest import require_shared

from actnav.errors import InputError
from actnav.patient.notes.extract import FactProposer, deduplicate, extract_note
from actnav.patient.notes.model import NoteExtraction, NoteFact, Span

AS_OF = dt.date(2026, 11, 29)


@pytest.mark.parametrize("text", ["", "  \n ", "a\x00b", "x" * 100_001])
def test_bad_notes_are_input_errors(text: str) -> None:
    with pytest.raises(InputError) as err:
        extract_note(text, as_of=AS_OF)
    assert err.value.where == "note"


def test_crlf_is_normalised_and_spans_point_into_the_kept_text() -> None:
    e = extract_note("64yo woman.\r\nNo history of HIV.\r\n", as_of=AS_OF)
    assert "\r" not in e.text
    for f in e.facts:
        assert e.text[f.span.start : f.span.end] == f.span.text
        assert e.text[f.sentence.start : f.sentence.end] == f.sentence.text


def test_ids_in_span_order_and_unparsed_sentences() -> None:
    e = extract_note("The weather was fine. A 64yo woman with myeloma. She likes tea.", as_of=AS_OF)
    assert [f.id for f in e.facts] == [f"f{i}" for i in range(1, len(e.facts) + 1)]
    assert [f.span.start for f in e.facts] == sorted(f.span.start for f in e.facts)
    assert [s.text for s in e.unparsed] == ["The weather was fine.", "She likes tea."]


def _fact(kind: str, start: int, end: int, text: str, concept: str | None = None) -> NoteFact:
    span = Span(start=start, end=end, text=text[start:end])
    return NoteFact(id="", kind=kind, label="x", span=span, sentence=span, concept=concept)  # type: ignore[arg-type]


def test_overlapping_facts_of_one_kind_keep_the_longest() -> None:
    text = "refractory to lenalidomide"
    short = _fact("disease_status", 0, 10, text)
    long = _fact("disease_status", 0, 26, text)
    therapy = _fact("therapy", 14, 26, text, "lenalidomide")
    assert deduplicate([short, long, therapy]) == [long, therapy]


class _Proposer:
    def __init__(self, facts: list[NoteFact]) -> None:
        self.facts = facts
        self.warnings: list[str] = []

    def propose(self, extraction: NoteExtraction) -> list[NoteFact]:
        return self.facts


def test_language_model_facts_are_checked_against_the_note() -> None:
    text = "64yo woman. Her ECOG is one."
    good = NoteFact(
        id="",
        kind="performance_status",
        label="ECOG 1",
        span=Span(start=16, end=27, text="ECOG is one"),
        sentence=Span(start=12, end=28, text="Her ECOG is one."),
        number=1,
    )
    invented = good.model_copy(update={"span": Span(start=16, end=27, text="ECOG is two")})
    proposer = _Proposer([good, invented])
    assert isinstance(proposer, FactProposer)
    e = extract_note(text, as_of=AS_OF, language_model=proposer)
    proposed = [f for f in e.facts if f.origin == "language_model"]
    assert [f.span.text for f in proposed] == ["ECOG is one"]
    assert any("not text of the note" in w for w in e.warnings)


def test_acceptance_trec_202117() -> None:
    path = require_shared("data", "trialgpt-benchmarks", "trec_2021", "queries.jsonl")
    topic = next(d for d in map(json.loads, path.read_text().splitlines()) if d["_id"] == "trec-202117")
    facts = extract_note(topic["text"], as_of=AS_OF).patient_facts()
    by_kind: dict[str, list[NoteFact]] = {}
    for f in facts:
        by_kind.setdefault(f.kind, []).append(f)
    # "64yo woman with multiple myeloma, s/p allogeneic transplant with recurrent disease ..."
    assert [f.number for f in by_kind["age"]] == [64]
    assert [f.value for f in by_kind["sex"]] == ["female"]
    myeloma = [f for f in by_kind["diagnosis"] if f.concept == "multiple_myeloma"]
    assert myeloma and "C90.0" in [c.code for c in myeloma[0].codes]
    assert "relapse" in {f.value for f in by_kind["disease_status"]}
    assert sorted(f.value or "" for f in by_kind["transplant"]) == ["allogeneic", "autologous"]
    therapies = {f.concept for f in by_kind["therapy"]}
    assert {"melphalan", "prednisone", "VAD", "thalidomide", "bortezomib"} <= therapies
    vad = next(f for f in by_kind["therapy"] if f.concept == "VAD")
    assert vad.detail == "vincristine + doxorubicin + dexamethasone"


def test_values_the_extractors_refuse_are_warnings_of_the_extraction() -> None:
    # labs.yaml: platelets plausible 0 to 10000 x10^9/L; 20000 is outside: no fact, a warning.
    extraction = extract_note("Platelets 20000 x10^9/L.", as_of=AS_OF)
    assert not [f for f in extraction.facts if f.kind == "lab"]
    assert any("outside the plausible range for platelets" in w for w in extraction.warnings)
