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
from typing import Literal

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
    from_note: Literal["unreviewed", "reviewed"] | None = Field(
        default=None,
        description="Set when the patient was read from a clinical note: unreviewed (evaluated "
        "directly) or reviewed (facts accepted or corrected by a person). Criteria resting on "
        "the note quote its words in from_note.",
    )


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


class SiteResult(_Out):
    """A trial site as the record gives it, with its distance from the patient."""

    facility: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    status: str | None = None
    distance_km: float | None = Field(default=None, description="Great-circle distance, kilometres.")


class TrialCriterionResult(_Out):
    """One eligibility criterion of a trial beside its original text, and its result."""

    section: Literal["structured", "inclusion", "exclusion", "unknown"] = Field(
        description="structured: from the record's age and sex fields; unknown: text outside the "
        "inclusion and exclusion headings."
    )
    text: str = Field(description="The criterion as the record writes it (unescaped).")
    parent: str | None = Field(default=None, description="The heading or item it sits under.")
    parse_status: Literal["structured", "typed", "partial", "review"] = Field(
        description="typed: fully read; partial: typed parts plus a part to review; review: not read."
    )
    population: Literal["patient", "donor"] = "patient"
    counted: bool = Field(description="False for criteria about a donor: shown, not part of the verdict.")
    result: CriterionResult
    notes: list[str] = Field(default_factory=list, description="Why a part went to review.")


class TrialMatchResult(_Out):
    """One trial matched against the patient: verdict, score, why it is listed, every criterion."""

    nct_id: str
    title: str
    url: str = Field(description="The trial's ClinicalTrials.gov page.")
    overall_status: str | None = None
    phases: list[str] = Field(default_factory=list)
    conditions: list[str] = Field(default_factory=list)
    sponsor: str | None = None
    is_act: bool
    modality: str | None = None
    targets: list[str] = Field(default_factory=list)
    cell_source: str = "unknown"
    verdict: Verdict = Field(description="Same rule as the labels: any criterion not met, else any unknown.")
    reasons: list[str] = Field(
        description="For not_eligible: the criteria not met; for needs_information: what is unknown."
    )
    score: float = Field(
        description="0-100: 70 + 30 x relevance when eligible, 35 + 30 x relevance when information is "
        "needed, 30 x relevance when not eligible (docs/trial-matching.md)."
    )
    relevance: float = Field(description="0-1: diagnosis, modality and target relevance to the patient.")
    why_listed: list[str] = Field(description="Why the trial is listed (diagnosis, modality, target...).")
    nearest_site: SiteResult | None = Field(
        default=None, description="The nearest recruiting site with coordinates, when --near is given."
    )
    counts: dict[str, int] = Field(
        description="Counted criteria by result (met, not_met, unknown) and those left for review."
    )
    criteria: list[TrialCriterionResult]
    workup: list[WorkupItemResult] = Field(
        default_factory=list, description="What would settle this trial's unknown criteria."
    )


class TrialSearch(_Out):
    """Which trials were matched and how (the options of ``actnav match`` or their defaults)."""

    source: str = Field(description="'database' or 'bundled' (the offline records packaged with actnav).")
    trials_checked: int = Field(description="Trials matched after the status and modality filters.")
    trials_shown: int
    near: str | None = None
    radius_km: float | None = None
    statuses: list[str] = Field(default_factory=list)
    modality: str | None = None
    act_only: bool = True


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
    trials: list[TrialMatchResult] = Field(
        default_factory=list, description="Matched clinical trials, ranked (empty when none were matched)."
    )
    trial_search: TrialSearch | None = Field(default=None, description="How the trials were chosen.")


class TrialMatchReport(_Out):
    """What ``actnav match`` returns: the patient, how trials were chosen, the ranked matches."""

    schema_version: str = "1.0"
    as_of: date
    generated_by: str
    patient: PatientSummary
    search: TrialSearch
    trials: list[TrialMatchResult]
    disclaimer: str
