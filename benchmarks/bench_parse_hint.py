"""Benchmark 7b: parse every criterion of the 1,602 HINT/TOP oncology trials without an exception.

Reads ``../shared/data/hint-top-trial-outcome/top_oncology_trials.jsonl.gz`` (non-commercial
licence: used here for testing only, never copied into the package), splits each trial's legacy
eligibility text, parses every criterion, and reports the share typed (fully or partly) versus left
for review, and the time taken. Exit status 1 if any criterion raised or fell back on a parser error.

Usage: python benchmarks/bench_parse_hint.py [PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import sys
import time
from pathlib import Path

from actnav.trials.criteria_text import CriterionText, split_criteria
from actnav.trials.parse import parse_criterion

DEFAULT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "hint-top-trial-outcome"
    / "top_oncology_trials.jsonl.gz"
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a summary; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    if not args.path.exists():
        print(f"skipped: {args.path} not found")
        return 0
    with gzip.open(args.path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    if args.limit:
        rows = rows[: args.limit]
    t0 = time.perf_counter()
    # warm-up: load the rules, pint and medspacy once
    parse_criterion(
        CriterionText(section="inclusion", text="ANC >= 1000/uL unless on G-CSF", index=0, span=(0, 1))
    )
    load_s = time.perf_counter() - t0
    counts: collections.Counter[str] = collections.Counter()
    by_section: collections.Counter[tuple[str, str]] = collections.Counter()
    errors: list[str] = []
    facts: collections.Counter[str] = collections.Counter()
    t1 = time.perf_counter()
    for row in rows:
        try:
            cts = split_criteria(row.get("criteria") or "")
        except Exception as exc:
            errors.append(f"{row['nctid']}: split: {exc!r}")
            continue
        for ct in cts:
            try:
                parsed = parse_criterion(ct)
            except Exception as exc:
                errors.append(f"{row['nctid']} #{ct.index}: {exc!r}")
                continue
            if any(n.startswith("parser error") for n in parsed.notes):
                errors.append(f"{row['nctid']} #{ct.index}: {parsed.notes[0]}")
            counts[parsed.status] += 1
            by_section[(ct.section, parsed.status)] += 1
            for leaf in parsed.leaves:
                facts[leaf.fact] += 1
    elapsed = time.perf_counter() - t1
    total = sum(counts.values())
    typed = counts["typed"] + counts["partial"]
    print(
        f"trials: {len(rows)}  criteria: {total}  load: {load_s:.1f} s  parse: {elapsed:.1f} s "
        f"({1000 * elapsed / max(total, 1):.2f} ms/criterion)"
    )
    print(
        f"typed fully: {counts['typed']} ({counts['typed'] / max(total, 1):.1%})  "
        f"partly: {counts['partial']} ({counts['partial'] / max(total, 1):.1%})  "
        f"typed (fully or partly): {typed / max(total, 1):.1%}  "
        f"left for review: {counts['review']} ({counts['review'] / max(total, 1):.1%})"
    )
    for section in ("inclusion", "exclusion", "unknown"):
        n = sum(v for (s, _st), v in by_section.items() if s == section)
        if n:
            t = by_section[(section, "typed")] + by_section[(section, "partial")]
            print(f"  {section}: {n} criteria, typed {t / n:.1%}")
    print("typed leaves by fact: " + ", ".join(f"{f} {n}" for f, n in facts.most_common(20)))
    print(f"exceptions: {len(errors)}")
    for line in errors[:20]:
        print("  " + line)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
