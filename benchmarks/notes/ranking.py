"""Pure helpers of the trial-ranking benchmark (issue 7, item 4b): topics, judgments, measures.

The topics are the patient descriptions of TREC Clinical Trials 2021 and 2022 and SIGIR 2016 as
distributed with TrialGPT (``../shared/data/trialgpt-benchmarks/<set>/queries.jsonl``); the
judgments are their graded qrels (``<set>/qrels/test.tsv``: 0 not relevant or excluded, 1 relevant
but excluded, 2 eligible). Only judgments of trials actnav holds (the bundled records) can be used:
:func:`usable_judgments` intersects them.

Measures (computed with ``ir-measures``, which calls trec_eval through ``pytrec-eval-terrier``):

* NDCG@10 - Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS
  20(4), 2002; trec_eval's ``ndcg_cut.10``: gain = the grade (0, 1, 2), discount 1/log2(rank + 1),
  normalised by the ideal ordering of the judged trials we hold (not of every trial TREC judged).
* P@10 - share of the first ten places held by a trial judged relevant: grade >= 1 (``P@10``) and,
  stricter, grade 2 only (``P(rel=2)@10``). Fewer than ten trials still divides by ten.

Each is reported two ways: over the full ranking, an unjudged trial counting as not relevant, and
over the condensed list (Sakai, "Alternatives to bpref", SIGIR 2007): the ranking with every
unjudged trial removed, judged trials keeping their relative order.

A topic whose usable judgments are all 0 has no ideal gain: its NDCG is undefined (``None`` here;
trec_eval would print 0) and it is left out of the means of NDCG.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actnav.patient.notes.model import NoteExtraction

SETS = ("trec_2021", "trec_2022", "sigir")
CUTOFF = 10
GRADES = (0, 1, 2)
ICD10CM_URI = "http://hl7.org/fhir/sid/icd-10-cm"


@dataclass(frozen=True)
class Topic:
    """One patient description: ``id`` (``trec-202117``), its ``set`` (``trec_2021``) and ``text``."""

    id: str
    set: str
    text: str


def load_topics(benchmarks: Path) -> dict[str, Topic]:
    """Every topic of the three sets, by id.

    Args:
        benchmarks: the ``trialgpt-benchmarks`` folder.
    """
    topics: dict[str, Topic] = {}
    for name in SETS:
        lines = (benchmarks / name / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        for line in lines:
            if line.strip():
                row = json.loads(line)
                topics[row["_id"]] = Topic(row["_id"], name, row["text"])
    return topics


def load_qrels(benchmarks: Path) -> dict[str, dict[str, int]]:
    """Every judgment of the three sets: topic id -> NCT id -> grade (0, 1 or 2)."""
    qrels: dict[str, dict[str, int]] = {}
    for name in SETS:
        with (benchmarks / name / "qrels" / "test.tsv").open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def usable_judgments(
    qrels: Mapping[str, Mapping[str, int]], held: Iterable[str]
) -> dict[str, dict[str, int]]:
    """The judgments of trials we hold, for topics with at least one: topic -> NCT id -> grade.

    Topics in id order (set year, then number); trials in NCT id order.
    """
    have = set(held)
    out: dict[str, dict[str, int]] = {}
    for topic in sorted(qrels, key=topic_sort_key):
        found = {nct: g for nct, g in sorted(qrels[topic].items()) if nct in have}
        if found:
            out[topic] = found
    return out


def topic_sort_key(topic_id: str) -> tuple[str, int, int]:
    """``trec-202117`` -> ("trec", 2021, 17); ``sigir-201525`` -> ("sigir", 2015, 25)."""
    prefix, digits = topic_id.split("-", 1)
    return prefix, int(digits[:4]), int(digits[4:])


def grade_counts(judged: Mapping[str, int]) -> dict[int, int]:
    """How many judged trials have each grade: ``{0: n0, 1: n1, 2: n2}``."""
    return {g: sum(1 for v in judged.values() if v == g) for g in GRADES}


def condensed(order: Sequence[str], judged: Mapping[str, int]) -> list[str]:
    """The ranking without unjudged trials (Sakai 2007), judged trials in their order."""
    return [nct for nct in order if nct in judged]


def ranks(order: Sequence[str], wanted: Iterable[str]) -> dict[str, int | None]:
    """1-based rank of each wanted NCT id in ``order`` (None when it is not ranked)."""
    position = {nct: i + 1 for i, nct in enumerate(order)}
    return {nct: position.get(nct) for nct in wanted}


@dataclass(frozen=True)
class Scores:
    """Measures of one ranking for one topic (None: undefined, no relevant judged trial).

    ``p10`` counts grade >= 1 as relevant, ``p10_eligible`` grade 2 only.
    """

    ndcg10: float | None
    p10: float
    p10_eligible: float


def score(order: Sequence[str], judged: Mapping[str, int], *, k: int = CUTOFF) -> Scores:
    """NDCG@k and P@k of a ranking (best first) against graded judgments, with ir-measures.

    Args:
        order: NCT ids best first; ties must already be broken (the order is the ranking).
        judged: NCT id -> grade for the trials of the corpus that were judged.
        k: the cutoff.
    """
    import ir_measures
    from ir_measures import P, nDCG

    # trec_eval orders by score (ties by document id): give strictly decreasing scores.
    run = {"t": {nct: float(len(order) - i) for i, nct in enumerate(order)}}
    qrels = {"t": dict(judged)}
    ndcg, p1, p2 = nDCG @ k, P(rel=1) @ k, P(rel=2) @ k
    values = {m.measure: m.value for m in ir_measures.iter_calc([ndcg, p1, p2], qrels, run)}
    relevant = any(g >= 1 for g in judged.values())
    return Scores(
        ndcg10=float(values.get(ndcg, 0.0)) if relevant else None,
        p10=float(values.get(p1, 0.0)),
        p10_eligible=float(values.get(p2, 0.0)),
    )


def score_both(order: Sequence[str], judged: Mapping[str, int]) -> dict[str, Scores]:
    """``{"full": ..., "condensed": ...}``: unjudged as not relevant, and judged trials only."""
    return {"full": score(order, judged), "condensed": score(condensed(order, judged), judged)}


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (None when there are none)."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def gold_extraction(topic: Any, *, as_of: date) -> NoteExtraction:
    """The hand annotations of one topic (``benchmarks/notes/gold.py`` ``GoldTopic``) as a
    :class:`~actnav.patient.notes.model.NoteFact` extraction, to write with the same FHIR Bundle
    writer as the extractor's output: a ranking from perfect extraction of what was annotated.

    Annotated are age, sex, diagnoses (ICD-10-CM, actnav concept), labs, therapies (agents, a
    regimen expanded) and transplants; not disease status (relapse, refractory), performance
    status, biomarkers or findings, so the gold ranking knows none of those. ``other:`` agents and
    analytes map to nothing actnav knows and are left out.
    """
    from actnav.patient.models import Coding
    from actnav.patient.notes.model import NoteExtraction, NoteFact, Span

    text: str = topic.text
    facts: list[NoteFact] = []

    def span(words: str) -> Span:
        start = text.index(words) if words in text else 0
        return Span(start=start, end=start + len(words), text=text[start : start + len(words)])

    def add(words: str, **fields: Any) -> None:
        s = span(words)
        facts.append(NoteFact(id=f"g{len(facts) + 1}", span=s, sentence=s, **fields))

    first = text[: min(len(text), 20)]
    if topic.age is not None:
        add(first, kind="age", label=f"age {topic.age:g} years", number=float(topic.age), unit="a")
    if topic.sex is not None:
        add(first, kind="sex", label=topic.sex, value=topic.sex)
    for d in topic.diagnoses:
        codes = (Coding(system=ICD10CM_URI, code=d.icd10cm),)
        add(d.text, kind="diagnosis", label=d.text, concept=d.concept, codes=codes)
    for lab in topic.labs:
        if lab.analyte.startswith("other:"):
            continue
        unit = lab.canonical_unit if lab.unit is not None else None
        add(lab.text, kind="lab", label=lab.text, concept=lab.analyte, number=lab.target, unit=unit)
    for t in topic.therapies:
        if not t.agent.startswith("other:"):
            add(t.text, kind="therapy", label=t.agent, concept=t.agent, historical=True)
    for tx in topic.transplants:
        add(tx.text, kind="transplant", label=tx.text, value=tx.type, historical=True)
    return NoteExtraction(text=text, as_of=as_of, facts=tuple(facts))
