"""How the notes benchmark turns extracted facts into comparison keys (hand-made NoteFacts)."""

from __future__ import annotations

from typing import Any

from benchmarks.bench_notes_extraction import ICD10CM, predictions

from actnav.patient.models import Coding
from actnav.patient.notes.model import NoteFact, Span

NOTE = "64yo woman with multiple myeloma treated with VAD regimen and melphalan. Beta hcg: negative."


def fact(kind: Any, words: str, **fields: Any) -> NoteFact:
    start = NOTE.index(words)
    span = Span(start=start, end=start + len(words), text=words)
    return NoteFact(id="", kind=kind, label=words, span=span, sentence=span, **fields)


def test_keys_of_each_kind() -> None:
    facts = [
        fact("age", "64yo", number=64.0, unit="a"),
        fact("sex", "woman", value="female"),
        fact(
            "diagnosis",
            "multiple myeloma",
            concept="multiple_myeloma",
            codes=(Coding(system=ICD10CM, code="C90.00"),),
        ),
        fact("diagnosis", "myeloma", concept="multiple_myeloma"),
        fact("therapy", "VAD", concept="VAD"),
        fact("therapy", "melphalan", concept="melphalan"),
        fact("pregnancy", "Beta hcg: negative", value="negative"),
    ]
    got = [(p.kind, p.key, p.anticancer) for p in predictions(facts)]
    # VAD = vincristine, doxorubicin, dexamethasone (drugs.yaml, Anderson 1995); dexamethasone is
    # not anticancer there. The negative pregnancy test is left out.
    assert got == [
        ("age", "age", None),
        ("sex", "female", None),
        ("diagnosis", "icd:C90", None),
        ("diagnosis", "concept:multiple_myeloma", None),
        ("therapy", "vincristine", True),
        ("therapy", "doxorubicin", True),
        ("therapy", "dexamethasone", False),
        ("therapy", "melphalan", True),
    ]
