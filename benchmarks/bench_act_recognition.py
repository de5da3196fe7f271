"""Accuracy of adoptive cell therapy (ACT) recognition, measured on real records (``make bench``).

Measures :func:`actnav.trials.recognition.classify` on:

* the **56 real ACT trial records** (packaged copies of ``../shared/data/ctgov-act-trials`` and
  ``trialgpt2-act-sample-records``) against their hand labels (``act_type`` of index.tsv, transcribed
  in ``tests/fixtures/trials/act-hand-labels.yaml``): is_act recall, modality accuracy with a
  confusion table, target recall / precision and exact-set agreement, labelled cell sources;
* the **3 API v2 samples** (not ACT): specificity;
* the **1,602 HINT oncology trials** (``../shared/data/hint-top-trial-outcome``, non-commercial
  licence, read only here and in tests; skipped when absent): minimal records from diseases,
  drugs and criteria (HINT has no titles or summaries). Every trial classified ACT is listed and
  judged against the real ACT trials named in HINT's SOURCE.md; the trials whose criteria mention
  T cells, NK cells or cell therapy are counted, and none of them may be a false positive;
* speed: milliseconds per record.

Caveat printed with the figures: the vocabulary was written while reading the 56 ACT records,
so their figures are development-set figures, not held-out ones.

Usage::

    python benchmarks/bench_act_recognition.py [--shared ../shared]

Exits 0; a missing input is reported as skipped.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from actnav.trials.models import Intervention, TrialRecord
from actnav.trials.recognition import MODALITIES, ActClassification, classify, load_vocabulary
from actnav.trials.sources import iter_bundled_records

ROOT = Path(__file__).resolve().parents[1]
LABELS_FILE = ROOT / "tests" / "fixtures" / "trials" / "act-hand-labels.yaml"
HINT_REAL_ACT = {
    "NCT00924001": "DMF5 melanoma-reactive TIL",
    "NCT02354690": "TIL infusion + vemurafenib",
    "NCT03672851": "anti-CD123 CAR-T",
    "NCT01050764": "regulatory and conventional T cells after transplant",
    "NCT00610311": "lymphodepletion + cell transfer (named in criteria only)",
    "NCT00625729": "lymphodepletion + cell transfer (named in criteria only)",
    "NCT00963872": "lymphodepletion + cell transfer (named in criteria only)",
}
MENTION = re.compile(
    r"\b(?:T[\s-]?cells?|NK[\s-]?cells?|natural killer|T[\s-]?lymphocytes?|CAR[\s-]?T|chimeric antigen|"
    r"tumou?r[\s-]infiltrating|TILs?|adoptive|cell(?:ular)? therapy|lymphocyte infusion|T[\s-]?cell)\b",
    re.IGNORECASE,
)


def _pct(num: int, den: int) -> str:
    return f"{num}/{den} ({100.0 * num / den:.1f} %)" if den else "n/a"


def act_records() -> None:
    """Figures on the 56 ACT records and the 3 non-ACT v2 samples."""
    labels = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))["labels"]
    records = {r.record.nct_id: r.record for r in iter_bundled_records() if r.record is not None}
    results: dict[str, ActClassification] = {}
    times: list[float] = []
    load_vocabulary()  # load and compile once, outside the timings
    for nct in records:
        start = time.perf_counter()
        results[nct] = classify(records[nct])
        times.append(time.perf_counter() - start)

    n = len(labels)
    is_act = sum(results[e["nct_id"]].is_act for e in labels)
    modality_ok = sum(results[e["nct_id"]].modality == e["modality"] for e in labels)
    confusion: Counter[tuple[str, str]] = Counter(
        (e["modality"], str(results[e["nct_id"]].modality)) for e in labels
    )
    tp = fn = fp = exact = covered = 0
    target_misses: list[str] = []
    extra: list[str] = []
    for e in labels:
        got, want = set(results[e["nct_id"]].targets), set(e["targets"])
        tp += len(got & want)
        fn += len(want - got)
        fp += len(got - want)
        exact += got == want
        covered += want <= got
        if want - got:
            target_misses.append(f"{e['nct_id']}: missing {sorted(want - got)} ({e['act_type']})")
        if got - want:
            extra.append(f"{e['nct_id']}: also {sorted(got - want)} ({e['act_type']})")
    sources = [e for e in labels if "cell_source" in e]
    source_ok = sum(results[e["nct_id"]].cell_source == e["cell_source"] for e in sources)
    negatives = [nct for nct, r in records.items() if r.source_format == "ctgov_v2"]

    print(f"ACT recognition, vocabulary {load_vocabulary().version}")
    print("== 56 real ACT records vs hand labels (development set: the rules were written on them)")
    print(f"  is_act (recall)            {_pct(is_act, n)}")
    print(f"  modality                   {_pct(modality_ok, n)}")
    print(f"  targets: all labelled found {_pct(covered, n)};  exact set {_pct(exact, n)}")
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    print(
        f"  targets micro: recall {recall:.3f} ({tp}/{tp + fn}), precision {precision:.3f} ({tp}/{tp + fp})"
    )
    print(f"  cell source (where labelled) {_pct(source_ok, len(sources))}")
    not_act = sum(not results[x].is_act for x in negatives)
    print(f"  3 API v2 non-ACT samples: {_pct(not_act, len(negatives))} not ACT")
    print("  modality confusion (rows: label, columns: classified)")
    columns = [*MODALITIES, "None"]
    print("    " + " " * 12 + "".join(f"{c[:10]:>11}" for c in columns))
    for row in MODALITIES:
        counts = [confusion.get((row, c), 0) for c in columns]
        if any(counts):
            print(f"    {row:<12}" + "".join(f"{v:>11}" for v in counts))
    for line in target_misses:
        print(f"  target miss: {line}")
    for line in extra:
        print(f"  extra target (not in the label; may be right): {line}")
    ms = [t * 1000 for t in times]
    print(f"  speed: median {statistics.median(ms):.2f} ms, max {max(ms):.2f} ms per record (59 records)")


def _list(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return [text]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else [text]


def hint(shared: Path) -> None:
    """False positives on the HINT oncology trials."""
    path = shared / "data" / "hint-top-trial-outcome" / "top_oncology_trials.jsonl.gz"
    print("== 1,602 HINT oncology trials (diseases, drugs, criteria; no titles or summaries)")
    if not path.exists():
        print(f"  skipped: {path} not found")
        return
    rows: list[dict[str, Any]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    start = time.perf_counter()
    positives: dict[str, ActClassification] = {}
    mentioning: set[str] = set()
    for row in rows:
        record = TrialRecord(
            nct_id=row["nctid"],
            title="",
            conditions=tuple(_list(row["diseases"])),
            interventions=tuple(Intervention(name=d) for d in _list(row["drugs"])),
            eligibility_text=row["criteria"],
            source_format="trialgpt_flat",
            raw={},
        )
        result = classify(record)
        if result.is_act:
            positives[record.nct_id] = result
        if MENTION.search(row["criteria"]):
            mentioning.add(record.nct_id)
    elapsed = time.perf_counter() - start
    false_pos = sorted(set(positives) - set(HINT_REAL_ACT))
    found = sorted(set(positives) & set(HINT_REAL_ACT))
    missed = sorted(set(HINT_REAL_ACT) - set(positives))
    mention_fp = sorted((set(positives) & mentioning) - set(HINT_REAL_ACT))
    print(f"  trials whose criteria mention T/NK cells or cell therapy: {len(mentioning)}")
    print(f"  of those classified ACT although not ACT (false positives): {len(mention_fp)}")
    print(f"  classified ACT: {len(positives)}; false positives overall: {len(false_pos)} {false_pos}")
    for nct in found:
        r = positives[nct]
        print(f"  true positive {nct}: {r.modality} {','.join(r.targets) or '-'} ({HINT_REAL_ACT[nct]})")
    for nct in missed:
        print(f"  not recognised {nct}: {HINT_REAL_ACT[nct]}")
    print(f"  speed: {1000 * elapsed / len(rows):.2f} ms per record")


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    act_records()
    hint(args.shared)


if __name__ == "__main__":
    main()
