"""Match one patient against trials: verdict, every criterion beside its text, why listed, rank.

Pure: no database, no files, no network (the callers in :mod:`actnav.trials.search` load records).

**One trial** (:func:`match_trial`). The criteria are the record's structured age and sex fields
plus every criterion parsed from its eligibility text (:mod:`actnav.trials.parse`; exclusions are
already negated there). Each is evaluated with the same three-valued engine as the product labels,
and the verdict follows the label rule: ``not_eligible`` when any criterion is not met,
``needs_information`` when none failed but some are unknown, ``eligible`` when all are met.
Criteria the parser could not type are leaves on ``needs_review``: always unknown, shown as
"needs review: <text>". Donor criteria are shown but not counted (they are not about the patient).

**Relevance** (0-1) = 0.6 x diagnosis + 0.2 x modality + 0.2 x target, where

* diagnosis is 1 when a disease concept the trial names (its conditions mapped with the patient
  diagnosis text tables of :mod:`actnav.patient.terminology`, plus the diagnoses its inclusion
  criteria name) is one of the patient's concepts or their ancestors below the top level; 0.5 when
  only a top-level concept matches ("Lymphoma" names haematological malignancy); 0.25 when either
  side has no mappable disease; 0 otherwise;
* modality is 1 when it is the modality of an FDA-approved product labelled for one of the
  patient's diseases (CAR-T for B-ALL; TIL for melanoma; TCR-T for synovial sarcoma);
* target is 1 when a target is shown on the patient's tumour (``tumor_antigens``) or is the target
  of such an approved product (CD19 for B-ALL, BCMA for myeloma).

**Score** (0-100) = 70 + 30 x relevance (eligible), 35 + 30 x relevance (needs information),
30 x relevance (not eligible). **Rank**: disease tier first (:func:`disease_tier`: trials for the
patient's own disease, then those where it cannot be told, then trials for other diseases), then
verdict (eligible, needs information, not eligible), then relevance, then distance to the nearest
recruiting site (nearest first; none last), then NCT id.

**Many trials** (:class:`TrialIndex`): criteria are parsed once per distinct eligibility text and
compiled into a shared table of logical nodes (identical criteria of different trials are one node),
so a patient evaluates each distinct criterion once. The pre-filter rule: the *gate* of a trial is
the set of its leaves that are necessary for eligibility - the structured age and sex criteria and
every ``diagnosis`` leaf reachable from an inclusion criterion through ``all_of`` nodes only. A trial
any of whose gate leaves is not met is ``not_eligible`` without evaluating the rest: that leaf's
criterion is then not met, so the full evaluation gives the same verdict
(``tests/unit/trials/test_match.py`` checks this on every bundled record and example patient).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from actnav.eligibility.engine import REVIEW_PREFIX, CriterionResult, Result, evaluate, leaf_result
from actnav.eligibility.evaluate import unknown_leaves, workup_items
from actnav.eligibility.facts import PatientFacts
from actnav.eligibility.report_model import (
    SiteResult,
    TrialCriterionResult,
    TrialMatchResult,
    Verdict,
    WorkupItemResult,
)
from actnav.knowledge.loader import Knowledge, load_knowledge
from actnav.knowledge.models import Criterion
from actnav.trials.geo import GeoPoint, SiteDistance, nearest_site, recruiting_sites
from actnav.trials.models import TrialRecord
from actnav.trials.parse import ParsedCriterion
from actnav.trials.recognition import ActClassification

__all__ = [
    "PatientProfile",
    "RankedTrials",
    "TrialIndex",
    "TrialMatch",
    "match_trial",
    "patient_profile",
    "rank_trials",
    "structured_criteria",
    "trial_concepts",
]

#: The report form of a match (one model for the matcher and the evaluation report).
TrialMatch = TrialMatchResult

ParseFn = Callable[[str], tuple[ParsedCriterion, ...]]

VERDICT_RANK: dict[Verdict, int] = {
    Verdict.ELIGIBLE: 0,
    Verdict.NEEDS_INFORMATION: 1,
    Verdict.NOT_ELIGIBLE: 2,
}
_RANK_VERDICT = (Verdict.ELIGIBLE, Verdict.NEEDS_INFORMATION, Verdict.NOT_ELIGIBLE)
SCORE_BASE: dict[Verdict, float] = {
    Verdict.ELIGIBLE: 70.0,
    Verdict.NEEDS_INFORMATION: 35.0,
    Verdict.NOT_ELIGIBLE: 0.0,
}
SCORE_RELEVANCE_POINTS = 30.0
WEIGHT_DIAGNOSIS, WEIGHT_MODALITY, WEIGHT_TARGET = 0.6, 0.2, 0.2
DIAGNOSIS_SPECIFIC, DIAGNOSIS_BROAD, DIAGNOSIS_UNKNOWN = 1.0, 0.5, 0.25

CTGOV_STUDY_URL = "https://clinicaltrials.gov/study/"


# --------------------------------------------------------------------------------------------
# The patient side of relevance
# --------------------------------------------------------------------------------------------


def _norm_target(name: str) -> str:
    """Compare antigen names loosely: ``CD19`` = ``cd19``, ``MAGE-A4`` = ``mage_a4``,
    ``NY-ESO-1`` = ``nyeso1``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class PatientProfile:
    """What relevance compares trials with.

    Attributes:
        concepts: the patient's disease concepts with ancestors; None when the diagnosis is unknown.
        diagnosis_text: the diagnoses as recorded, for the reasons.
        modalities: modality -> the approved products labelled for the patient's disease.
        targets: normalised antigen -> why it is relevant (tested positive, or an approved product's target).
        deceased: the record says the patient has died.
    """

    concepts: frozenset[str] | None
    diagnosis_text: str
    modalities: dict[str, str] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    deceased: bool = False


def patient_profile(facts: PatientFacts, knowledge: Knowledge | None = None) -> PatientProfile:
    """The relevance profile of a patient: diagnosis concepts, relevant modalities and targets.

    Args:
        facts: the patient's facts on the evaluation date.
        knowledge: the packaged product labels (default: loaded once per process).
    """
    kb = knowledge or load_knowledge()
    dx = facts("diagnosis")
    concepts = frozenset(dx.value) if isinstance(dx.value, tuple) else None
    modalities: dict[str, list[str]] = {}
    targets: dict[str, str] = {}
    antigens = facts("tumor_antigens")
    if isinstance(antigens.value, tuple):
        for code in antigens.value:
            targets[_norm_target(code)] = f"{code.upper().replace('_', '-')} shown on the tumour"
    if concepts:
        for product in kb.products:
            diseases = {ind.disease for ind in product.indications}
            if diseases & concepts:
                modalities.setdefault(product.modality, []).append(product.id.replace("_", " "))
                target = product.target.split()[0]
                key = _norm_target(target)
                if key and key != "none":
                    targets.setdefault(key, f"{target}, the target of {product.id.replace('_', ' ')}")
    text = "; ".join(d.text for d in facts.patient.diagnoses if d.text) or "no diagnosis recorded"
    return PatientProfile(
        concepts=concepts,
        diagnosis_text=text,
        modalities={m: ", ".join(names) for m, names in modalities.items()},
        targets=targets,
        deceased=facts.patient.deceased,
    )


# --------------------------------------------------------------------------------------------
# The trial side: structured criteria, disease concepts
# --------------------------------------------------------------------------------------------


def structured_criteria(record: TrialRecord) -> tuple[Criterion, ...]:
    """The record's structured age and sex fields as criteria (``age_years`` in completed years).

    ClinicalTrials.gov limits are inclusive ("18 Years" to "75 Years" admits 18 through 75).
    A limit in months or weeks (0.5 years) cannot be decided from completed years alone in the
    year it falls in: that year is unknown (a review leaf), the others are decided.
    """
    out: list[Criterion] = []
    lo, hi = record.minimum_age_years, record.maximum_age_years
    if lo is not None and lo > 0:
        out.append(_age_bound("age.min", "ge", lo, f"Minimum age {_years(lo)} (structured field)"))
    if hi is not None:
        out.append(_age_bound("age.max", "le", hi, f"Maximum age {_years(hi)} (structured field)"))
    if record.sex != "ALL":
        sex = record.sex.lower()
        out.append(
            Criterion(id="sex", text=f"Sex: {sex} only (structured field)", fact="sex", op="eq", value=sex)
        )
    return tuple(out)


def _years(value: float) -> str:
    return f"{value:g} years" if value.is_integer() else f"{value * 12:.0f} months ({value:.2f} years)"


def _age_bound(cid: str, op: Literal["ge", "le"], years: float, text: str) -> Criterion:
    if years.is_integer():
        return Criterion(id=cid, text=text, fact="age_years", op=op, value=int(years), unit="a")
    lo, hi = math.floor(years), math.ceil(years)
    sure, edge = (hi, lo) if op == "ge" else (lo, hi)
    review = Criterion(
        id=f"{cid}.r",
        text=text,
        fact="needs_review",
        op="eq",
        value=True,
        remarks=f"{REVIEW_PREFIX} {text}: the age in months is needed in the year of the limit",
    )
    return Criterion.model_validate(
        {
            "id": cid,
            "text": text,
            "any_of": (
                Criterion(id=f"{cid}.1", text=text, fact="age_years", op=op, value=sure, unit="a"),
                Criterion.model_validate(
                    {
                        "id": f"{cid}.2",
                        "text": text,
                        "all_of": (
                            Criterion(
                                id=f"{cid}.3", text=text, fact="age_years", op=op, value=edge, unit="a"
                            ),
                            review,
                        ),
                    }
                ),
            ),
        }
    )


@cache
def _concept_tables() -> tuple[dict[str, tuple[str, ...]], frozenset[str], frozenset[str]]:
    """(lineage by concept, top-level disease concepts, state concepts) from diagnoses.yaml."""
    from actnav.patient import terminology

    dx = terminology.diagnoses()
    lineage = {c.id: terminology.concept_lineage(c.id) for c in dx.concepts}
    roots = frozenset(c.id for c in dx.concepts if not c.parents and c.kind == "disease")
    states = frozenset(c.id for c in dx.concepts if c.kind == "state")
    return lineage, roots, states


def _leaves_of(concepts: Iterable[str]) -> set[str]:
    """The most specific concepts of a set (drop those that are ancestors of another)."""
    lineage, _roots, states = _concept_tables()
    found = {c for c in concepts if c in lineage and c not in states}
    covered = {a for c in found for a in lineage[c][1:]}
    return found - covered


@cache
def _condition_concepts(condition: str) -> tuple[str, ...]:
    from actnav.patient import terminology

    return terminology.map_condition([], [condition]).concepts


def trial_concepts(record: TrialRecord, criteria: Sequence[ParsedCriterion] = ()) -> frozenset[str]:
    """The disease concepts a trial names: its conditions (mapped with the patient diagnosis text
    tables) and the diagnoses its inclusion criteria require; most specific concepts only."""
    found: set[str] = set()
    for condition in record.conditions:
        found |= _leaves_of(_condition_concepts(condition))
    for pc in criteria:
        if pc.source.section != "inclusion":
            continue
        for node in pc.criterion.walk():
            if node.fact == "diagnosis" and isinstance(node.value, tuple):
                found |= {str(v) for v in node.value}
    return frozenset(_leaves_of(found))


@dataclass(frozen=True)
class _Relevance:
    value: float
    reasons: tuple[str, ...]
    diagnosis: float = DIAGNOSIS_UNKNOWN
    #: The patient's most specific disease is an ancestor of one the trial names (a "B-cell
    #: lymphoma" patient and a DLBCL trial): no concept shared, yet not another disease.
    less_specific: bool = False


def _relevance(
    profile: PatientProfile, concepts: frozenset[str], modality: str | None, targets: Sequence[str]
) -> _Relevance:
    _lineage, roots, _states = _concept_tables()
    reasons: list[str] = []
    less_specific = False
    if profile.concepts is None or not concepts:
        diagnosis = DIAGNOSIS_UNKNOWN
        reasons.append(
            "Diagnosis: not compared (the patient's diagnosis is unknown)"
            if profile.concepts is None
            else "Diagnosis: the trial's conditions name no disease actnav maps"
        )
    else:
        shared = concepts & profile.concepts
        specific = sorted(c for c in shared if c not in roots)
        if specific:
            diagnosis = DIAGNOSIS_SPECIFIC
            reasons.append(
                f"Diagnosis: the trial is for {', '.join(_label(c) for c in specific)} "
                f"(patient: {profile.diagnosis_text})"
            )
        elif shared:
            diagnosis = DIAGNOSIS_BROAD
            reasons.append(f"Diagnosis: broad match only ({', '.join(_label(c) for c in sorted(shared))})")
        else:
            diagnosis = 0.0
            less_specific = _less_specific(profile.concepts, concepts)
            reasons.append(
                f"Diagnosis: the trial is for {', '.join(_label(c) for c in sorted(concepts))}, "
                f"not the patient's disease"
            )
    mod = 0.0
    if modality and modality in profile.modalities:
        mod = 1.0
        reasons.append(
            f"Modality: {modality}, as the approved products for the patient's disease "
            f"({profile.modalities[modality]})"
        )
    tgt = 0.0
    for target in targets:
        why = profile.targets.get(_norm_target(target))
        if why:
            tgt = 1.0
            reasons.append(f"Target: {target} ({why})")
            break
    return _Relevance(
        relevance_value(diagnosis, mod, tgt), tuple(reasons), diagnosis, diagnosis == 0.0 and less_specific
    )


def _less_specific(patient: frozenset[str], trial: frozenset[str]) -> bool:
    """True when one of the patient's most specific disease concepts (not a top-level one) is an
    ancestor of a concept the trial names."""
    lineage, roots, _states = _concept_tables()
    leaves = _leaves_of(patient) - roots
    return any(leaf in lineage.get(c, ())[1:] for c in trial for leaf in leaves)


def disease_tier(diagnosis: float, less_specific: bool = False) -> int:
    """The first key of the ranking, from the diagnosis part of relevance: 0 when the trial is for
    the patient's own disease (a specific concept shared), 1 when that cannot be told (a broad
    match only, either side has no mappable disease, or the patient's diagnosis is less specific
    than the trial's: ``less_specific``), 2 when the trial is for other diseases.

    Why first: a coordinator reads a short list, and a trial for another disease is not an option
    for the patient whatever its other criteria say; its verdict is often "needs information"
    only because its diagnosis criteria went to review."""
    if diagnosis >= DIAGNOSIS_SPECIFIC:
        return 0
    return 2 if diagnosis <= 0.0 and not less_specific else 1


def relevance_value(diagnosis: float, modality: float, target: float) -> float:
    """Relevance (0-1, 4 decimals) from its parts: 0.6 x diagnosis + 0.2 x modality + 0.2 x target
    (each 0-1; see the module docstring). Shared with the population screen
    (:mod:`actnav.screen.vector`) so both compute the same number."""
    return round(WEIGHT_DIAGNOSIS * diagnosis + WEIGHT_MODALITY * modality + WEIGHT_TARGET * target, 4)


def _label(concept: str) -> str:
    from actnav.patient import terminology

    for c in terminology.diagnoses().concepts:
        if c.id == concept:
            return c.label
    return concept


# --------------------------------------------------------------------------------------------
# One trial, in full
# --------------------------------------------------------------------------------------------


def match_trial(
    patient_facts: PatientFacts,
    trial: TrialRecord,
    criteria: Sequence[ParsedCriterion],
    classification: ActClassification,
    *,
    profile: PatientProfile | None = None,
    near: GeoPoint | None = None,
) -> TrialMatch:
    """Evaluate one trial for one patient, every criterion in full.

    Args:
        patient_facts: the patient's facts on the evaluation date (cached per fact).
        trial: the record (structured age, sex, conditions, sites).
        criteria: its eligibility criteria parsed by :func:`actnav.trials.parse.parse_criteria`.
        classification: its ACT classification (modality, targets, cell source).
        profile: the patient's relevance profile (computed when not given).
        near: the patient's point, for the nearest recruiting site (None: no distance).

    Returns:
        The match: verdict, reasons, score, why listed, nearest site, each criterion beside its
        original text, and the work-up that would settle the unknowns.
    """
    kb = load_knowledge()
    profile = profile or patient_profile(patient_facts, kb)

    def workup_for(fact_id: str) -> str:
        return kb.facts[fact_id].workup

    rows: list[TrialCriterionResult] = []
    for crit in structured_criteria(trial):
        result = evaluate(crit, patient_facts, {}, workup_for)
        rows.append(
            TrialCriterionResult(
                section="structured", text=crit.text, parse_status="structured", counted=True, result=result
            )
        )
    for pc in criteria:
        ct = pc.source
        result = evaluate(pc.criterion, patient_facts, {}, workup_for)
        rows.append(
            TrialCriterionResult(
                section=ct.section,
                text=ct.text,
                parent=ct.parent,
                parse_status=pc.status,
                population=ct.population,
                counted=ct.population == "patient",
                result=result,
                notes=list(pc.notes),
            )
        )
    counted = [r for r in rows if r.counted]
    verdict, reasons = _verdict(counted)
    if profile.deceased:
        verdict, reasons = Verdict.NOT_ELIGIBLE, ["The patient is recorded as deceased", *reasons]
    relevance = _relevance(
        profile, trial_concepts(trial, criteria), classification.modality, classification.targets
    )
    site = nearest_site(near, recruiting_sites(trial)) if near is not None else None
    why = list(relevance.reasons)
    if classification.is_act:
        parts = [
            p
            for p in (
                classification.modality,
                ", ".join(classification.targets) or None,
                None if classification.cell_source == "unknown" else classification.cell_source,
            )
            if p
        ]
        why.insert(0, f"Adoptive cell therapy trial ({'; '.join(parts)})")
    why.append(f"Status: {trial.overall_status or 'not given'}")
    if near is not None:
        why.append(_site_reason(site, near))
    counts = {
        "met": sum(r.result.result is Result.MET for r in counted),
        "not_met": sum(r.result.result is Result.NOT_MET for r in counted),
        "unknown": sum(r.result.result is Result.UNKNOWN for r in counted),
        "needs_review": sum(r.parse_status == "review" for r in counted),
    }
    return TrialMatchResult(
        nct_id=trial.nct_id,
        title=trial.title,
        url=f"{CTGOV_STUDY_URL}{trial.nct_id}",
        overall_status=trial.overall_status,
        phases=list(trial.phases),
        conditions=list(trial.conditions),
        sponsor=trial.sponsor,
        is_act=classification.is_act,
        modality=classification.modality,
        targets=list(classification.targets),
        cell_source=classification.cell_source,
        verdict=verdict,
        reasons=reasons,
        score=score(verdict, relevance.value),
        relevance=relevance.value,
        why_listed=why,
        nearest_site=_site_result(site),
        counts=counts,
        criteria=rows,
        workup=_workup(counted, kb),
    )


def score(verdict: Verdict, relevance: float) -> float:
    """The 0-100 score: a band per verdict plus 30 points of relevance (see the module docstring)."""
    return round(SCORE_BASE[verdict] + SCORE_RELEVANCE_POINTS * relevance, 1)


def _verdict(rows: Sequence[TrialCriterionResult]) -> tuple[Verdict, list[str]]:
    failed = [r for r in rows if r.result.result is Result.NOT_MET]
    if failed:
        return Verdict.NOT_ELIGIBLE, [f"{_where(r)}: {r.text}: not met{_found(r.result)}" for r in failed]
    unknown = [r for r in rows if r.result.result is Result.UNKNOWN]
    if unknown:
        return Verdict.NEEDS_INFORMATION, [
            f"{_where(r)}: {r.text}: {r.result.needs or 'unknown'}" for r in unknown
        ]
    return Verdict.ELIGIBLE, []


def _where(row: TrialCriterionResult) -> str:
    return {"structured": "Record field", "inclusion": "Inclusion", "exclusion": "Exclusion"}.get(
        row.section, "Criterion"
    )


def _found(result: CriterionResult) -> str:
    values = [
        f"{ev.value}" + (f" {ev.unit}" if ev.unit else "")
        for ev in result.evidence[:3]
        if ev.value is not None
    ]
    return f" (found: {'; '.join(values)})" if values else ""


def _site_reason(site: SiteDistance | None, near: GeoPoint) -> str:
    if site is None:
        return "Distance: no recruiting site with coordinates in the record"
    where = ", ".join(
        p for p in (site.site.facility, site.site.city, site.site.state, site.site.country) if p
    )
    return f"Nearest recruiting site: {where}, {site.distance_km:.0f} km from {near.label}"


def _site_result(site: SiteDistance | None) -> SiteResult | None:
    if site is None:
        return None
    s = site.site
    return SiteResult(
        facility=s.facility,
        city=s.city,
        state=s.state,
        country=s.country,
        status=s.status,
        distance_km=round(site.distance_km, 1),
    )


def _workup(rows: Sequence[TrialCriterionResult], kb: Knowledge) -> list[WorkupItemResult]:
    settles: dict[str, list[str]] = {}
    for row in rows:
        for leaf in unknown_leaves(row.result):
            for item in leaf.workup:
                ids = settles.setdefault(item, [])
                if row.result.id not in ids:
                    ids.append(row.result.id)
    return workup_items(settles, kb)


# --------------------------------------------------------------------------------------------
# Many trials: the index
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexedTrial:
    """One trial in the index: a slim record (no raw JSON, no eligibility text: the parsed criteria
    carry their own text), its classification and parsed criteria."""

    record: TrialRecord
    classification: ActClassification
    criteria: tuple[ParsedCriterion, ...]


def default_parse(text: str) -> tuple[ParsedCriterion, ...]:
    """Split and parse one eligibility text (:mod:`actnav.trials.criteria_text`, then
    :mod:`actnav.trials.parse`)."""
    from actnav.trials.criteria_text import split_criteria
    from actnav.trials.parse import parse_criteria

    return tuple(parse_criteria(split_criteria(text)))


class _Compiler:
    """Interns criterion trees into logical nodes shared by every trial (ids and texts ignored)."""

    def __init__(self) -> None:
        self.keys: dict[tuple[Any, ...], int] = {}
        self.leaf: list[Criterion | None] = []  # representative leaf, None for groups
        self.kind: list[str] = []  # "leaf", "all", "any", "not"
        self.children: list[tuple[int, ...]] = []

    def node(self, c: Criterion) -> int:
        if c.fact is not None:
            key: tuple[Any, ...] = ("leaf", c.fact, c.op, c.value, c.if_missing)
            kind, kids = "leaf", tuple[int, ...]()
        else:
            kind = "all" if c.all_of is not None else "any" if c.any_of is not None else "not"
            kids = tuple(self.node(child) for child in c.children)
            key = (kind, kids)
        found = self.keys.get(key)
        if found is not None:
            return found
        nid = len(self.kind)
        self.keys[key] = nid
        self.leaf.append(c if kind == "leaf" else None)
        self.kind.append(kind)
        self.children.append(kids)
        return nid


def _necessary_diagnosis_leaves(c: Criterion) -> list[Criterion]:
    """Diagnosis leaves whose failure fails ``c``: reached through ``all_of`` only."""
    if c.fact is not None:
        return [c] if c.fact == "diagnosis" and c.op == "has_any" else []
    if c.all_of is not None:
        return [leaf for child in c.all_of for leaf in _necessary_diagnosis_leaves(child)]
    return []


@dataclass(frozen=True)
class _Arrays:
    """Per-trial columns for vectorised filtering and ranking."""

    plan: npt.NDArray[np.int64]
    rel: npt.NDArray[np.int64]
    status: npt.NDArray[np.int64]
    modality: npt.NDArray[np.int64]
    act: npt.NDArray[np.bool_]


@dataclass
class RankedTrials:
    """The ranking of one patient against an index.

    Attributes:
        order: trial positions in the index, best first (filtered).
        verdicts: verdict rank per trial position (0 eligible, 1 needs information, 2 not eligible).
        relevance: relevance per trial position (0-1).
        distance_km: distance to the nearest recruiting site per trial position (inf: none).
        checked: number of trials left after the status, modality and radius filters.
    """

    order: npt.NDArray[np.int64]
    verdicts: npt.NDArray[np.int8]
    relevance: npt.NDArray[np.float64]
    distance_km: npt.NDArray[np.float64]
    checked: int

    def verdict(self, position: int) -> Verdict:
        return _RANK_VERDICT[int(self.verdicts[position])]


class TrialIndex:
    """Trials parsed once and compiled for fast matching of one patient against many trials.

    Build with :meth:`build`; then :meth:`rank` orders all trials for a patient (verdict of every
    trial, with the pre-filter and shared nodes of the module docstring) and :meth:`matches` gives
    the top ones in full (:func:`match_trial`).
    """

    def __init__(self) -> None:
        self.trials: list[IndexedTrial] = []
        self._compiler = _Compiler()
        self._plan_keys: dict[tuple[int, ...], int] = {}
        self._plans: list[tuple[int, ...]] = []
        self._plan_gate: list[int] = []
        self._gate_keys: dict[tuple[int, ...], int] = {}
        self._gates: list[tuple[int, ...]] = []
        self._rel_keys: dict[tuple[frozenset[str], str | None, tuple[str, ...]], int] = {}
        self._rels: list[tuple[frozenset[str], str | None, tuple[str, ...]]] = []
        self._trial_plan: list[int] = []
        self._trial_rel: list[int] = []
        self._parse_cache: dict[str, tuple[ParsedCriterion, ...]] = {}
        self._compiled_cache: dict[tuple[int, tuple[Any, ...]], int] = {}
        self._concept_cache: dict[tuple[tuple[str, ...], int], frozenset[str]] = {}
        self._codes: dict[str, int] = {}
        self._trial_status: list[int] = []
        self._trial_modality: list[int] = []
        self._trial_act: list[bool] = []
        self._arrays: _Arrays | None = None
        self._sites: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = (
            None
        )

    def __len__(self) -> int:
        return len(self.trials)

    @classmethod
    def build(
        cls,
        records: Iterable[tuple[TrialRecord, ActClassification]],
        *,
        parse: ParseFn = default_parse,
    ) -> TrialIndex:
        """Index records with their classification.

        Args:
            records: (record, ACT classification) pairs.
            parse: eligibility text -> parsed criteria (called once per distinct text; inject a
                cached parser to reuse parses across processes).
        """
        index = cls()
        for record, classification in records:
            index.add(record, classification, parse=parse)
        return index

    def add(
        self, record: TrialRecord, classification: ActClassification, *, parse: ParseFn = default_parse
    ) -> None:
        """Add one trial (parsing its eligibility text unless an identical text was seen)."""
        text = record.eligibility_text
        criteria = self._parse_cache.get(text)
        if criteria is None:
            criteria = parse(text)
            self._parse_cache[text] = criteria
        slim = record.model_copy(update={"raw": {}, "eligibility_text": ""})
        self.trials.append(IndexedTrial(slim, classification, criteria))
        structured = structured_criteria(record)
        skey = tuple((c.fact, c.op, c.value) for s in structured for c in s.walk())
        plan = self._compiled_cache.get((id(criteria), skey))
        if plan is None:
            plan = self._compile(structured, criteria)
            self._compiled_cache[(id(criteria), skey)] = plan
        self._trial_plan.append(plan)
        ckey = (record.conditions, id(criteria))
        concepts = self._concept_cache.get(ckey)
        if concepts is None:
            concepts = trial_concepts(record, criteria)
            self._concept_cache[ckey] = concepts
        rkey = (concepts, classification.modality, classification.targets)
        rel = self._rel_keys.get(rkey)
        if rel is None:
            rel = self._rel_keys[rkey] = len(self._rels)
            self._rels.append(rkey)
        self._trial_rel.append(rel)
        self._trial_status.append(self._code((record.overall_status or "").upper()))
        self._trial_modality.append(self._code(classification.modality or ""))
        self._trial_act.append(classification.is_act)
        self._arrays = None
        self._sites = None

    def _compile(self, structured: Sequence[Criterion], criteria: Sequence[ParsedCriterion]) -> int:
        comp = self._compiler
        gate: list[int] = []
        nodes: list[int] = []
        for c in structured:
            nid = comp.node(c)
            gate.append(nid)
            nodes.append(nid)
        for pc in criteria:
            if pc.source.population != "patient":
                continue
            nid = comp.node(pc.criterion)
            if pc.source.section == "inclusion":
                gate.extend(comp.node(leaf) for leaf in _necessary_diagnosis_leaves(pc.criterion))
            nodes.append(nid)
        gate_ids = tuple(dict.fromkeys(gate))
        plan_nodes = tuple(dict.fromkeys([*gate_ids, *nodes]))  # gate first: early exit
        plan = self._plan_keys.get(plan_nodes)
        if plan is None:
            plan = self._plan_keys[plan_nodes] = len(self._plans)
            self._plans.append(plan_nodes)
            g = self._gate_keys.get(gate_ids)
            if g is None:
                g = self._gate_keys[gate_ids] = len(self._gates)
                self._gates.append(gate_ids)
            self._plan_gate.append(g)
        return plan

    @property
    def distinct_nodes(self) -> int:
        """Logical criterion nodes shared by all trials (a measure of the per-patient work)."""
        return len(self._compiler.kind)

    @property
    def distinct_plans(self) -> int:
        return len(self._plans)

    def _code(self, value: str) -> int:
        found = self._codes.get(value)
        if found is None:
            found = self._codes[value] = len(self._codes)
        return found

    def _trial_arrays(self) -> _Arrays:
        if self._arrays is None:
            self._arrays = _Arrays(
                plan=np.asarray(self._trial_plan, dtype=np.int64),
                rel=np.asarray(self._trial_rel, dtype=np.int64),
                status=np.asarray(self._trial_status, dtype=np.int64),
                modality=np.asarray(self._trial_modality, dtype=np.int64),
                act=np.asarray(self._trial_act, dtype=bool),
            )
        return self._arrays

    def _site_arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        if self._sites is None:
            lat: list[float] = []
            lon: list[float] = []
            owner: list[int] = []
            for i, t in enumerate(self.trials):
                for s in recruiting_sites(t.record):
                    assert s.lat is not None and s.lon is not None
                    lat.append(s.lat)
                    lon.append(s.lon)
                    owner.append(i)
            self._sites = (
                np.asarray(lat, dtype=np.float64),
                np.asarray(lon, dtype=np.float64),
                np.asarray(owner, dtype=np.int64),
            )
        return self._sites

    # -- per patient ---------------------------------------------------------------------------

    def rank(
        self,
        facts: PatientFacts,
        *,
        profile: PatientProfile | None = None,
        near: GeoPoint | None = None,
        radius_km: float | None = None,
        statuses: Sequence[str] = (),
        modality: str | None = None,
        act_only: bool = False,
        full: bool = False,
    ) -> RankedTrials:
        """Verdict, relevance and distance of every trial for one patient, and their order.

        Args:
            facts: the patient's facts on the evaluation date.
            profile: relevance profile (computed when not given).
            near: the patient's point (None: no distances, no radius filter).
            radius_km: keep only trials with a recruiting site within this many km of ``near``.
            statuses: keep only these overall statuses (upper case); empty for all.
            modality: keep only this modality (CAR-T, TIL, TCR-T, CAR-NK/NK, other cell therapy).
            act_only: keep only adoptive cell therapy trials.
            full: evaluate every criterion of every trial (no pre-filter; for tests and benchmarks).
        """
        profile = profile or patient_profile(facts)
        arrays = self._trial_arrays()
        plan_of, rel_of = arrays.plan, arrays.rel
        n = len(self.trials)
        mask = np.ones(n, dtype=bool)
        if statuses:
            codes = [self._codes[s.upper()] for s in statuses if s.upper() in self._codes]
            mask &= np.isin(arrays.status, np.asarray(codes, dtype=np.int64))
        if modality is not None:
            mask &= arrays.modality == self._codes.get(modality, -1)
        if act_only:
            mask &= arrays.act
        distance = np.full(n, np.inf)
        if near is not None:
            lat, lon, owner = self._site_arrays()
            if len(owner):
                d = _haversine_np(near.lat, near.lon, lat, lon)
                np.minimum.at(distance, owner, d)
            if radius_km is not None:
                mask &= distance <= radius_km
        needed = np.flatnonzero(np.bincount(plan_of[mask], minlength=len(self._plans)))
        plan_verdict = self._plan_verdicts(facts, needed, full=full)
        verdicts = plan_verdict[plan_of].astype(np.int8)
        if profile.deceased:
            verdicts[:] = 2
        rels = [_relevance(profile, *key) for key in self._rels]
        rel_values = np.asarray([r.value for r in rels], dtype=np.float64)
        relevance = rel_values[rel_of] if n else np.zeros(0)
        tier_values = np.asarray([disease_tier(r.diagnosis, r.less_specific) for r in rels], dtype=np.float64)
        tiers = tier_values[rel_of] if n else np.zeros(0)
        positions = np.flatnonzero(mask)
        # One sort key, lexicographic by construction: disease tier, verdict rank, then relevance
        # (multiples of 1e-4, so 1 - relevance in whole steps), then distance squeezed into [0, 1);
        # a stable sort keeps index order for ties.
        dist = np.minimum(distance[positions], 1e15)  # no site: after every site
        squeezed = dist / (dist + 1000.0) * 0.999
        key = (
            tiers[positions] * 1e6
            + verdicts[positions].astype(np.float64) * 1e5
            + np.rint((1.0 - relevance[positions]) * 1e4)
            + squeezed
        )
        order = positions[np.argsort(key, kind="stable")]
        return RankedTrials(
            order=order.astype(np.int64),
            verdicts=verdicts,
            relevance=relevance,
            distance_km=distance,
            checked=int(mask.sum()),
        )

    def _plan_verdicts(
        self, facts: PatientFacts, needed: npt.NDArray[np.int64], *, full: bool
    ) -> npt.NDArray[np.int8]:
        comp = self._compiler
        memo: dict[int, Result] = {}

        def result(nid: int) -> Result:
            found = memo.get(nid)
            if found is not None:
                return found
            kind = comp.kind[nid]
            if kind == "leaf":
                leaf = comp.leaf[nid]
                assert leaf is not None and leaf.fact is not None
                r = leaf_result(leaf, facts(leaf.fact))
            else:
                rs = [result(k) for k in comp.children[nid]]
                if kind == "all":
                    r = (
                        Result.NOT_MET
                        if Result.NOT_MET in rs
                        else Result.UNKNOWN
                        if Result.UNKNOWN in rs
                        else Result.MET
                    )
                elif kind == "any":
                    r = (
                        Result.MET
                        if Result.MET in rs
                        else Result.UNKNOWN
                        if Result.UNKNOWN in rs
                        else Result.NOT_MET
                    )
                else:
                    r = {Result.MET: Result.NOT_MET, Result.NOT_MET: Result.MET}.get(rs[0], Result.UNKNOWN)
            memo[nid] = r
            return r

        gate_failed: dict[int, bool] = {}
        out = np.full(len(self._plans), 2, dtype=np.int8)
        for plan in needed.tolist():
            if not full:
                g = self._plan_gate[plan]
                failed = gate_failed.get(g)
                if failed is None:
                    failed = gate_failed[g] = any(result(nid) is Result.NOT_MET for nid in self._gates[g])
                if failed:
                    continue  # the pre-filter: not eligible without evaluating the rest
            verdict = 0
            for nid in self._plans[plan]:
                r = result(nid)
                if r is Result.NOT_MET:
                    verdict = 2
                    if not full:
                        break
                elif r is Result.UNKNOWN and verdict == 0:
                    verdict = 1
            out[plan] = verdict
        return out

    def matches(
        self,
        facts: PatientFacts,
        ranked: RankedTrials,
        *,
        limit: int | None = None,
        profile: PatientProfile | None = None,
        near: GeoPoint | None = None,
    ) -> list[TrialMatch]:
        """The top ``limit`` trials of a ranking, evaluated in full (:func:`match_trial`)."""
        profile = profile or patient_profile(facts)
        chosen = ranked.order if limit is None else ranked.order[:limit]
        out: list[TrialMatch] = []
        for position in chosen.tolist():
            t = self.trials[position]
            out.append(match_trial(facts, t.record, t.criteria, t.classification, profile=profile, near=near))
        # The full evaluation orders ties the same way as the ranking (same verdict, relevance, distance).
        return out


def _haversine_np(
    lat0: float, lon0: float, lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Vectorised :func:`actnav.trials.geo.haversine_km` from one point to many, kilometres."""
    from actnav.trials.geo import EARTH_RADIUS_KM

    p0, p = np.radians(lat0), np.radians(lat)
    dp = p - p0
    dl = np.radians(lon - lon0)
    h = np.sin(dp / 2) ** 2 + np.cos(p0) * np.cos(p) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h))), dtype=np.float64)


def rank_trials(
    patient_facts: PatientFacts,
    index: TrialIndex,
    *,
    limit: int | None = 20,
    near: GeoPoint | None = None,
    radius_km: float | None = None,
    statuses: Sequence[str] = (),
    modality: str | None = None,
    act_only: bool = False,
) -> tuple[list[TrialMatch], RankedTrials]:
    """Rank every trial of ``index`` for a patient and evaluate the top ``limit`` in full.

    Order: disease tier (:func:`disease_tier`), verdict (eligible, needs information, not
    eligible), relevance, distance to the nearest recruiting site, then position in the index
    (NCT id order from the store).

    Returns:
        The top matches (full results) and the whole ranking.
    """
    profile = patient_profile(patient_facts)
    ranked = index.rank(
        patient_facts,
        profile=profile,
        near=near,
        radius_km=radius_km,
        statuses=statuses,
        modality=modality,
        act_only=act_only,
    )
    return index.matches(patient_facts, ranked, limit=limit, profile=profile, near=near), ranked
