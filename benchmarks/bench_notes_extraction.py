"""Extraction from clinical notes against hand annotations (issue 7, item 4a; ``make bench``).

Runs :func:`actnav.patient.notes.extract.extract_note` (as of 2026-11-29) on every topic of
``benchmarks/notes/gold.yaml`` (45 TREC 2021/2022 and SIGIR patient descriptions, annotated by hand
by reading the text; rules in ``benchmarks/notes/annotation-guide.md``), maps each fact of
``patient_facts()`` to the gold comparison keys, and prints precision, recall and F1 per fact type
(age, sex, diagnosis, lab, therapy - also split anticancer / other - and transplant) and overall,
then the must-not violations (patient facts read from negated, family, hypothetical or uncertain
words; there should be none) and the facts that map to no key. Writes the figures, and every
false positive and false negative per topic, to ``out/bench/notes-extraction.json``.

Usage::

    python benchmarks/bench_notes_extraction.py [--out out/bench/notes-extraction.json] [--topic ID]
        [--gold benchmarks/notes/heldout.yaml]   # the held-out topics, never tuned on

Needs nothing outside the repository (the topic texts are in gold.yaml). Exits 0; an extractor
that cannot be imported is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.notes` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.notes.gold import GOLD_FILE, GoldTopic, load_gold  # noqa: E402
from benchmarks.notes.score import (  # noqa: E402
    FACT_TYPES,
    ROWS,
    Counts,
    Predicted,
    TopicScore,
    icd_category,
    score_topic,
    total,
)

AS_OF = date(2026, 11, 29)
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
DEFAULT_OUT = ROOT / "out" / "bench" / "notes-extraction.json"
#: issue 7 acceptance: extraction precision of at least 0.95 for age, sex and diagnosis.
PRECISION_TARGET = 0.95


def _drug_tables() -> tuple[dict[str, bool], dict[str, tuple[str, ...]]]:
    from actnav.patient import terminology

    drugs = terminology.drugs()
    agents = {a.name: a.anticancer for a in drugs.agents}
    regimens = {r.name.lower(): r.agents for r in drugs.regimens}
    return agents, regimens


def predictions(facts: Any) -> list[Predicted]:
    """The comparison form of each patient fact (``NoteFact``), per annotation-guide.md "Scoring".

    Args:
        facts: ``NoteExtraction.patient_facts()``.

    Returns:
        One :class:`Predicted` per fact (a regimen gives one per agent); facts of kinds the gold
        does not annotate come as kind ``"other"`` without a key (used for the must-not check);
        facts whose value is ``negative`` (a negative test result) are left out.
    """
    agents, regimens = _drug_tables()
    out: list[Predicted] = []
    for f in facts:
        if f.value == "negative" and f.kind not in ("age", "sex"):
            # A negative result ("Beta hcg: negative for pregnancy") states an absence, as the
            # must_not mention does; no gold type scores it.
            continue
        where = {"start": f.span.start, "end": f.span.end, "text": f.span.text}
        if f.kind == "age":
            out.append(Predicted("age", "age" if f.number is not None else None, f.number, **where))
        elif f.kind == "sex":
            out.append(Predicted("sex", f.value, **where))
        elif f.kind in ("diagnosis", "infection"):
            icd = next((c.code for c in f.codes if c.system == ICD10CM), None)
            key = f"icd:{icd_category(icd)}" if icd else (f"concept:{f.concept}" if f.concept else None)
            out.append(Predicted("diagnosis", key, **where))
        elif f.kind == "lab":
            out.append(Predicted("lab", f.concept, f.number, **where))
        elif f.kind == "therapy":
            concept = f.concept or ""
            if concept in agents:
                out.append(Predicted("therapy", concept, anticancer=agents[concept], **where))
            elif concept.lower() in regimens:
                for agent in regimens[concept.lower()]:
                    out.append(Predicted("therapy", agent, anticancer=agents.get(agent), **where))
            else:
                out.append(Predicted("therapy", f.concept, anticancer=None, **where))
        elif f.kind == "transplant":
            out.append(Predicted("transplant", f.value, **where))
        else:
            out.append(Predicted("other", None, **where))
    return out


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


def _gold_counts(topics: list[GoldTopic]) -> dict[str, int]:
    return {
        "age": sum(t.age is not None for t in topics),
        "sex": sum(t.sex is not None for t in topics),
        "diagnosis": sum(len({icd_category(d.icd10cm) for d in t.diagnoses}) for t in topics),
        "lab": sum(len(t.labs) for t in topics),
        "therapy": sum(len(t.therapies) for t in topics),
        "transplant": sum(len(t.transplants) for t in topics),
        "must_not": sum(len(t.must_not) for t in topics),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--topic", action="append", help="only these topic ids (repeatable)")
    parser.add_argument("--gold", type=Path, default=GOLD_FILE, help="annotations file (default gold.yaml)")
    args = parser.parse_args()
    gold = load_gold(args.gold)
    topics = [t for t in gold.topics if not args.topic or t.id in args.topic]
    print(f"Notes extraction benchmark: {len(topics)} hand-annotated topics, as of {AS_OF}")
    try:
        from actnav.patient.notes.extract import extract_note
    except ImportError as error:
        print(f"  skipped: the extractor cannot be imported ({error})")
        return

    # The first call loads the pipeline and lazily read tables (ICD-10-CM...): timed apart.
    start = time.perf_counter()
    extract_note(topics[0].text, as_of=AS_OF)
    cold = time.perf_counter() - start
    scores: list[TopicScore] = []
    seconds: list[float] = []
    for topic in topics:
        start = time.perf_counter()
        extraction = extract_note(topic.text, as_of=AS_OF)
        seconds.append(time.perf_counter() - start)
        scores.append(score_topic(topic, predictions(extraction.patient_facts())))
    sums = total(scores)

    print(f"  gold facts: {_gold_counts(topics)}")
    print(f"  {'type':<20} {'TP':>4} {'FP':>4} {'FN':>4}  precision  recall     F1")
    for row in (*ROWS, "overall"):
        c: Counts = sums[row]
        print(
            f"  {row:<20} {c.tp:>4} {c.fp:>4} {c.fn:>4}  {_fmt(c.precision):>9}  {_fmt(c.recall)}  {_fmt(c.f1)}"
        )
    targets = {k: sums[k].precision for k in ("age", "sex", "diagnosis")}
    met = all(p is not None and p >= PRECISION_TARGET for p in targets.values())
    print(
        f"  precision >= {PRECISION_TARGET} for age, sex and diagnosis (issue 7): {'met' if met else 'NOT met'}"
    )
    violations = [(s.topic_id, *v) for s in scores for v in s.violations]
    print(f"  must-not violations (should be 0): {len(violations)}")
    for topic_id, fact, mention, why in violations:
        print(f"    {topic_id}: {fact} from {mention!r} ({why})")
    unkeyed = [(s.topic_id, u) for s in scores for u in s.unkeyed]
    print(f"  facts mapping to no key (not scored): {len(unkeyed)}")
    slowest = topics[seconds.index(max(seconds))].id
    mean_ms, max_ms = 1000 * sum(seconds) / len(seconds), 1000 * max(seconds)
    print(
        f"  speed: first call {cold:.1f} s (loading); then {mean_ms:.0f} ms per topic (mean), max {max_ms:.0f} ms ({slowest})"
    )

    report = {
        "benchmark": "notes-extraction",
        "as_of": AS_OF.isoformat(),
        "gold": {"file": args.gold.name, "version": gold.version, "topics": len(topics)},
        "gold_facts": _gold_counts(topics),
        "totals": {row: sums[row].as_dict() for row in (*ROWS, "overall")},
        "precision_target": {"value": PRECISION_TARGET, "types": list(targets), "met": met},
        "must_not_violations": [{"topic": t, "fact": f, "mention": m, "why": w} for t, f, m, w in violations],
        "unkeyed": [{"topic": t, "fact": u} for t, u in unkeyed],
        "seconds_per_topic": {"first_call": cold, "mean": sum(seconds) / len(seconds), "max": max(seconds)},
        "topics": [
            {
                "id": s.topic_id,
                "seconds": sec,
                "counts": {k: s.counts[k].as_dict() for k in FACT_TYPES},
                "false_positives": s.false_positives,
                "false_negatives": s.false_negatives,
            }
            for s, sec in zip(scores, seconds, strict=True)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
