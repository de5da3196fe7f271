"""Facts read from a clinical note, each with the text that supports it.

A referral letter or case summary becomes a :class:`NoteExtraction`: the note text and a list of
:class:`NoteFact`. Every fact keeps its evidence (``span``: character offsets into the note, and the
sentence it sits in) and the ConText modifiers medspacy found around it (negated, historical,
about someone else, hypothetical, uncertain). Only facts for which :attr:`NoteFact.about_patient`
is true may become patient facts: "No history of HIV" and "mother had breast cancer" stay in the
extraction, visible to the reviewer, and never reach the FHIR Bundle.

The model is pure data: extraction is :mod:`actnav.patient.notes.extract`, the FHIR Bundle writer
:mod:`actnav.patient.notes.bundle`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.patient.models import Coding

#: The longest note read, in characters (a referral letter is a few thousand).
MAX_NOTE_CHARS = 100_000

#: What a fact is about. ``lab`` covers blood counts, chemistry and organ function (LVEF, DLCO)
#: with units; ``performance_status`` is ECOG or Karnofsky; ``biomarker`` a qualitative tumour or
#: germline result (BRAF V600E, MAGE-A4, CD19, BCMA); ``hla`` an HLA allele; ``cns_involvement``,
#: ``infection`` and ``pregnancy`` are the findings labels and trials ask about.
FactKind = Literal[
    "age",
    "sex",
    "diagnosis",
    "disease_status",
    "therapy",
    "transplant",
    "performance_status",
    "lab",
    "biomarker",
    "hla",
    "cns_involvement",
    "infection",
    "pregnancy",
]

#: Who proposed a fact: the rules of this package, an optional language model (never required,
#: always marked), or a reviewer (a correction or an addition made by a person).
Origin = Literal["rules", "language_model", "reviewer"]

#: A reviewer's decision on a fact. ``pending`` until someone decides.
Review = Literal["pending", "accepted", "corrected", "rejected"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Span(_Model):
    """Character offsets ``[start, end)`` into the note text, and the text they cover."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class NoteFact(_Model):
    """One fact read from a note.

    Attributes:
        id: stable within one extraction (``"f1"``, ``"f2"``...), for review decisions.
        kind: what the fact is about (:data:`FactKind`).
        label: the fact in words for the reviewer (``"multiple myeloma"``,
            ``"platelets 85 x10^9/L"``, ``"age 64 years"``).
        span: the words that state it; ``sentence``: the sentence around them.
        concept: the actnav key it maps to, by kind: disease concept for a diagnosis (``multiple_myeloma``),
            agent or regimen for a therapy (``melphalan``), analyte key for a lab (``platelets``,
            ``creatinine``), ``ecog`` or ``karnofsky`` for performance status, finding key for a
            biomarker (``braf_v600``); None when the words are recognised but map to nothing actnav
            knows (the fact is then shown, not used).
        codes: standard codes (ICD-10-CM, SNOMED CT, LOINC, RxNorm) with display text.
        value: the fact's value in words, by kind: sex ``female``/``male``; disease status
            ``relapse``/``refractory``/``progression``/``stable``/``response``/``complete_remission``;
            transplant ``autologous``/``allogeneic``/``unknown``; biomarker
            ``positive``/``negative``/``indeterminate``; HLA the allele as written (``A*02:01``);
            diagnosis detail such as histology or stage (``"stage IV"``) goes in ``detail``.
        number / unit: a numeric value in the canonical UCUM unit of its analyte (age in years
            ``a``; platelets ``10*9/L``; creatinine ``mg/dL``; ECOG ``{score}``).
        original: the value and unit as written (``"85,000/uL"``).
        detail: histology, stage, number of relapses, regimen components, as written.
        date: when it happened, if the note says; ``order``: the order of a therapy or event in the
            note's account when no date is given (1 = first).
        date_precision: how much of ``date`` the note gave: ``year`` ("in 2019": 2019-01-01),
            ``month`` ("March 2020": 2020-03-01) or ``day``.
        classes: for a therapy, its drug classes (terminology's vocabulary: ``proteasome_inhibitor``).
        anticancer: for a therapy, False for supportive drugs and corticosteroids alone
            (pamidronate, calcitonin, prednisone), which never count as a line of therapy.
        negated / historical / family / hypothetical / uncertain: ConText modifiers. ``family`` is
            true for any experiencer other than the patient (a relative, a donor).
        origin: who proposed it; ``review``: the reviewer's decision.
    """

    id: str
    kind: FactKind
    label: str
    span: Span
    sentence: Span
    concept: str | None = None
    codes: tuple[Coding, ...] = ()
    value: str | None = None
    number: float | None = None
    unit: str | None = None
    original: str | None = None
    detail: str | None = None
    date: dt.date | None = None
    order: int | None = None
    date_precision: Literal["year", "month", "day"] | None = None
    classes: tuple[str, ...] = ()
    anticancer: bool | None = None
    negated: bool = False
    historical: bool = False
    family: bool = False
    hypothetical: bool = False
    uncertain: bool = False
    origin: Origin = "rules"
    review: Review = "pending"

    @property
    def about_patient(self) -> bool:
        """True when the note asserts the fact of the patient: not negated, not about someone
        else, not hypothetical and not uncertain. A historical fact is still about the patient
        (a past transplant is a fact of the patient's history)."""
        return not (self.negated or self.family or self.hypothetical or self.uncertain)


class NoteExtraction(_Model):
    """Everything read from one note.

    Attributes:
        text: the note as given (never logged).
        as_of: the date the note describes (ages and "3 months ago" are counted from it).
        facts: in the order of their spans.
        unparsed: sentences in which the rules found nothing (for the reviewer and the optional
            language model).
        warnings: what the reader should know (a sentence too long to read, a model unreachable).
    """

    text: str
    as_of: dt.date
    facts: tuple[NoteFact, ...] = ()
    unparsed: tuple[Span, ...] = ()
    warnings: tuple[str, ...] = ()

    def patient_facts(self) -> tuple[NoteFact, ...]:
        """The facts that may become patient facts: about the patient and not rejected."""
        return tuple(f for f in self.facts if f.about_patient and f.review != "rejected")
