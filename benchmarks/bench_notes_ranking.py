"""Benchmark 4b of issue 7: ranking the bundled trials from a patient description, against TREC judgments.

For every TREC Clinical Trials 2021/2022 and SIGIR 2016 topic with at least one relevance judgment
among the trials actnav bundles (the qrels of ``../shared/data/trialgpt-benchmarks/<set>/qrels/test.tsv``
intersected with :func:`actnav.trials.sources.iter_bundled_records`):

  topic text -> :func:`actnav.patient.notes.extract.extract_note` (as of 2026-11-29)
  -> :func:`actnav.patient.notes.bundle.extraction_bundle` -> :func:`actnav.patient.fhir.patient_from_bundle`
  -> every bundled trial ranked by :func:`actnav.trials.match.rank_trials` (what ``actnav match --all-trials``
  does: disease tier, verdict, relevance, then NCT id order; no distance).

Measures (``benchmarks/notes/ranking.py``): NDCG@10, P@10 (grade >= 1 counts as relevant) and P@10
with grade 2 only, over the full ranking (unjudged trials count as not relevant) and over the
condensed list of judged trials only (Sakai 2007). NDCG is undefined for a topic whose usable
judgments are all 0; means of NDCG are over the topics with a relevant judged trial.

A topic without a stated age: the FHIR Bundle needs a birth date, so the bundle gets a placeholder
(:data:`PLACEHOLDER_BIRTH_DATE`) and the ranking runs with the age masked as unknown
(``AgeUnknownFacts``): no age criterion is decided from the placeholder. Such topics are marked
"no age" in the table.

Baselines on the same trials and judgments: NCT id order (no patient information at all), and,
when ``benchmarks/notes/gold.*`` provides hand-annotated facts for a topic, the same ranking from
the gold facts. Ablation: the same extracted facts with the trials ordered by relevance first, then
verdict (the product orders by disease tier, then verdict), to show what the verdict tier costs.

Usage: ``python benchmarks/bench_notes_ranking.py [--shared ../shared] [--out out/bench/notes-ranking.json]
[--topic trec-202117]...``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 29)
PLACEHOLDER_BIRTH_DATE = date(1900, 1, 1)


def _load(name: str, path: Path) -> ModuleType:
    # benchmarks/ is not a package (and site-packages has an unrelated "benchmarks"): load by path.
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ranking = _load("notes_ranking", ROOT / "benchmarks" / "notes" / "ranking.py")


def _age_unknown_facts() -> type:
    from actnav.eligibility.engine import FactValue
    from actnav.eligibility.facts import PatientFacts

    class AgeUnknownFacts(PatientFacts):
        """Patient facts with the age unknown (the note gives none; the birth date is a placeholder)."""

        def __call__(self, fact_id: str) -> FactValue:
            if fact_id == "age_years":
                return self.unknown("age_years", "the patient's age (the note does not state it)")
            return super().__call__(fact_id)

    return AgeUnknownFacts


def _gold_topics() -> dict[str, Any]:
    """The hand-annotated topics of ``benchmarks/notes/gold.yaml`` by id (empty when absent)."""
    path = ROOT / "benchmarks" / "notes" / "gold.py"
    if not path.exists():
        return {}
    module = _load("notes_gold", path)
    return {t.id: t for t in module.load_gold().topics}


def _rank(
    index: Any, patient: Any, *, age_known: bool
) -> tuple[list[str], list[str], dict[str, tuple[str, float]]]:
    """NCT ids best first; the same trials by relevance first (an ablation, not the product's
    order: relevance, then verdict, then index order); and per NCT id (verdict, relevance)."""
    from actnav.eligibility.facts import PatientFacts
    from actnav.knowledge.loader import load_facts
    from actnav.trials.match import rank_trials

    cls = PatientFacts if age_known else _age_unknown_facts()
    facts = cls(patient, AS_OF, load_facts())
    _top, ranked = rank_trials(facts, index, limit=0)
    nct = [t.record.nct_id for t in index.trials]
    order = [nct[p] for p in ranked.order.tolist()]
    positions = range(len(index.trials))
    by_relevance = sorted(
        positions, key=lambda p: (-round(float(ranked.relevance[p]), 4), int(ranked.verdicts[p]), p)
    )
    detail = {nct[p]: (ranked.verdict(p).value, float(ranked.relevance[p])) for p in positions}
    return order, [nct[p] for p in by_relevance], detail


def _patient(extraction: Any) -> tuple[Any, str | None]:
    """(patient record or None, why the age is unknown or the topic cannot be ranked) from an
    extraction, through the FHIR Bundle writer and the importer."""
    from actnav.errors import InputError
    from actnav.patient.fhir import patient_from_bundle
    from actnav.patient.notes.bundle import extraction_bundle

    try:
        return patient_from_bundle(extraction_bundle(extraction), as_of=AS_OF), None
    except InputError as exc:
        if exc.where != "age":
            return None, f"not ranked: {exc}"
        problem = str(exc)
    try:
        bundle = extraction_bundle(extraction, birth_date=PLACEHOLDER_BIRTH_DATE)
    except InputError as exc:
        return None, f"not ranked: {exc}"
    return patient_from_bundle(bundle, as_of=AS_OF), f"no age ({problem})"


def _topic_patient(text: str) -> tuple[Any, str | None, list[str]]:
    """(patient record or None, age problem, patient facts in words) from a topic text."""
    from actnav.patient.notes.extract import extract_note

    extraction = extract_note(text, as_of=AS_OF)
    words = [f"{f.kind}: {f.label}" for f in extraction.patient_facts()]
    patient, problem = _patient(extraction)
    return patient, problem, words


def _scores_json(scores: Mapping[str, Any]) -> dict[str, Any]:
    return {
        way: {"ndcg@10": s.ndcg10, "p@10": s.p10, "p@10_grade2": s.p10_eligible} for way, s in scores.items()
    }


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


def _summary(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for way in ("full", "condensed"):
        got = [r[key][way] for r in rows if key in r]
        relevant = [g for g, r in zip(got, rows, strict=False) if r["has_relevant"]]
        out[way] = {
            "mean_ndcg@10": ranking.mean(g["ndcg@10"] for g in got),
            "mean_p@10": ranking.mean(g["p@10"] for g in relevant),
            "mean_p@10_grade2": ranking.mean(g["p@10_grade2"] for g in relevant),
            "mean_p@10_all_topics": ranking.mean(g["p@10"] for g in got),
            "topics": len(got),
            "topics_with_relevant": len(relevant),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "notes-ranking.json")
    parser.add_argument("--topic", action="append", default=[], help="only these topic ids")
    args = parser.parse_args()

    from actnav.trials.match import TrialIndex
    from actnav.trials.search import cached_classify, cached_parse
    from actnav.trials.sources import iter_bundled_records

    bench = args.shared / "data" / "trialgpt-benchmarks"
    t0 = time.perf_counter()
    records = [(r.record, cached_classify(r.record)) for r in iter_bundled_records() if r.record is not None]
    index = TrialIndex.build(records, parse=cached_parse)
    held = [t.record.nct_id for t in index.trials]
    print(f"{len(held)} bundled trials indexed in {time.perf_counter() - t0:.1f} s")

    topics = ranking.load_topics(bench)
    usable = ranking.usable_judgments(ranking.load_qrels(bench), held)
    if args.topic:
        usable = {t: j for t, j in usable.items() if t in set(args.topic)}
    gold = _gold_topics()
    print(f"gold baseline: {sum(t in gold for t in usable)} of {len(usable)} topics annotated in gold.yaml")

    nct_order = sorted(held)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for topic_id, judged in usable.items():
        text = topics[topic_id].text
        t1 = time.perf_counter()
        patient, problem, words = _topic_patient(text)
        counts = ranking.grade_counts(judged)
        if patient is None:
            skipped.append({"topic": topic_id, "judged": counts, "problem": problem, "extracted": words})
            continue
        age_known = problem is None
        order, relevance_first, detail = _rank(index, patient, age_known=age_known)
        seconds = time.perf_counter() - t1
        row: dict[str, Any] = {
            "topic": topic_id,
            "set": topics[topic_id].set,
            "age_stated": age_known,
            "age_problem": problem,
            "judged": counts,
            "has_relevant": counts[1] + counts[2] > 0,
            "extracted": words,
            "diagnoses": [d.text for d in patient.diagnoses],
            "seconds": round(seconds, 2),
            "notes": _scores_json(ranking.score_both(order, judged)),
            "nct_order": _scores_json(ranking.score_both(nct_order, judged)),
            "relevance_first": _scores_json(ranking.score_both(relevance_first, judged)),
            "judged_trials": [
                {
                    "nct": nct,
                    "grade": grade,
                    "rank": ranking.ranks(order, [nct])[nct],
                    "verdict": detail[nct][0],
                    "relevance": detail[nct][1],
                }
                for nct, grade in sorted(judged.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "relevance_first_ranks": ranking.ranks(relevance_first, sorted(judged)),
            "top10": order[:10],
        }
        if topic_id in gold:
            gold_patient, gold_problem = _patient(ranking.gold_extraction(gold[topic_id], as_of=AS_OF))
            if gold_patient is not None:
                gold_order, _, _ = _rank(index, gold_patient, age_known=gold_problem is None)
                row["gold"] = _scores_json(ranking.score_both(gold_order, judged))
                row["gold_ranks"] = ranking.ranks(gold_order, sorted(judged))
        rows.append(row)

    print()
    print("P@10 counts grade >= 1 as relevant (P2: grade 2 only); full = unjudged count as not relevant,")
    print("cond = judged trials only (Sakai 2007); NDCG n/a when no usable judgment is >= 1;")
    print("idNDCG: NCT id order; rfNDCG: relevance-first ablation; gNDCG: gold facts (all full ranking).")
    print(
        f"{'topic':<13} {'age':<4} {'g0':>3} {'g1':>3} {'g2':>3}  "
        f"{'NDCG':>5} {'P@10':>5} {'P2':>5} | {'cNDCG':>5} {'cP@10':>5} | {'idNDCG':>6} {'rfNDCG':>6} {'gNDCG':>6}  ranks (grade)"
    )
    for r in rows:
        full, cond, base = r["notes"]["full"], r["notes"]["condensed"], r["nct_order"]["full"]
        judged_ranks = " ".join(
            f"{j['nct']}={j['rank']}({j['grade']})" for j in r["judged_trials"] if j["grade"] >= 1
        )
        zero_ranks = ",".join(str(j["rank"]) for j in r["judged_trials"] if j["grade"] == 0)
        print(
            f"{r['topic']:<13} {'yes' if r['age_stated'] else 'no':<4} "
            f"{r['judged'][0]:>3} {r['judged'][1]:>3} {r['judged'][2]:>3}  "
            f"{_fmt(full['ndcg@10'])} {_fmt(full['p@10'])} {_fmt(full['p@10_grade2'])} | "
            f"{_fmt(cond['ndcg@10'])} {_fmt(cond['p@10'])} | {_fmt(base['ndcg@10']):>6} "
            f"{_fmt(r['relevance_first']['full']['ndcg@10']):>6} "
            f"{_fmt(r['gold']['full']['ndcg@10'] if 'gold' in r else None):>6}  "
            f"{judged_ranks} grade0@[{zero_ranks}]"
        )
    summary = {
        "notes": _summary(rows, "notes"),
        "nct_order": _summary(rows, "nct_order"),
        "relevance_first": _summary(rows, "relevance_first"),
    }
    if any("gold" in r for r in rows):
        summary["gold"] = _summary(rows, "gold")
    print()
    for name, s in summary.items():
        for way in ("full", "condensed"):
            m = s[way]
            print(
                f"mean {name:<15} {way:<9}: NDCG@10 {_fmt(m['mean_ndcg@10'])}, P@10 {_fmt(m['mean_p@10'])}, "
                f"P@10 grade 2 {_fmt(m['mean_p@10_grade2'])} over {m['topics_with_relevant']} topics with a "
                f"relevant judged trial; P@10 over all {m['topics']} topics {_fmt(m['mean_p@10_all_topics'])}"
            )
    no_age = [r["topic"] for r in rows if not r["age_stated"]]
    print(f"no age stated: {len(no_age)} topics {' '.join(no_age)}")
    for item in skipped:
        print(f"not ranked: {item['topic']} {item['problem']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "as_of": AS_OF.isoformat(),
        "trials": len(held),
        "definitions": {
            "ndcg@10": "trec_eval ndcg_cut.10 via ir-measures: gain = grade, discount 1/log2(rank+1)",
            "p@10": "grade >= 1 relevant; p@10_grade2: grade 2 only; divided by 10",
            "full": "whole ranking, unjudged trials not relevant",
            "condensed": "judged trials only, in ranked order (Sakai 2007)",
            "no_age": "placeholder birth date, age masked as unknown in ranking",
        },
        "summary": summary,
        "topics": rows,
        "not_ranked": skipped,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
