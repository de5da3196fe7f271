"""The evaluation report: what ``actnav evaluate`` returns, as pydantic models.

The JSON form of :class:`Evaluation` is published as a JSON Schema in
``schemas/evaluation.schema.json`` (generated from these models; a test keeps them equal).
Shape (at least)::

    {"as_of", "patient": {...}, "products": [{"product": "<inn>", "brand", "modality", "target",
     "indications": [{"id", "name", "verdict", "criteria": [{"id", "text", "result",
     "evidence", "needs", "source", ...}]}]}], "fitness": [...], "workup": [...], "disclaimer"}
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from actnav.eligibility.engine import CriterionResult, SourceInfo


class Verdict(StrEnum):
    """An indication's verdict: all criteria met, one not met, or nothing failed but some unknown."""

    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not_eligible"
    NEEDS_INFORMATION = "needs_information"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatientSummary(_Out):
    """The patient as the evaluation saw it (no names or record numbers)."""

    id: str = Field(description="Patient resource id (pseudonymous).")
    age_years: int = Field(description="Completed years on the evaluation date.")
    sex: str
    deceased: bool
    deceased_date: date | None = None
    diagnoses: list[str] = Field(description="Display text of the cancer diagnoses used.")
    prior_lines: int | None = Field(description="Lines of systemic therapy counted, or null if unknown.")
    skipped_resources: dict[str, int] = Field(
        description="Resource types in the input that the rules do not use, with counts."
    )
    notes: list[str] = Field(default_factory=list)


class IndicationResult(_Out):
    id: str
    name: str
    disease: str
    label_revision: str
    effective_from: date
    approval: str
    verdict: Verdict
    reasons: list[str] = Field(
        description="For not_eligible: the criteria not met; for needs_information: what is unknown."
    )
    criteria: list[CriterionResult]
    unconfirmed: bool = Field(description="True when any criterion rests on a fact tagged R or U.")
    source: SourceInfo


class ProductNote(_Out):
    """A label statement in force on the evaluation date (boxed warning, monitoring, REMS)."""

    kind: str
    text: str
    source: SourceInfo


class ProductResult(_Out):
    product: str = Field(description="International non-proprietary name, lower case.")
    id: str
    brand: str
    modality: str
    target: str
    approved_on_as_of: bool = Field(description="False when the evaluation date precedes approval.")
    indications: list[IndicationResult]
    notes: list[ProductNote] = Field(default_factory=list)


class FitnessResult(_Out):
    """General fitness criteria of one pivotal trial: context, not label requirements."""

    id: str
    trial: str
    nct_id: str | None
    products: list[str]
    label_requirement: bool = Field(default=False, description="Always false: trial-derived.")
    summary: Verdict
    criteria: list[CriterionResult]
    source: SourceInfo


class WorkupItemResult(_Out):
    id: str
    step: str
    step_name: str
    text: str
    settles: list[str] = Field(description="Ids of the criteria this item would settle.")


class Evaluation(_Out):
    """The whole report for one patient on one date."""

    schema_version: str = "1.0"
    as_of: date
    generated_by: str
    patient: PatientSummary
    summary: list[str] = Field(description="One line per eligible or possible indication.")
    products: list[ProductResult]
    fitness: list[FitnessResult]
    workup: list[WorkupItemResult]
    knowledge_version: str
    disclaimer: str
