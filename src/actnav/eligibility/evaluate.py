"""Evaluate one patient against every approved product label, the pivotal-trial fitness
criteria and the work-up: the main job of actnav.

Verdict rule for an indication (its criteria, its limitations of use, and the product's
contraindications, all required):

* ``not_eligible`` when any criterion is not met (the reasons name them);
* ``needs_information`` when none failed but some are unknown (the reasons say what is needed);
* ``eligible`` when all are met.

Only the label revision in force on ``as_of`` is used. Work-up items come from the unknowns of
indications that are still possible (not ``not_eligible``) and of the fitness criteria of those
products' pivotal trials, so a melanoma patient is not sent for HLA typing for a sarcoma label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

from actnav import __version__
from actnav.eligibility.engine import CriterionResult, Result, SourceInfo, evaluate, source_info
from actnav.eligibility.facts import PatientFacts
from actnav.eligibility.report_model import (
    Evaluation,
    FitnessResult,
    IndicationResult,
    PatientSummary,
    ProductNote,
    ProductResult,
    Verdict,
    WorkupItemResult,
)
from actnav.knowledge.loader import Knowledge, load_knowledge
from actnav.knowledge.models import Criterion, Indication, Product, Reference, SourceRef
from actnav.patient.models import PatientRecord

WorkupFor = Callable[[str], str]

DISCLAIMER = (
    "actnav supports clinicians; it does not replace them. Verdicts are computed from the "
    "record as given and the product labels and trial criteria cited beside each criterion. "
    "Criteria marked unknown could not be decided from the record; facts marked unconfirmed "
    "(verification R or U) must be checked against the current label. Confirm every decision "
    "with the full prescribing information and the treating team."
)

DECEASED_REASON = "The patient is recorded as deceased"


def evaluate_patient(
    patient: PatientRecord, *, as_of: date, knowledge: Knowledge | None = None
) -> Evaluation:
    """Evaluate a patient on a date.

    Args:
        patient: the record (from :func:`actnav.patient.fhir.read_bundle`).
        as_of: the evaluation date: age, currency of results and label revision are taken here.
        knowledge: the clinical knowledge (default: the packaged files).

    Returns:
        The full :class:`Evaluation` report.

    Raises:
        DataFileError: a packaged data file is invalid (only on first load).
    """
    kb = knowledge or load_knowledge()
    facts = PatientFacts(patient, as_of, kb.facts)

    def workup_for(fact_id: str) -> str:
        return kb.facts[fact_id].workup

    products = [_evaluate_product(p, facts, workup_for, as_of) for p in kb.products]
    # (product, disease) of every indication still possible: a pivotal trial's fitness criteria
    # are shown only beside those (JULIET is not shown for an ALL patient).
    possible = {
        (pr.id, i.disease) for pr in products for i in pr.indications if i.verdict is not Verdict.NOT_ELIGIBLE
    }
    fitness = [
        _evaluate_fitness_trial(
            trial.id,
            trial.trial,
            trial.nct_id,
            trial.products,
            trial.criteria,
            facts,
            kb.fitness.references,
            workup_for,
            _source(trial.source, kb.fitness.references),
        )
        for trial in kb.fitness.trials
        if any(
            pid in trial.products and (not trial.diseases or disease in trial.diseases)
            for pid, disease in possible
        )
    ]
    trees: list[tuple[str, CriterionResult]] = []
    for pr in products:
        for ind in pr.indications:
            if ind.verdict is not Verdict.NOT_ELIGIBLE:
                trees += [(f"{pr.id}/{ind.id}/{c.id}", c) for c in ind.criteria]
    for fr in fitness:
        trees += [(f"{fr.id}/{c.id}", c) for c in fr.criteria]
    workup = _workup(trees, kb)

    return Evaluation(
        as_of=as_of,
        generated_by=f"actnav {__version__}",
        patient=_summary(patient, facts),
        summary=_summary_lines(patient, products, as_of),
        products=products,
        fitness=fitness,
        workup=workup,
        knowledge_version=max(p.version for p in kb.products),
        disclaimer=DISCLAIMER,
    )


def _evaluate_product(
    product: Product, facts: PatientFacts, workup_for: WorkupFor, as_of: date
) -> ProductResult:
    approved = product.first_approval <= as_of
    indications = [
        _evaluate_indication(product, ind, facts, workup_for)
        for ind in product.indications
        if approved and ind.in_force(as_of)
    ]
    notes = [
        ProductNote(kind=kind, text=item.text, source=_source(item.source, product.references))
        for kind, items in (
            ("boxed_warning", product.boxed_warnings),
            ("monitoring", product.monitoring),
            ("rems", product.rems),
        )
        for item in items
        if item.in_force(as_of)
    ]
    return ProductResult(
        product=product.id.replace("_", " "),
        id=product.id,
        brand=product.brand,
        modality=product.modality,
        target=product.target,
        approved_on_as_of=approved,
        indications=indications,
        notes=notes,
    )


def _evaluate_indication(
    product: Product, ind: Indication, facts: PatientFacts, workup_for: WorkupFor
) -> IndicationResult:
    trees: Iterable[Criterion] = (*ind.criteria, *ind.limitations_of_use, *product.contraindications)
    results = [evaluate(c, facts, product.references, workup_for) for c in trees]
    verdict, reasons = _verdict(results)
    if facts.patient.deceased:
        verdict, reasons = Verdict.NOT_ELIGIBLE, [_deceased_reason(facts.patient), *reasons]
    return IndicationResult(
        id=ind.id,
        name=ind.name,
        disease=ind.disease,
        label_revision=ind.label_revision,
        effective_from=ind.effective_from,
        approval=ind.approval,
        verdict=verdict,
        reasons=reasons,
        criteria=results,
        unconfirmed=any(r.unconfirmed for r in results),
        source=_source(ind.source, product.references),
    )


def _evaluate_fitness_trial(
    trial_id: str,
    trial: str,
    nct_id: str | None,
    products: tuple[str, ...],
    criteria: tuple[Criterion, ...],
    facts: PatientFacts,
    references: dict[str, Reference],
    workup_for: WorkupFor,
    source: SourceInfo,
) -> FitnessResult:
    results = [evaluate(c, facts, references, workup_for) for c in criteria]
    verdict, _ = _verdict(results)
    return FitnessResult(
        id=trial_id,
        trial=trial,
        nct_id=nct_id,
        products=list(products),
        summary=verdict,
        criteria=results,
        source=source,
    )


def _verdict(results: list[CriterionResult]) -> tuple[Verdict, list[str]]:
    failed = [r for r in results if r.result is Result.NOT_MET]
    if failed:
        return Verdict.NOT_ELIGIBLE, [f"{r.text}: not met{_because(r)}" for r in failed]
    unknown = [r for r in results if r.result is Result.UNKNOWN]
    if unknown:
        return Verdict.NEEDS_INFORMATION, [f"{r.text}: {r.needs or 'unknown'}" for r in unknown]
    return Verdict.ELIGIBLE, []


def _because(result: CriterionResult) -> str:
    """A short evidence summary for a failed criterion (' (age 34 a)')."""
    parts = []
    for ev in result.evidence[:3]:
        if ev.value is None:
            continue
        value = str(ev.value)
        if len(value) > 80:  # a long diagnosis text: the criterion below shows it whole
            value = value[:79].rstrip() + "…"
        parts.append(value + (f" {ev.unit}" if ev.unit else ""))
    return f" (found: {'; '.join(parts)})" if parts else ""


def _deceased_reason(patient: PatientRecord) -> str:
    when = f" ({patient.deceased_date.isoformat()})" if patient.deceased_date else ""
    return DECEASED_REASON + when


def _source(ref: SourceRef, references: dict[str, Reference]) -> SourceInfo:
    info = source_info(ref, references)
    assert info is not None
    return info


def _workup(trees: list[tuple[str, CriterionResult]], kb: Knowledge) -> list[WorkupItemResult]:
    settles: dict[str, list[str]] = {}
    for path, tree in trees:
        for node in _unknown_leaves(tree):
            for item in node.workup:
                settles.setdefault(item, [])
                criterion = path if node is tree else f"{path}/{node.id}"
                if criterion not in settles[item]:
                    settles[item].append(criterion)
    return workup_items(settles, kb)


def workup_items(settles: dict[str, list[str]], kb: Knowledge) -> list[WorkupItemResult]:
    """Work-up items (by id) with the criteria each settles, in the catalogue's step order."""
    order = list(kb.workup.steps)
    items: list[WorkupItemResult] = []
    item_order = [w.id for w in kb.workup.items]
    for item_id, criteria in settles.items():
        entry = kb.workup_item(item_id)
        items.append(
            WorkupItemResult(
                id=entry.id,
                step=entry.step,
                step_name=kb.workup.steps[entry.step],
                text=entry.text,
                settles=criteria,
            )
        )
    items.sort(key=lambda i: (order.index(i.step), item_order.index(i.id)))  # type: ignore[arg-type]
    return items


def unknown_leaves(node: CriterionResult) -> list[CriterionResult]:
    """The unknown leaves under an unknown result (what the work-up must settle)."""
    return _unknown_leaves(node)


def _unknown_leaves(node: CriterionResult) -> list[CriterionResult]:
    if node.result is not Result.UNKNOWN:
        return []
    if not node.children:
        return [node]
    return [leaf for child in node.children for leaf in _unknown_leaves(child)]


def _summary(patient: PatientRecord, facts: PatientFacts) -> PatientSummary:
    age = facts("age_years").value
    lines = facts("prior_lines")
    return PatientSummary(
        id=patient.id,
        age_years=int(age) if isinstance(age, float) else 0,
        sex=patient.sex,
        deceased=patient.deceased,
        deceased_date=patient.deceased_date,
        diagnoses=[d.text for d in patient.diagnoses],
        prior_lines=int(lines.value) if isinstance(lines.value, float) else None,
        skipped_resources=dict(patient.skipped),
        notes=list(patient.notes),
    )


def _summary_lines(patient: PatientRecord, products: list[ProductResult], as_of: date) -> list[str]:
    lines: list[str] = []
    if patient.deceased:
        lines.append(f"{_deceased_reason(patient)}: shown for reference only.")
    for verdict, label in ((Verdict.ELIGIBLE, "Eligible"), (Verdict.NEEDS_INFORMATION, "Needs information")):
        for pr in products:
            for ind in pr.indications:
                if ind.verdict is verdict:
                    lines.append(f"{label}: {pr.product} ({pr.brand}) for {ind.name}")
    if not any(ind.verdict is not Verdict.NOT_ELIGIBLE for pr in products for ind in pr.indications):
        lines.append(f"No approved product's label fits on {as_of.isoformat()}.")
    return lines
