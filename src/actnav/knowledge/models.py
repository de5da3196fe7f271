"""Schemas of the packaged clinical data files (pydantic models; unknown keys are rejected).

The files live in ``actnav/data``:

* ``products/<inn>.yaml``: one approved product each (:class:`Product`).
* ``fitness/pivotal-trials.yaml``: general fitness criteria of the pivotal trials (:class:`FitnessFile`).
* ``facts.yaml``: the catalogue of patient facts a criterion may name (:class:`FactCatalogue`).
* ``workup.yaml``: the work-up steps and items that settle unknown facts (:class:`WorkupCatalogue`).

Logic is an explicit tree (:class:`Criterion` with ``all_of`` / ``any_of`` / ``not``) whose leaves
name a fact, an operator, a value and a UCUM unit; there are no operators inside strings.
Every leaf and group may cite a source; a source carries the reference's verification tag
(V seen, S secondary, R recollection, U uncertain) so R and U facts reach the report as unconfirmed.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Verification(StrEnum):
    """How well a fact is verified (tags of ``clinical-reference.md`` section 0)."""

    SEEN = "V"
    SECONDARY = "S"
    RECOLLECTION = "R"
    UNCERTAIN = "U"

    @property
    def confirmed(self) -> bool:
        """V and S facts are encoded as confirmed; R and U are reported as unconfirmed."""
        return self in (Verification.SEEN, Verification.SECONDARY)


class Reference(_Strict):
    """A document a file cites (declared once per file under ``references``)."""

    citation: str
    url: str | None = None
    date: dt.date | None = Field(default=None, description="Publication or revision date.")


class SourceRef(_Strict):
    """Where one fact comes from: a key of the file's ``references``, a section, a tag."""

    ref: str
    section: str | None = None
    verification: Verification
    note: str | None = None


Operator = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "has_any", "has_all", "has_none"]
Scalar = float | int | str | bool
IfMissing = Literal["unknown", "met", "not_met"]


class Criterion(_Strict):
    """A node of a criterion tree: a group (``all_of``, ``any_of``, ``not``) or a leaf.

    A leaf compares a patient fact (an id from ``facts.yaml``) with ``value`` using ``op``:

    * ``eq ne lt le gt ge``: scalar comparisons; numbers are in ``unit`` (UCUM), which must be the
      fact's canonical unit (checked on load).
    * ``in`` / ``not_in``: the fact's scalar value is (not) one of ``value`` (a list).
    * ``has_any`` / ``has_all`` / ``has_none``: the fact is a set; it shares any / contains all /
      shares none of ``value``.

    ``if_missing`` says what a missing fact means (``unknown`` unless the source says otherwise).
    """

    id: str
    text: str
    all_of: tuple[Criterion, ...] | None = None
    any_of: tuple[Criterion, ...] | None = None
    not_: Criterion | None = Field(default=None, alias="not")
    fact: str | None = None
    op: Operator | None = None
    value: Scalar | tuple[Scalar, ...] | None = None
    unit: str | None = None
    if_missing: IfMissing = "unknown"
    source: SourceRef | None = None
    remarks: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        kinds = [
            self.all_of is not None,
            self.any_of is not None,
            self.not_ is not None,
            self.fact is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(f"criterion {self.id!r} must have exactly one of all_of, any_of, not, fact")
        if self.fact is not None:
            if self.op is None or self.value is None:
                raise ValueError(f"leaf criterion {self.id!r} needs op and value")
            listy = self.op in ("in", "not_in", "has_any", "has_all", "has_none")
            if listy != isinstance(self.value, tuple):
                raise ValueError(
                    f"criterion {self.id!r}: op {self.op!r} takes a list value"
                    if listy
                    else f"criterion {self.id!r}: op {self.op!r} takes a single value"
                )
        elif self.op is not None or self.value is not None or self.unit is not None:
            raise ValueError(f"group criterion {self.id!r} cannot have op, value or unit")
        for group in (self.all_of, self.any_of):
            if group is not None and not group:
                raise ValueError(f"criterion {self.id!r} has an empty group")
        return self

    @property
    def children(self) -> tuple[Criterion, ...]:
        if self.all_of is not None:
            return self.all_of
        if self.any_of is not None:
            return self.any_of
        if self.not_ is not None:
            return (self.not_,)
        return ()

    def walk(self) -> list[Criterion]:
        """This node and all below it, depth first."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


class Indication(_Strict):
    """One labelled indication in force over a date range (one label revision).

    ``effective_from`` is inclusive, ``effective_until`` exclusive; an evaluation "as of" a date
    uses the indications in force on that date, so the April 2024 myeloma changes apply only to
    evaluations on or after them.
    """

    id: str
    name: str
    disease: str = Field(description="actnav disease concept id, for display and grouping.")
    effective_from: dt.date
    effective_until: dt.date | None = None
    label_revision: str = Field(description="Label revision this text belongs to, e.g. '2024-04'.")
    approval: Literal["regular", "accelerated", "unknown"] = "unknown"
    criteria: tuple[Criterion, ...]
    limitations_of_use: tuple[Criterion, ...] = ()
    source: SourceRef
    remarks: str | None = None

    def in_force(self, on: dt.date) -> bool:
        return self.effective_from <= on and (self.effective_until is None or on < self.effective_until)


class DoseBand(_Strict):
    """One row of a dose rule. Cell counts are absolute numbers of cells (e.g. 2e8)."""

    applies_to: tuple[str, ...] = Field(description="Indication ids this row applies to.")
    weight_kg_min_exclusive: float | None = None
    weight_kg_max_inclusive: float | None = None
    per_kg_min: float | None = None
    per_kg_max: float | None = None
    total_min: float | None = None
    total_max: float | None = None
    cells: str = Field(description="What is counted, e.g. 'CAR-positive viable T cells'.")
    text: str
    source: SourceRef


class Lymphodepletion(_Strict):
    applies_to: tuple[str, ...]
    regimen: str
    duration_days: int | None = Field(
        default=None,
        ge=1,
        description="Calendar days of the labelled regimen, first to last dose inclusive (days -5 to -3: 3); "
        "None when the label's day schedule is not encoded.",
    )
    infuse_days_after_min: float | None = None
    infuse_days_after_max: float | None = None
    text: str
    source: SourceRef


class LabeledText(_Strict):
    """A dated statement of the label (boxed warning, monitoring), with its source."""

    text: str
    effective_from: dt.date | None = None
    effective_until: dt.date | None = None
    source: SourceRef

    def in_force(self, on: dt.date) -> bool:
        start_ok = self.effective_from is None or self.effective_from <= on
        return start_ok and (self.effective_until is None or on < self.effective_until)


class LabelRevision(_Strict):
    revision: str
    date: dt.date
    changes: str
    source: SourceRef


class Product(_Strict):
    """An FDA-approved adoptive cell therapy product (one file per product)."""

    schema_version: Literal[1] = 1
    id: str = Field(description="International non-proprietary name in lower case.")
    version: str
    brand: str
    sponsor: str
    modality: Literal["CAR-T", "TIL", "TCR-T"]
    construct_: str = Field(
        alias="construct", description="Cell source and construct, e.g. autologous CAR-T (4-1BB)."
    )
    target: str
    bla: str
    first_approval: dt.date
    references: dict[str, Reference]
    label_revisions: tuple[LabelRevision, ...]
    indications: tuple[Indication, ...]
    contraindications: tuple[Criterion, ...] = ()
    dose: tuple[DoseBand, ...] = ()
    lymphodepletion: tuple[Lymphodepletion, ...] = ()
    boxed_warnings: tuple[LabeledText, ...] = ()
    monitoring: tuple[LabeledText, ...] = ()
    rems: tuple[LabeledText, ...] = ()
    remarks: str | None = None
    history: tuple[str, ...] = Field(default=(), description="Dated changes to this file.")


class FitnessTrial(_Strict):
    """The general fitness criteria of one product's pivotal trial (context, not label)."""

    id: str
    trial: str
    nct_id: str | None = None
    products: tuple[str, ...]
    diseases: tuple[str, ...] = Field(
        default=(),
        description="Disease concepts the trial enrolled; shown only beside a still-possible indication "
        "of one of these diseases (empty: any indication of the products).",
    )
    criteria: tuple[Criterion, ...]
    source: SourceRef


class FitnessFile(_Strict):
    schema_version: Literal[1] = 1
    id: str
    version: str
    references: dict[str, Reference]
    trials: tuple[FitnessTrial, ...]
    remarks: str | None = None


FactType = Literal["number", "code", "codes", "boolean"]


class FactDefinition(_Strict):
    """A patient fact a criterion may name, and how to settle it when unknown."""

    id: str
    type: FactType
    unit: str | None = Field(default=None, description="Canonical UCUM unit of a number fact.")
    description: str
    workup: str = Field(description="Id of the work-up item in workup.yaml that settles it.")
    max_age_days: int | None = Field(
        default=None, description="Older results count as unknown (stale); None = never stale."
    )
    values: tuple[str, ...] | None = Field(default=None, description="Allowed codes, if closed.")


class FactCatalogue(_Strict):
    schema_version: Literal[1] = 1
    version: str
    references: dict[str, Reference] = {}
    facts: tuple[FactDefinition, ...]
    remarks: str | None = None


WorkupStep = Literal[
    "medical_history",
    "physical_examination",
    "laboratory_tests",
    "imaging",
    "biopsy_pathology",
    "hla_typing",
    "cardiac_pulmonary_function",
    "infectious_disease_serology",
]


class WorkupItem(_Strict):
    id: str
    step: WorkupStep
    text: str


class WorkupCatalogue(_Strict):
    schema_version: Literal[1] = 1
    version: str
    steps: dict[WorkupStep, str] = Field(description="Step id -> display name, in order.")
    items: tuple[WorkupItem, ...]
