"""Benchmark 7c: one patient against all bundled trials, and against 100,000 trials.

The 100,000 trials are the bundled real records (56 ACT records and 3 API v2 samples) replicated
with new NCT ids (``NCT9xxxxxxx``), so their criteria repeat: the index parses each distinct
eligibility text once and shares identical criteria between trials (docs/trial-matching.md).

Measured, on one core, for each of the 15 example patients (``examples/patients``) after loading:

* load: reading the bundled records, classifying and parsing them (from the disk cache when warm;
  the cold figure is printed when the cache was empty), and building the index;
* rank: the verdict, relevance and order of every trial (:meth:`TrialIndex.rank`);
* top 10: the ten best trials evaluated in full with every criterion (:meth:`TrialIndex.matches`);
* latency = rank + top 10, p50 and p95 over the patients x ``--repeat`` runs;
* peak memory: the process's peak resident set size (``resource.getrusage``, kilobytes on Linux).

Also checked: the pre-filtered verdicts equal the full evaluation for every trial and patient on the
bundled records. Usage: ``python benchmarks/bench_match.py [--trials 100000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 29)
TARGET_P95_MS = 100.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000, help="size of the replicated set")
    parser.add_argument("--repeat", type=int, default=3, help="runs per patient")
    args = parser.parse_args()

    from actnav.eligibility.facts import PatientFacts
    from actnav.knowledge.loader import load_facts, load_knowledge
    from actnav.patient.fhir import read_bundle
    from actnav.trials.match import TrialIndex, patient_profile
    from actnav.trials.search import cached_classify, cached_parse
    from actnav.trials.sources import iter_bundled_records

    load_knowledge()
    patients = []
    for path in sorted((ROOT / "examples" / "patients").glob("*.json")):
        record = read_bundle(path, as_of=AS_OF)
        patients.append((path.name, record))

    t0 = time.perf_counter()
    bundled = [(r.record, cached_classify(r.record)) for r in iter_bundled_records() if r.record is not None]
    t_classify = time.perf_counter() - t0
    t0 = time.perf_counter()
    small = TrialIndex.build(bundled, parse=cached_parse)
    t_small = time.perf_counter() - t0
    print(
        f"bundled: {len(small)} trials; classify {t_classify:.2f} s, parse + index {t_small:.2f} s "
        f"({small.distinct_nodes} distinct criterion nodes, {small.distinct_plans} distinct trials)"
    )

    # The pre-filter equals the full evaluation (every bundled trial, every example patient).
    mismatches = 0
    for _name, record in patients:
        facts = PatientFacts(record, AS_OF, load_facts())
        fast = small.rank(facts)
        full = small.rank(PatientFacts(record, AS_OF, load_facts()), full=True)
        mismatches += int((fast.verdicts != full.verdicts).sum())
        for m, pos in zip(small.matches(facts, fast), fast.order.tolist(), strict=True):
            mismatches += int(m.verdict != fast.verdict(pos))
    print(
        f"pre-filter vs full evaluation: {mismatches} mismatches over {len(small)} trials x "
        f"{len(patients)} patients"
    )

    def bench(index: TrialIndex, label: str) -> None:
        rank_ms: list[float] = []
        total_ms: list[float] = []
        for _ in range(args.repeat):
            for _name, record in patients:
                gc.collect()
                t1 = time.perf_counter()
                facts = PatientFacts(record, AS_OF, load_facts())
                profile = patient_profile(facts)
                ranked = index.rank(facts, profile=profile, act_only=True)
                t2 = time.perf_counter()
                index.matches(facts, ranked, limit=10, profile=profile)
                t3 = time.perf_counter()
                rank_ms.append((t2 - t1) * 1000)
                total_ms.append((t3 - t1) * 1000)
        print(
            f"{label}: rank p50 {statistics.median(rank_ms):.1f} ms, "
            f"p95 {_percentile(rank_ms, 0.95):.1f} ms; "
            f"rank + top 10 in full p50 {statistics.median(total_ms):.1f} ms, "
            f"p95 {_percentile(total_ms, 0.95):.1f} ms "
            f"({len(total_ms)} runs)"
        )

    bench(small, f"{len(small)} bundled trials")

    t0 = time.perf_counter()
    records = []
    n = 0
    while n < args.trials:
        for record, classification in bundled:
            if n >= args.trials:
                break
            records.append((record.model_copy(update={"nct_id": f"NCT9{n:07d}"}), classification))
            n += 1
    t_copy = time.perf_counter() - t0
    t0 = time.perf_counter()
    big = TrialIndex.build(records, parse=cached_parse)
    del records
    t_big = time.perf_counter() - t0
    print(
        f"{len(big)} trials: replicate {t_copy:.2f} s, index {t_big:.2f} s "
        f"({big.distinct_nodes} distinct criterion nodes, {big.distinct_plans} distinct trials)"
    )
    bench(big, f"{len(big)} trials")
    peak = _peak_mb()
    print(f"peak memory (RSS): {peak:.0f} MB")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
