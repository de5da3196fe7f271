"""Trial pages: search the trials, read one trial's criteria as parsed beside the original text.

Pages (any signed-in account; they hold no patient data, so a patient may read them too):

* ``GET /trials``: search by words in the title, conditions and interventions, with status,
  modality and "adoptive cell therapy only" filters, 25 a page.
* ``GET /trials/{nct_id}``: one trial: title, status, phases, conditions, interventions, the ACT
  classification with its evidence, sites, a link to ClinicalTrials.gov, and every eligibility
  criterion as actnav parsed it (section, status, fact / operator / value / unit of each typed
  leaf, needs-review flag) beside the original eligibility text. An id that is not ``NCT`` and
  8 digits, or a trial not in the catalogue, answers 404 saying which.
* ``GET /patients/{public_id}/trials/{nct_id}`` (care team): that trial's criteria evaluated for
  the patient (met / not met / unknown with the evidence), by the trial matcher
  (:func:`actnav.trials.match.match_trial`) as of the evaluation date.

API: ``GET /api/trials`` and ``GET /api/trials/{nct_id}``.

Where trials come from: the trial store when it holds any trial, else the records bundled with
actnav (the same rule as :func:`actnav.trials.search.load_trial_index`, which the evaluation uses).
Criteria are parsed with :func:`actnav.trials.search.cached_parse` (cached on disk).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from actnav.knowledge.models import Criterion, Scalar
from actnav.store.accounts import audit
from actnav.store.trials import TrialRow, count_trials, get_trial
from actnav.trials.match import CTGOV_STUDY_URL
from actnav.trials.models import Intervention, Site, TrialRecord
from actnav.trials.parse import NEEDS_REVIEW, ParsedCriterion
from actnav.trials.recognition import MODALITIES, ActClassification
from actnav.web.deps import CurrentAccount, StaffAccount, patient_for, today, transaction
from actnav.web.routes.api import PROBLEMS
from actnav.web.templating import page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["trials"], responses=PROBLEMS)

NCT_ID = re.compile(r"^NCT\d{8}$")
PAGE_SIZE = 25
MAX_QUERY = 200
Source = Literal["database", "bundled"]
OPERATOR_TEXT: dict[str, str] = {
    "eq": "=",
    "ne": "≠",
    "lt": "<",
    "le": "≤",
    "gt": ">",
    "ge": "≥",
    "in": "is one of",
    "not_in": "is none of",
    "has_any": "has any of",
    "has_all": "has all of",
    "has_none": "has none of",
}


# ---------------------------------------------------------------------------------------------
# Response models
# ---------------------------------------------------------------------------------------------


class TrialSummary(BaseModel):
    """One trial in a search result."""

    nct_id: str
    title: str
    status: str | None = Field(description="Overall status, e.g. RECRUITING.")
    phases: list[str]
    conditions: list[str]
    interventions: list[str] = Field(description="Intervention names.")
    is_act: bool = Field(description="Adoptive cell therapy trial (actnav's classification).")
    modality: str | None
    targets: list[str]
    cell_source: str | None
    url: str = Field(description="The trial's ClinicalTrials.gov page.")


class TrialSearchOut(BaseModel):
    """A page of trials matching a search."""

    source: Source = Field(description="database: the trial store; bundled: actnav's offline records.")
    total: int = Field(description="Trials matching the search.")
    offset: int
    limit: int
    items: list[TrialSummary]


class LeafOut(BaseModel):
    """One leaf of a parsed criterion: a fact compared with a value, or a part to review."""

    id: str
    fact: str
    fact_description: str | None = Field(description="What the fact is (facts.yaml / trial-facts.yaml).")
    op: str
    value: Scalar | list[Scalar]
    unit: str | None = Field(description="UCUM unit of a number value.")
    negated: bool = Field(description="Under a NOT (an exclusion criterion is negated).")
    needs_review: bool = Field(description="Not read by actnav: a person must check it.")


class CriterionOut(BaseModel):
    """One eligibility criterion as written and as parsed."""

    index: int
    section: str = Field(description="inclusion, exclusion, or unknown (outside those headings).")
    heading: str | None
    parent: str | None
    population: str = Field(description="patient, or donor (not about the patient).")
    text: str = Field(description="The criterion as written (unescaped).")
    span: tuple[int, int] = Field(description="Characters of the criterion in the original text.")
    status: str = Field(description="typed (fully read), partial (typed parts and a part to review), review.")
    needs_review: bool
    expression: str = Field(description="The parsed tree in words (exclusions negated).")
    leaves: list[LeafOut]
    notes: list[str]


class TrialDetailOut(BaseModel):
    """One trial with its ACT classification and its parsed eligibility criteria."""

    source: Source
    url: str
    nct_id: str
    title: str
    official_title: str | None
    brief_summary: str
    overall_status: str | None
    phases: list[str]
    study_type: str | None
    conditions: list[str]
    keywords: list[str]
    interventions: list[Intervention]
    sponsor: str | None
    minimum_age_years: float | None
    maximum_age_years: float | None
    sex: str
    sites: list[Site]
    last_update: str | None
    classification: ActClassification
    eligibility_text: str = Field(description="The eligibility criteria as the registry gives them.")
    criteria: list[CriterionOut]
    counts: dict[str, int] = Field(description="Criteria by parse status: typed, partial, review.")


# ---------------------------------------------------------------------------------------------
# The catalogue: the trial store, else the bundled records
# ---------------------------------------------------------------------------------------------


@cache
def bundled_trials() -> dict[str, tuple[TrialRecord, ActClassification]]:
    """The records bundled with actnav and their ACT classification, by NCT id (read once).

    Raises:
        DataFileError: a bundled record is malformed (a broken installation).
    """
    from actnav.errors import DataFileError
    from actnav.trials.search import cached_classify
    from actnav.trials.sources import iter_bundled_records

    found: dict[str, tuple[TrialRecord, ActClassification]] = {}
    for result in iter_bundled_records():
        if result.problem is not None:
            raise DataFileError(result.problem.problem, where=str(result.problem))
        if result.record is not None:
            found[result.record.nct_id] = (result.record, cached_classify(result.record))
    return found


def _uses_store(session: Session) -> bool:
    total, _act = count_trials(session)
    return total > 0


def _summary(
    nct_id: str,
    title: str,
    status: str | None,
    phases: Iterable[str],
    conditions: Iterable[str],
    interventions: Iterable[str],
    classification: tuple[bool, str | None, Iterable[str], str | None],
) -> TrialSummary:
    is_act, modality, targets, cell_source = classification
    return TrialSummary(
        nct_id=nct_id,
        title=title,
        status=status,
        phases=list(phases),
        conditions=list(conditions),
        interventions=list(interventions),
        is_act=is_act,
        modality=modality,
        targets=list(targets),
        cell_source=cell_source,
        url=f"{CTGOV_STUDY_URL}{nct_id}",
    )


@dataclass(frozen=True)
class _Candidate:
    summary: TrialSummary
    words: str  # casefolded title, official title, conditions and interventions


def _words(*parts: Iterable[str] | str | None) -> str:
    texts: list[str] = []
    for part in parts:
        if part is None:
            continue
        texts.extend([part] if isinstance(part, str) else part)
    return " ".join(texts).casefold()


def _intervention_names(items: Iterable[Any]) -> tuple[list[str], list[str]]:
    """(names, names and other names) of stored interventions (JSON objects)."""
    names: list[str] = []
    every: list[str] = []
    for item in items or ():
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            names.append(item["name"])
            every.append(item["name"])
            every.extend(n for n in item.get("other_names") or () if isinstance(n, str))
    return names, every


def _store_candidates(
    session: Session, statuses: Sequence[str], modality: str | None, act_only: bool
) -> list[_Candidate]:
    doc = TrialRow.record_json
    query = select(
        TrialRow.nct_id,
        TrialRow.title,
        TrialRow.status,
        TrialRow.is_act,
        TrialRow.modality,
        TrialRow.targets,
        TrialRow.cell_source,
        doc["official_title"],
        doc["phases"],
        doc["conditions"],
        doc["interventions"],
    ).order_by(TrialRow.nct_id)
    if act_only:
        query = query.where(TrialRow.is_act.is_(True))
    if modality:
        query = query.where(TrialRow.modality == modality)
    if statuses:
        query = query.where(TrialRow.status.in_(list(statuses)))
    found: list[_Candidate] = []
    for (
        nct_id,
        title,
        status,
        is_act,
        mod,
        targets,
        source,
        official,
        phases,
        conditions,
        items,
    ) in session.execute(query):
        names, every = _intervention_names(items or ())
        conditions = [c for c in conditions or () if isinstance(c, str)]
        summary = _summary(
            nct_id,
            title,
            status,
            [p for p in phases or () if isinstance(p, str)],
            conditions,
            names,
            (bool(is_act), mod, targets or (), source),
        )
        official_title = official if isinstance(official, str) else None
        found.append(_Candidate(summary, _words(title, official_title, conditions, every)))
    return found


def _bundled_candidates(statuses: Sequence[str], modality: str | None, act_only: bool) -> list[_Candidate]:
    found: list[_Candidate] = []
    for nct_id in sorted(bundled_trials()):
        record, act = bundled_trials()[nct_id]
        if act_only and not act.is_act:
            continue
        if modality and act.modality != modality:
            continue
        if statuses and record.overall_status not in statuses:
            continue
        every = [n for i in record.interventions for n in (i.name, *i.other_names)]
        summary = _summary(
            nct_id,
            record.title,
            record.overall_status,
            record.phases,
            record.conditions,
            [i.name for i in record.interventions],
            (act.is_act, act.modality, act.targets, act.cell_source),
        )
        found.append(
            _Candidate(summary, _words(record.title, record.official_title, record.conditions, every))
        )
    return found


def search_trials(
    session: Session,
    *,
    query: str = "",
    statuses: Sequence[str] = (),
    modality: str | None = None,
    act_only: bool = False,
    offset: int = 0,
    limit: int = PAGE_SIZE,
) -> TrialSearchOut:
    """Trials whose title, official title, conditions or interventions contain every word of
    ``query`` (case ignored), filtered by status, modality and ACT, in NCT id order.

    Args:
        session: an open session (the trial store is read when it holds any trial).
        query: words to look for; empty for every trial.
        statuses: keep these overall statuses (upper case); empty for all.
        modality: keep this ACT modality (``CAR-T``, ``TCR-T``, ``TIL``...); None for all.
        act_only: keep adoptive cell therapy trials only.
        offset, limit: the page.

    Returns:
        The page of trials, the total and where they came from.
    """
    statuses = [s.strip().upper() for s in statuses if s.strip()]
    if _uses_store(session):
        source: Source = "database"
        candidates = _store_candidates(session, statuses, modality, act_only)
    else:
        source = "bundled"
        candidates = _bundled_candidates(statuses, modality, act_only)
    words = query.casefold().split()
    hits = [c.summary for c in candidates if all(w in c.words for w in words)]
    return TrialSearchOut(
        source=source, total=len(hits), offset=offset, limit=limit, items=hits[offset : offset + limit]
    )


@dataclass(frozen=True)
class FoundTrial:
    """One trial of the catalogue, with its classification and where it came from."""

    record: TrialRecord
    classification: ActClassification
    source: Source


def find_trial(session: Session, nct_id: str) -> FoundTrial:
    """The trial ``nct_id`` from the catalogue (the store when it holds any trial, else bundled).

    Raises:
        HTTPException: 404 when the id is not ``NCT`` and 8 digits, or no such trial is held.
    """
    wanted = nct_id.strip().upper()
    if not NCT_ID.match(wanted):
        raise HTTPException(
            status_code=404, detail=f"{nct_id[:40]!r} is not a ClinicalTrials.gov id (NCT and 8 digits)"
        )
    if _uses_store(session):
        row = get_trial(session, wanted)
        if row is not None:
            return FoundTrial(row.to_record(), row.classification(), "database")
        where = "the trial database"
    else:
        hit = bundled_trials().get(wanted)
        if hit is not None:
            return FoundTrial(hit[0], hit[1], "bundled")
        where = "the trial records bundled with actnav"
    raise HTTPException(status_code=404, detail=f"{wanted} is not in {where}")


# ---------------------------------------------------------------------------------------------
# Parsed criteria, for people
# ---------------------------------------------------------------------------------------------


@cache
def _fact_descriptions() -> dict[str, str]:
    from actnav.knowledge.loader import load_facts
    from actnav.trials.parse import trial_facts

    described = {fid: f.description for fid, f in load_facts().items()}
    described.update({f.id: f.description for f in trial_facts().facts})
    return described


def _value_text(value: Scalar | tuple[Scalar, ...] | list[Scalar] | None) -> str:
    if isinstance(value, tuple | list):
        return ", ".join(_value_text(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def expression(node: Criterion) -> str:
    """A criterion tree in words: ``NOT (anc < 1 10*9/L)``, ``a AND b``, ``needs review``."""
    if node.fact is not None:
        if node.fact == NEEDS_REVIEW:
            return "needs review"
        unit = f" {node.unit}" if node.unit else ""
        return (
            f"{node.fact} {OPERATOR_TEXT.get(node.op or '', node.op or '')} {_value_text(node.value)}{unit}"
        )
    if node.not_ is not None:
        return f"NOT ({expression(node.not_)})"
    joiner = " AND " if node.all_of is not None else " OR "
    parts = [expression(child) for child in node.children]
    return joiner.join(f"({p})" if (" AND " in p or " OR " in p) else p for p in parts)


def _leaves(node: Criterion, negated: bool = False) -> list[LeafOut]:
    if node.fact is not None:
        value = node.value
        return [
            LeafOut(
                id=node.id,
                fact=node.fact,
                fact_description=_fact_descriptions().get(node.fact),
                op=node.op or "",
                value=list(value) if isinstance(value, tuple) else (value if value is not None else ""),
                unit=node.unit,
                negated=negated,
                needs_review=node.fact == NEEDS_REVIEW,
            )
        ]
    if node.not_ is not None:
        return _leaves(node.not_, not negated)
    return [leaf for child in node.children for leaf in _leaves(child, negated)]


def criterion_out(parsed: ParsedCriterion) -> CriterionOut:
    """A parsed criterion for the page and the API."""
    ct = parsed.source
    leaves = _leaves(parsed.criterion)
    return CriterionOut(
        index=ct.index,
        section=ct.section,
        heading=ct.heading,
        parent=ct.parent,
        population=ct.population,
        text=ct.text,
        span=ct.span,
        status=parsed.status,
        needs_review=parsed.status != "typed" or any(leaf.needs_review for leaf in leaves),
        expression=expression(parsed.criterion),
        leaves=leaves,
        notes=list(parsed.notes),
    )


def trial_detail(found: FoundTrial) -> TrialDetailOut:
    """A trial with its parsed criteria (parsing is cached on disk; the first parse of a text
    takes a few seconds while the language pipeline loads)."""
    from actnav.trials.search import cached_parse

    record = found.record
    criteria = (
        [criterion_out(p) for p in cached_parse(record.eligibility_text)] if record.eligibility_text else []
    )
    counts = {status: sum(c.status == status for c in criteria) for status in ("typed", "partial", "review")}
    return TrialDetailOut(
        source=found.source,
        url=f"{CTGOV_STUDY_URL}{record.nct_id}",
        nct_id=record.nct_id,
        title=record.title,
        official_title=record.official_title,
        brief_summary=record.brief_summary,
        overall_status=record.overall_status,
        phases=list(record.phases),
        study_type=record.study_type,
        conditions=list(record.conditions),
        keywords=list(record.keywords),
        interventions=list(record.interventions),
        sponsor=record.sponsor,
        minimum_age_years=record.minimum_age_years,
        maximum_age_years=record.maximum_age_years,
        sex=record.sex,
        sites=list(record.sites),
        last_update=record.last_update.isoformat() if record.last_update else None,
        classification=found.classification,
        eligibility_text=record.eligibility_text,
        criteria=criteria,
        counts=counts,
    )


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------

QueryText = Annotated[
    str, Query(max_length=MAX_QUERY, description="Words in the title, conditions or interventions.")
]
StatusFilter = Annotated[
    list[str] | None,
    Query(max_length=20, description="Overall statuses to keep (e.g. RECRUITING); repeat for several."),
]
ModalityFilter = Annotated[
    Literal["CAR-T", "TCR-T", "TIL", "CAR-NK/NK", "other cell therapy", ""] | None,
    Query(description="Keep this adoptive cell therapy modality."),
]
NctPath = Annotated[str, Path(max_length=40, description="The trial's NCT id, e.g. NCT03391466.")]


def _statuses(values: list[str] | None) -> list[str]:
    return [v[:40] for v in values or () if v.strip()]


@pages.get("/trials")
def trial_search_page(
    request: Request,
    account: CurrentAccount,
    q: QueryText = "",
    status: StatusFilter = None,
    modality: ModalityFilter = None,
    act_only: Annotated[bool, Query()] = False,
    page_number: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
) -> Response:
    from actnav.trials.ctgov import OVERALL_STATUSES

    statuses = _statuses(status)
    with transaction(request) as session:
        found = search_trials(
            session,
            query=q,
            statuses=statuses,
            modality=modality or None,
            act_only=act_only,
            offset=(page_number - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
    pages_total = max(1, math.ceil(found.total / PAGE_SIZE))
    base: dict[str, str | list[str]] = {
        "q": q,
        "status": statuses,
        "modality": modality or "",
        "act_only": "true" if act_only else "",
    }
    return page(
        request,
        "trials/search.html.j2",
        title="Trials",
        active="trials",
        found=found,
        q=q,
        statuses=statuses,
        modality=modality or "",
        act_only=act_only,
        page_number=page_number,
        pages_total=pages_total,
        page_link=lambda n: _link("/trials", {**base, "page": str(n)}),
        all_statuses=OVERALL_STATUSES,
        modalities=MODALITIES,
    )


def _link(path: str, params: dict[str, str | list[str]]) -> str:
    from urllib.parse import urlencode

    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            if item:
                pairs.append((key, item))
    return f"{path}?{urlencode(pairs)}" if pairs else path


@pages.get("/trials/{nct_id}")
def trial_page(request: Request, nct_id: NctPath, account: CurrentAccount) -> Response:
    with transaction(request) as session:
        found = find_trial(session, nct_id)
    detail = trial_detail(found)
    return page(
        request,
        "trials/detail.html.j2",
        title=f"{detail.nct_id}: {detail.title}",
        active="trials",
        t=detail,
        operator_text=OPERATOR_TEXT,
        value_text=_value_text,
    )


@pages.get("/patients/{public_id}/trials/{nct_id}")
def patient_trial_page(
    request: Request,
    public_id: Annotated[str, Path(max_length=24)],
    nct_id: NctPath,
    account: StaffAccount,
) -> Response:
    from actnav.eligibility.facts import PatientFacts
    from actnav.knowledge.loader import load_facts
    from actnav.patient.fhir import patient_from_bundle
    from actnav.trials.match import match_trial
    from actnav.trials.search import cached_parse

    as_of = today(request)
    with transaction(request) as session:
        row = patient_for(session, account, public_id)
        found = find_trial(session, nct_id)
        audit(session, account, "view", "trial_match", found.record.nct_id, patient_id=row.id)
        label, bundle = row.label, row.bundle
    patient = patient_from_bundle(bundle, as_of=as_of)
    facts = PatientFacts(patient, as_of, load_facts())
    criteria = cached_parse(found.record.eligibility_text) if found.record.eligibility_text else ()
    match = match_trial(facts, found.record, criteria, found.classification)
    return page(
        request,
        "trials/patient.html.j2",
        title=f"{match.nct_id} for {label}",
        active="patients",
        patient_tabs={"label": label, "public_id": public_id, "active": "evaluation"},
        public_id=public_id,
        m=match,
        as_of=as_of,
        source=found.source,
    )


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


@api.get("/trials", response_model=TrialSearchOut)
def list_trials_api(
    request: Request,
    account: CurrentAccount,
    q: QueryText = "",
    status: StatusFilter = None,
    modality: ModalityFilter = None,
    act_only: Annotated[bool, Query(description="Adoptive cell therapy trials only.")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TrialSearchOut:
    """Search the trials (the trial store when it holds any, else the bundled records): words of
    ``q`` in the title, conditions or interventions; status, modality and ACT filters; paged."""
    with transaction(request) as session:
        return search_trials(
            session,
            query=q,
            statuses=_statuses(status),
            modality=modality or None,
            act_only=act_only,
            offset=offset,
            limit=limit,
        )


@api.get("/trials/{nct_id}", response_model=TrialDetailOut)
def get_trial_api(request: Request, nct_id: NctPath, account: CurrentAccount) -> TrialDetailOut:
    """One trial: record, ACT classification with evidence, eligibility text and parsed criteria.
    404 when the id is not an NCT id or the trial is not held."""
    with transaction(request) as session:
        found = find_trial(session, nct_id)
    return trial_detail(found)


router = APIRouter()
router.include_router(pages)
router.include_router(api)
