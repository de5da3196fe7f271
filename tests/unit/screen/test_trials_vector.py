"""The vectorised screen gives the trial matcher's verdicts, scores and unknowns for every bundled trial.

Expected values come from :func:`actnav.trials.match.match_trial` (what ``actnav trials match``
shows for each trial, no location) on the records as the bundled file gives them, parsed and
classified by the matcher's own cached functions.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from actnav.eligibility.engine import CriterionResult, Result
from actnav.eligibility.facts import PatientFacts
from actnav.knowledge.loader import load_knowledge
from actnav.knowledge.models import Criterion
from actnav.patient.fhir import patient_from_bundle
from actnav.patient.models import PatientRecord
from actnav.screen.records import record_from_resources
from actnav.screen.synthetic import generate
from actnav.screen.vector import ScreenPlan, bundled_trials, select_trials, targets_version
from actnav.trials.match import TrialIndex, match_trial, patient_profile, score, structured_criteria
from actnav.trials.models import TrialRecord
from actnav.trials.parse import ParsedCriterion
from actnav.trials.recognition import ActClassification
from actnav.trials.search import cached_classify, cached_parse
from actnav.trials.sources import iter_bundled_records

AS_OF = date(2026, 11, 29)
EXAMPLES = sorted((Path(__file__).parents[3] / "examples" / "patients").glob("*.json"))
Key = tuple[str, str]
Row = tuple[str, float, list[str]]


def _unknown_facts(node: Criterion, result: CriterionResult) -> set[str]:
    """Facts of the unknown leaves reached through unknown nodes (walking both trees)."""
    if result.result is not Result.UNKNOWN:
        return set()
    if node.fact is not None:
        return {node.fact}
    return {f for n, r in zip(node.children, result.children, strict=True) for f in _unknown_facts(n, r)}


@pytest.fixture(scope="module")
def trials() -> list[tuple[TrialRecord, ActClassification, tuple[ParsedCriterion, ...]]]:
    out = []
    for item in iter_bundled_records():
        assert item.record is not None
        record = item.record
        out.append((record, cached_classify(record), cached_parse(record.eligibility_text)))
    return out


def _expected(records: list[PatientRecord], trials: list[tuple[TrialRecord, ActClassification, tuple[ParsedCriterion, ...]]]) -> dict[Key, Row]:  # fmt: skip
    kb = load_knowledge()
    out: dict[Key, Row] = {}
    for record in records:
        facts = PatientFacts(record, AS_OF, kb.facts)
        profile = patient_profile(facts, kb)
        for trial, classification, criteria in trials:
            match = match_trial(facts, trial, criteria, classification, profile=profile)
            trees = [*structured_criteria(trial), *(pc.criterion for pc in criteria)]
            unknown: set[str] = set()
            if match.verdict.value == "needs_information":
                for node, row in zip(trees, match.criteria, strict=True):
                    if row.counted:
                        unknown |= _unknown_facts(node, row.result)
            out[(record.id, trial.nct_id)] = (match.verdict.value, match.score, sorted(unknown))
    return out


def _screen(records: list[PatientRecord]) -> pa.Table:
    plan = ScreenPlan(load_knowledge(), AS_OF, bundled_trials())
    return plan.evaluate(plan.fact_table(records), [r.id for r in records])


def _trial_rows(table: pa.Table) -> dict[Key, Row]:
    return {
        (r["patient"], r["target"]): (r["verdict"], r["score"], r["unknowns"])
        for r in table.to_pylist()
        if r["kind"] == "trial"
    }


def test_every_bundled_trial_is_a_target(trials: list[tuple[TrialRecord, ActClassification, tuple[ParsedCriterion, ...]]]) -> None:  # fmt: skip
    # SOURCE.md of data/trials/bundled: 59 records (56 ACT trials, 3 API v2 samples).
    ids = [t.id for t in bundled_trials()]
    assert len(ids) == 59 == len(set(ids))
    assert ids == sorted(record.nct_id for record, _, _ in trials)


def test_examples_equal_trial_matcher(trials: list[tuple[TrialRecord, ActClassification, tuple[ParsedCriterion, ...]]]) -> None:  # fmt: skip
    records = [patient_from_bundle(json.loads(p.read_text()), as_of=AS_OF) for p in EXAMPLES]
    assert len(records) == 15
    table = _screen(records)
    assert _trial_rows(table) == _expected(records, trials)
    # Product indications are screened in the same table, kind "indication" (20 in force).
    kinds = table.column("kind").to_pylist()
    assert kinds.count("indication") == 15 * 20
    assert kinds.count("trial") == 15 * 59


def _ranked(records: list[PatientRecord], trials: list[tuple[TrialRecord, ActClassification, tuple[ParsedCriterion, ...]]]) -> dict[Key, tuple[str, float]]:  # fmt: skip
    """Verdict and score of every trial as ``actnav trials match`` ranks them (no location)."""
    kb = load_knowledge()
    index = TrialIndex.build([(t, c) for t, c, _ in trials], parse=cached_parse)
    out: dict[Key, tuple[str, float]] = {}
    for record in records:
        facts = PatientFacts(record, AS_OF, kb.facts)
        ranked = index.rank(facts, profile=patient_profile(facts, kb))
        for position, trial in enumerate(index.trials):
            verdict = ranked.verdict(position)
            out[(record.id, trial.record.nct_id)] = (
                verdict.value,
                score(verdict, float(ranked.relevance[position])),
            )
    return out


def test_synthetic_sample_equals_trial_matcher(trials: list[tuple[TrialRecord, ActClassification, tuple[ParsedCriterion, ...]]]) -> None:  # fmt: skip
    records = [record_from_resources(r, as_of=AS_OF) for r in generate(240, seed=5, as_of=AS_OF)]
    screened = _trial_rows(_screen(records))
    assert len(screened) == 240 * 59
    # Every patient: verdict and score as the ranking of rank_trials gives them.
    assert {k: (v, s) for k, (v, s, _) in screened.items()} == _ranked(records, trials)
    # Every patient in full: verdict, score and unknowns of match_trial.
    assert screened == _expected(records, trials)
    verdicts = {v for v, _, _ in screened.values()}
    assert {"needs_information", "not_eligible"} <= verdicts
    # Relevance is exercised: needs-information scores spread over the 35-65 band.
    assert len({s for v, s, _ in screened.values() if v == "needs_information"}) >= 4


def test_deceased_patient_is_not_eligible_for_any_trial(trials: list[tuple[TrialRecord, ActClassification, tuple[ParsedCriterion, ...]]]) -> None:  # fmt: skip
    record = patient_from_bundle(json.loads(EXAMPLES[0].read_text()), as_of=AS_OF)
    dead = record.model_copy(update={"deceased": True})
    screened = _trial_rows(_screen([dead]))
    assert {v for v, _, _ in screened.values()} == {"not_eligible"}
    assert screened == _expected([dead], trials)


def test_select_trials_by_status() -> None:
    records = [patient_from_bundle(json.loads(EXAMPLES[0].read_text()), as_of=AS_OF)]
    table = _screen(records)
    statuses = {t.id: t.status for t in bundled_trials()}
    recruiting = select_trials(table, "recruiting")
    kept = {r["target"] for r in recruiting.to_pylist() if r["kind"] == "trial"}
    # ClinicalTrials.gov recruiting statuses (actnav.trials.geo.RECRUITING_SITE_STATUSES).
    assert kept == {
        t for t, s in statuses.items() if s in ("RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION")
    }
    assert kept and len(kept) < 59
    none = select_trials(table, "none")
    assert set(none.column("kind").to_pylist()) == {"indication"}
    assert select_trials(table, "all").equals(table)


def test_targets_version_is_stable() -> None:
    assert targets_version() == targets_version()
    assert len(targets_version()) == 32
