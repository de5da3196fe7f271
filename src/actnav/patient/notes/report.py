"""Mark what in an evaluation rests on a clinical note.

A patient read from a note is evaluated like any record; afterwards :func:`mark_from_note` quotes,
on every criterion whose evidence cites a resource made from the note, the words of the note it
rests on (``CriterionResult.from_note``), and says in the patient summary that the patient was
read from a note, reviewed or not (``PatientSummary.from_note``). The report templates show
these as "from note: “<words>” (unconfirmed)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from actnav.eligibility.engine import CriterionResult, Evidence
from actnav.eligibility.report_model import Evaluation
from actnav.patient.notes.bundle import NoteEvidence, evidence_text


def mark_from_note(
    ev: Evaluation, extracted: Mapping[str, Sequence[NoteEvidence]], *, reviewed: bool = False
) -> Evaluation:
    """The evaluation with every criterion resting on the note marked.

    Args:
        ev: the evaluation of the patient read from the note's bundle.
        extracted: :func:`actnav.patient.notes.bundle.extracted_resources` of that bundle.
        reviewed: True when a person accepted or corrected the facts before evaluation.

    Returns:
        A copy: label, fitness and trial criteria (groups too: the words of the leaves below)
        with ``from_note`` set; ``patient.from_note`` ``"reviewed"`` or ``"unreviewed"``.
    """

    def words(e: Evidence) -> list[str]:
        found = extracted.get(e.resource or "", ())
        if (e.resource or "").startswith("Patient/"):
            # The Patient carries age and sex: quote the one this evidence is about.
            wanted = "sex" if isinstance(e.value, str) else "age"
            found = [x for x in found if x.kind == wanted]
        return evidence_text(found)

    def mark(c: CriterionResult) -> CriterionResult:
        children = [mark(child) for child in c.children]
        quoted = [w for e in c.evidence for w in words(e)] + [
            w for child in children for w in child.from_note
        ]
        return c.model_copy(update={"children": children, "from_note": list(dict.fromkeys(quoted))})

    products = [
        p.model_copy(
            update={
                "indications": [
                    ind.model_copy(update={"criteria": [mark(c) for c in ind.criteria]})
                    for ind in p.indications
                ]
            }
        )
        for p in ev.products
    ]
    fitness = [f.model_copy(update={"criteria": [mark(c) for c in f.criteria]}) for f in ev.fitness]
    trials = [
        t.model_copy(
            update={"criteria": [row.model_copy(update={"result": mark(row.result)}) for row in t.criteria]}
        )
        for t in ev.trials
    ]
    patient = ev.patient.model_copy(update={"from_note": "reviewed" if reviewed else "unreviewed"})
    return ev.model_copy(
        update={"patient": patient, "products": products, "fitness": fitness, "trials": trials}
    )


__all__ = ["mark_from_note"]
