"""Benchmark 7a: typed-threshold accuracy against the Leaf Clinical Trials (LCT) corpus.

Gold: in ``../shared/data/leaf-clinical-trials-lct/lct_brat_docs.jsonl.gz`` (1,006 trials, brat
standoff), every ``Eq-Comparison`` event that is the ``Numeric-Filter`` of an Age, Observation,
Condition or Risk event and has a numeric ``Eq-Value`` is one threshold (entity, comparator, value,
unit). Temporal windows ("within 3 months": role Temporality), durations, counts, stages and doses
are other roles and are out of scope (documented in docs/trial-parsing.md).

Gold reading: the unit is the text from the value to the last unit part ("<11 g/dL" is annotated
Unit "g" + Unit2 "dL"); numbers drop thousands separators ("12,000") but read a decimal comma as one
("18,5" is 18.5).

Prediction: :func:`actnav.trials.parse.find_thresholds` on each line of the document text,
leaving out comparisons it marks temporal; one prediction per entity ("ALT and AST <= 2.5 x ULN" is
two thresholds sharing one comparison, as in the gold).

Matching rule (one-to-one, greedy in text order): a predicted threshold matches a gold one when
(1) their comparison spans overlap, (2) the comparators agree (≥ GTEQ, ≤ LTEQ, > GT, < LT,
= EQ, range BETWEEN; a gold comparison without an operator counts as EQ; a list such as "0 or 1" is
EQ with several values), (3) the values agree (the pair of bounds for a range, in any order; a
prediction with several values, a list or a blood-pressure pair, has the gold's set of values;
otherwise the first gold value; within 1e-6 relative), and (4) when both sides have a recognised
unit, the units are commensurable (pint). The strict variant also requires the entity spans to
overlap. False positives that fall on a gold comparison outside the gold set (unlinked, or in
another role) are counted by kind for the error analysis; they stay false positives.

Usage: python benchmarks/bench_parse_lct.py [PATH] [--errors N]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from actnav.trials.parse import Threshold, find_thresholds, to_canonical

DEFAULT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "leaf-clinical-trials-lct"
    / "lct_brat_docs.jsonl.gz"
)
OPS = {"ge": "GTEQ", "le": "LTEQ", "gt": "GT", "lt": "LT", "eq": "EQ", "between": "BETWEEN"}
WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
}


@dataclass
class Gold:
    doc: str
    op: str
    values: tuple[float, ...]
    unit: str | None
    span: tuple[int, int]
    entity_span: tuple[int, int]
    text: str


def _num(text: str) -> float | None:
    t = text.strip().lower().lstrip("+")
    # "12,000" groups thousands; "18,5" and "7,0" are decimal commas (European notation)
    t = re.sub(r"^(\d+),(\d{1,2})$", r"\1.\2", t).replace(",", "")
    if t in WORDS:
        return float(WORDS[t])
    try:
        return float(t)
    except ValueError:
        return None


def _gold_unit(text: str, roles: list[list[str]], spans: dict[str, tuple[str, int, int, str]]) -> str | None:
    """The unit of a gold comparison as written: the text from the value to the last unit part
    ("<11 g/dL" is annotated Unit "g" and Unit2 "dL"; "below 10 ml per minute" Unit "ml" and Per
    "minute"; "> 12,000/mm^3" a Per "mm^3" alone), else its unit parts joined."""
    parts = [spans[t] for r, t in roles if r in ("Unit", "Unit2", "Per", "Per2") and t in spans]
    if not parts:
        return None
    value_end = max((spans[t][2] for r, t in roles if r.startswith("Value") and t in spans), default=None)
    start = min(p[1] for p in parts)
    end = max(p[2] for p in parts)
    if value_end is not None and 0 <= start - value_end <= 12:
        return " ".join(text[value_end:end].split())
    return "/".join(p[3] for p in parts)


def read_gold(doc: dict[str, str]) -> list[Gold]:
    """Gold thresholds of one brat document."""
    spans: dict[str, tuple[str, int, int, str]] = {}
    events: dict[str, list[str]] = {}
    attrs: dict[str, str] = {}
    for line in doc["ann"].splitlines():
        parts = line.split("\t")
        if line.startswith("T") and len(parts) >= 3:
            kind, *offs = parts[1].split(" ")
            pieces = " ".join(offs).split(";")
            start = int(pieces[0].split()[0])
            end = int(pieces[-1].split()[-1])
            spans[parts[0]] = (kind, start, end, parts[2])
        elif line.startswith("E"):
            events[parts[0]] = parts[1].split()
        elif line.startswith("A"):
            a = parts[1].split()
            if len(a) >= 3:
                attrs[a[1]] = a[2]
    out: list[Gold] = []
    for args in events.values():
        head_kind, head_t = args[0].split(":")
        if head_kind not in ("Age", "Observation", "Condition", "Risk"):
            continue
        for arg in args[1:]:
            role, target = arg.split(":")
            if not role.startswith("Numeric-Filter") or target not in events:
                continue
            cmp_args = events[target]
            roles = [a.split(":") for a in cmp_args[1:]]
            values = [_num(spans[t][3]) for r, t in roles if r.startswith("Value") and t in spans]
            nums = tuple(dict.fromkeys(v for v in values if v is not None))
            if not nums:
                continue
            op_t = next((t for r, t in roles if r == "Operator"), None)
            op = attrs.get(op_t, "EQ") if op_t else "EQ"
            unit = _gold_unit(doc["text"], roles, spans)
            cmp_span = spans[cmp_args[0].split(":")[1]]
            head = spans[head_t]
            out.append(
                Gold(
                    doc["doc_id"], op, nums, unit, (cmp_span[1], cmp_span[2]), (head[1], head[2]), cmp_span[3]
                )
            )
    return out


def other_comparisons(doc: dict[str, str]) -> list[tuple[str, tuple[int, int]]]:
    """Numeric gold comparisons outside the gold set, for the false-positive breakdown only: those no
    event links ("unlinked", an annotation gap such as "LDL-C ≤ 250 mg/dL" with no Numeric-Filter),
    and those in another role ("other role": Temporality, Minimum-Count, Dose, ...)."""
    spans: dict[str, tuple[int, int]] = {}
    comparisons: dict[str, tuple[tuple[int, int], bool]] = {}
    roles: dict[str, set[str]] = collections.defaultdict(set)
    for line in doc["ann"].splitlines():
        parts = line.split("\t")
        if line.startswith("T") and len(parts) >= 3:
            offs = parts[1].split(" ")[1:]
            spans[parts[0]] = (int(offs[0]), int(" ".join(offs).split(";")[-1].split()[-1]))
    for line in doc["ann"].splitlines():
        if not line.startswith("E"):
            continue
        eid, body = line.split("\t")[:2]
        args = body.split()
        kind, head = args[0].split(":")
        if kind == "Eq-Comparison" and head in spans:
            numeric = any(a.split(":")[0].startswith("Value") for a in args[1:])
            comparisons[eid] = (spans[head], numeric)
        for arg in args[1:]:
            role, target = arg.split(":")
            roles[target].add("Numeric-Filter" if role.startswith("Numeric-Filter") else role)
    out: list[tuple[str, tuple[int, int]]] = []
    for eid, (span, numeric) in comparisons.items():
        if numeric and "Numeric-Filter" not in roles[eid]:
            out.append(("other role" if roles[eid] else "unlinked", span))
    return out


def _shift(span: tuple[int, int], offset: int) -> tuple[int, int]:
    return span[0] + offset, span[1] + offset


def predict(text: str) -> list[Threshold]:
    """Predicted (non-temporal) thresholds of a document, spans in document offsets.

    One prediction per entity: "ALT and AST ≤ 2.5 x ULN" is two (entity, comparator, value, unit)
    thresholds sharing one comparison, as in the gold (two events with the same Numeric-Filter).
    """
    out: list[Threshold] = []
    offset = 0
    for line in text.split("\n"):
        for th in find_thresholds(line):
            if th.temporal:
                continue
            entities = [(th.entity, th.entity_span), *th.extra_entities]
            for entity, entity_span in entities:
                out.append(
                    replace(
                        th,
                        span=_shift(th.span, offset),
                        entity=entity,
                        entity_span=_shift(entity_span, offset) if entity_span else None,
                        extra_entities=(),
                    )
                )
        offset += len(line) + 1
    return out


def _overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    return a is not None and b is not None and a[0] < b[1] and b[0] < a[1]


def _unit_code(text: str | None) -> str | None:
    if not text:
        return None
    from actnav.trials.parse import _unit_at

    found = _unit_at(text.replace("/L", "/L"), 0)
    return found[0] if found else None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def _values_agree(p: Threshold, g: Gold) -> bool:
    pv = tuple(sorted({p.value, *(v for v in (p.value2,) if v is not None)}))
    gv = tuple(sorted(g.values))
    if p.op == "between":
        return len(gv) >= 2 and _close(pv[0], gv[0]) and _close(pv[-1], gv[-1])
    if len(p.values) > 1:
        # a list ("0 or 1") or a pair (140/90): the same values, in any order
        ps, gs = sorted(set(p.values)), sorted(set(g.values))
        return len(ps) == len(gs) and all(_close(a, b) for a, b in zip(ps, gs, strict=True))
    return _close(p.value, g.values[0])


def _units_agree(p: Threshold, g: Gold) -> bool:
    gu = _unit_code(g.unit)
    if p.unit is None or gu is None or p.unit == gu:
        return True
    return to_canonical(1.0, p.unit, gu) is not None


def match(preds: list[Threshold], golds: list[Gold], strict: bool) -> tuple[int, list[Threshold], list[Gold]]:
    """Greedy one-to-one matching; returns true positives, unmatched predictions, unmatched gold."""
    used: set[int] = set()
    tp = 0
    fps: list[Threshold] = []
    for p in preds:
        hit = None
        for i, g in enumerate(golds):
            if i in used or not _overlap(p.span, g.span):
                continue
            if OPS[p.op] != g.op or not _values_agree(p, g) or not _units_agree(p, g):
                continue
            if strict and not _overlap(p.entity_span, g.entity_span):
                continue
            hit = i
            break
        if hit is None:
            fps.append(p)
        else:
            used.add(hit)
            tp += 1
    fns = [g for i, g in enumerate(golds) if i not in used]
    return tp, fps, fns


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print precision, recall and F1; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--errors", type=int, default=0, help="print this many misses of each kind")
    args = ap.parse_args(argv)
    if not args.path.exists():
        print(f"skipped: {args.path} not found")
        return 0
    with gzip.open(args.path, "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    t0 = time.perf_counter()
    totals = {False: [0, 0, 0], True: [0, 0, 0]}
    fp_examples: list[str] = []
    fn_examples: list[str] = []
    fn_kinds: collections.Counter[str] = collections.Counter()
    fp_kinds: collections.Counter[str] = collections.Counter()
    for doc in docs:
        golds = read_gold(doc)
        preds = predict(doc["text"])
        for strict in (False, True):
            tp, fps, fns = match(preds, golds, strict)
            totals[strict][0] += tp
            totals[strict][1] += len(fps)
            totals[strict][2] += len(fns)
            if not strict:
                text = doc["text"]
                others = other_comparisons(doc)
                for p in fps:
                    hit = next((kind for kind, span in others if _overlap(p.span, span)), "not annotated")
                    fp_kinds[hit] += 1
                    fp_examples.append(
                        f"FP {OPS[p.op]} {p.value:g}{'-' + format(p.value2, 'g') if p.value2 else ''} "
                        f"{p.unit or ''} | {text[max(0, p.span[0] - 40) : p.span[1] + 10]!r}"
                    )
                for g in fns:
                    near = [p for p in preds if _overlap(p.span, g.span)]
                    kind = (
                        "missed"
                        if not near
                        else "op"
                        if all(OPS[p.op] != g.op for p in near)
                        else "value/unit"
                    )
                    fn_kinds[kind] += 1
                    fn_examples.append(
                        f"FN[{kind}] {g.op} {g.values} {g.unit or ''} | "
                        f"{text[max(0, g.span[0] - 40) : g.span[1] + 10]!r}"
                    )
    elapsed = time.perf_counter() - t0
    for strict in (False, True):
        tp, fp, fn = totals[strict]
        p = tp / max(tp + fp, 1)
        r = tp / max(tp + fn, 1)
        f1 = 2 * p * r / max(p + r, 1e-9)
        name = "comparison + entity" if strict else "comparison"
        print(
            f"{name:20s} gold {tp + fn}  predicted {tp + fp}  TP {tp}  "
            f"precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}"
        )
    print(f"missed gold by kind: {dict(fn_kinds)}")
    print(f"false positives on a gold comparison outside the gold set, by kind: {dict(fp_kinds)}")
    print(f"time {elapsed:.1f} s")
    for line in fp_examples[: args.errors]:
        print(line)
    for line in fn_examples[: args.errors]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
