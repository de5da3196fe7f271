"""Scoring predicted note facts against the gold annotations: pure functions, no I/O.

A prediction is a :class:`Predicted`: the fact type, its comparison key and, for ages and labs,
its number. The benchmark builds them from ``NoteExtraction.patient_facts()``; this module only
compares. Rules (annotation-guide.md, "Scoring"):

* age: one gold age; a predicted age matches when within 0.01 year.
* sex: ``female``/``male``, exact.
* diagnosis: a prediction's key is ``icd:<3-character ICD-10-CM category>`` (from its ICD-10-CM
  code), else ``concept:<actnav concept>``. A gold diagnosis accepts the category of its code and
  of its ``alternatives``, and ``concept:<its concept>``. Gold diagnoses of the same category count
  once.
* lab: same analyte key and a number within 1 % of the gold value (canonical unit when known,
  else the number as written).
* therapy: same agent (regimens are expanded to agents before scoring); also reported separately
  for anticancer agents and for the others. Therapy and lab keys compare without ``other:`` and
  with ``_`` read as a space (:func:`same_name`).
* transplant: same type (autologous / allogeneic / unknown).

Predictions are deduplicated per topic (the same key, or the same analyte and value, counts once).
Each prediction matches at most one gold fact and the other way round (maximum bipartite
matching). A prediction whose ``key`` is None cannot be compared: it is counted as ``unkeyed``,
never as a true or false positive. Any prediction (keyed or not, of any kind but sex) whose span
overlaps a ``must_not`` mention is a must-not violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .gold import GoldDiagnosis, GoldLab, GoldTopic

FactType = Literal["age", "sex", "diagnosis", "lab", "therapy", "transplant"]
FACT_TYPES: tuple[FactType, ...] = ("age", "sex", "diagnosis", "lab", "therapy", "transplant")
#: Rows of the report: the six types plus the two halves of ``therapy``.
ROWS: tuple[str, ...] = (*FACT_TYPES, "therapy_anticancer", "therapy_other")
AGE_TOLERANCE_YEARS = 0.01
LAB_RELATIVE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Predicted:
    """One predicted patient fact, ready to compare.

    Attributes:
        kind: a fact type, or ``"other"`` for kinds the gold does not annotate (kept only for the
            must-not check).
        key: comparison key (see the module docstring); None when the fact maps to nothing.
        number: age in years; lab value in the analyte's canonical unit (or as written for an
            ``other:`` analyte).
        anticancer: for a therapy, whether the agent is anticancer (drugs.yaml).
        start, end: the fact's span in the topic text; ``text``: the words (for the report).
    """

    kind: FactType | Literal["other"]
    key: str | None
    number: float | None = None
    anticancer: bool | None = None
    start: int = 0
    end: int = 0
    text: str = ""


@dataclass
class Counts:
    """True positives, false positives and false negatives, with the usual ratios."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); None when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN); None when the gold has nothing."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall; None when either is undefined or both are 0."""
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, float | int | None]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}  # fmt: skip


@dataclass
class TopicScore:
    """The comparison for one topic.

    ``counts``: per row of :data:`ROWS`. ``false_positives`` / ``false_negatives``: readable lines
    (``"diagnosis icd:C50 'breast cancer'"``). ``violations``: ``(prediction text, must_not text,
    why)`` for each prediction overlapping a must_not mention. ``unkeyed``: predictions without a key.
    """

    topic_id: str
    counts: dict[str, Counts] = field(default_factory=lambda: {row: Counts() for row in ROWS})
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)
    violations: list[tuple[str, str, str]] = field(default_factory=list)
    unkeyed: list[str] = field(default_factory=list)


def same_name(key: str) -> str:
    """A therapy or lab key without ``other:`` and with ``_`` as space, so ``other:pamidronate``
    and an agent drugs.yaml has since learnt (``pamidronate``) compare equal."""
    return key.removeprefix("other:").replace("_", " ").strip().lower()


def icd_category(code: str) -> str:
    """The 3-character ICD-10-CM category of a code: ``"C90.00"`` -> ``"C90"``."""
    return code.replace(".", "").strip().upper()[:3]


def diagnosis_keys(gold: GoldDiagnosis) -> frozenset[str]:
    """The keys a gold diagnosis accepts: its categories and its concept."""
    keys = {f"icd:{icd_category(c)}" for c in (gold.icd10cm, *gold.alternatives)}
    if gold.concept:
        keys.add(f"concept:{gold.concept}")
    return frozenset(keys)


def _close(value: float, target: float, relative: float) -> bool:
    return abs(value - target) <= relative * abs(target) if target else value == 0


def _max_matching(n_pred: int, n_gold: int, ok: Callable[[int, int], bool]) -> list[tuple[int, int]]:
    """Maximum bipartite matching (augmenting paths): pairs ``(prediction, gold)``."""
    gold_of: dict[int, int] = {}

    def augment(p: int, seen: set[int]) -> bool:
        for g in range(n_gold):
            if g not in seen and ok(p, g):
                seen.add(g)
                if g not in gold_of or augment(gold_of[g], seen):
                    gold_of[g] = p
                    return True
        return False

    for p in range(n_pred):
        augment(p, set())
    return sorted((p, g) for g, p in gold_of.items())


@dataclass(frozen=True)
class _GoldItem:
    label: str
    anticancer: bool | None
    accepts: Callable[[Predicted], bool]


def _gold_items(topic: GoldTopic, kind: FactType) -> list[_GoldItem]:
    if kind == "age":
        if topic.age is None:
            return []
        age = topic.age
        return [
            _GoldItem(
                f"age {age:g}",
                None,
                lambda p: p.number is not None and abs(p.number - age) <= AGE_TOLERANCE_YEARS,
            )
        ]
    if kind == "sex":
        sex = topic.sex
        return [] if sex is None else [_GoldItem(f"sex {sex}", None, lambda p: p.key == sex)]
    if kind == "diagnosis":
        merged: dict[str, tuple[set[str], GoldDiagnosis]] = {}
        for d in topic.diagnoses:
            primary = icd_category(d.icd10cm)
            keys, first = merged.get(primary, (set(), d))
            merged[primary] = (keys | diagnosis_keys(d), first)
        return [_accepting_key(f"diagnosis icd:{primary} {first.text!r}", frozenset(keys))
                for primary, (keys, first) in merged.items()]  # fmt: skip
    if kind == "lab":
        unique: dict[tuple[str, float], GoldLab] = {}
        for lab in topic.labs:
            unique.setdefault((lab.analyte, lab.target), lab)
        return [_lab_item(lab) for lab in unique.values()]
    if kind == "therapy":
        return [
            _GoldItem(f"therapy {t.agent} {t.text!r}", t.anticancer, _name_is(t.agent))
            for t in topic.therapies
        ]
    types = dict.fromkeys(t.type for t in topic.transplants)
    return [_GoldItem(f"transplant {t}", None, _key_is(t)) for t in types]


def _key_is(key: str) -> Callable[[Predicted], bool]:
    return lambda p: p.key == key


def _name_is(key: str) -> Callable[[Predicted], bool]:
    return lambda p: p.key is not None and same_name(p.key) == same_name(key)


def _accepting_key(label: str, keys: frozenset[str]) -> _GoldItem:
    return _GoldItem(label, None, lambda p: p.key in keys)


def _lab_item(lab: GoldLab) -> _GoldItem:
    def accepts(p: Predicted) -> bool:
        return (
            p.key is not None
            and same_name(p.key) == same_name(lab.analyte)
            and p.number is not None
            and _close(p.number, lab.target, LAB_RELATIVE_TOLERANCE)
        )

    return _GoldItem(f"lab {lab.analyte} {lab.target:g} {lab.text!r}", None, accepts)


def _dedupe(predictions: Iterable[Predicted]) -> list[Predicted]:
    seen: dict[tuple[str | None, float | None], Predicted] = {}
    for p in predictions:
        number = round(p.number, 6) if p.number is not None and p.kind in ("age", "lab") else None
        key = same_name(p.key) if p.key is not None and p.kind in ("lab", "therapy") else p.key
        seen.setdefault((key, number), p)
    return list(seen.values())


def _count(pred: Sequence[Predicted], gold: Sequence[_GoldItem]) -> tuple[Counts, list[int], list[int]]:
    pairs = _max_matching(len(pred), len(gold), lambda p, g: gold[g].accepts(pred[p]))
    matched_pred = {p for p, _ in pairs}
    matched_gold = {g for _, g in pairs}
    unmatched_pred = [i for i in range(len(pred)) if i not in matched_pred]
    unmatched_gold = [i for i in range(len(gold)) if i not in matched_gold]
    return Counts(len(pairs), len(unmatched_pred), len(unmatched_gold)), unmatched_pred, unmatched_gold


def score_topic(topic: GoldTopic, predictions: Sequence[Predicted]) -> TopicScore:
    """Compare one topic's predictions with its gold annotations (rules in the module docstring)."""
    result = TopicScore(topic.id)
    for start, end, mention in topic.must_not_spans():
        for p in predictions:
            # A sex fact is exempt: a pronoun inside a family mention ("his older siblings") still
            # names the patient, and a wrong sex is already a sex false positive.
            if p.kind != "sex" and p.start < end and start < p.end:
                result.violations.append((f"{p.kind} {p.key} {p.text!r}", mention.text, mention.why))
    result.unkeyed = [f"{p.kind} {p.text!r}" for p in predictions if p.key is None and p.kind != "other"]
    for kind in FACT_TYPES:
        pred = _dedupe(p for p in predictions if p.kind == kind and p.key is not None)
        gold = _gold_items(topic, kind)
        counts, fps, fns = _count(pred, gold)
        result.counts[kind] = counts
        result.false_positives += [f"{kind} {pred[i].key} {pred[i].text!r}" for i in fps]
        result.false_negatives += [gold[i].label for i in fns]
        if kind == "therapy":
            for row, flag in (("therapy_anticancer", True), ("therapy_other", False)):
                sub_pred = [p for p in pred if bool(p.anticancer) == flag]
                sub_gold = [g for g in gold if g.anticancer == flag]
                result.counts[row] = _count(sub_pred, sub_gold)[0]
    return result


def total(scores: Iterable[TopicScore]) -> dict[str, Counts]:
    """Counts summed over topics per row of :data:`ROWS`, plus ``overall`` (the six fact types)."""
    out = {row: Counts() for row in (*ROWS, "overall")}
    for s in scores:
        for row in ROWS:
            out[row].add(s.counts[row])
        for kind in FACT_TYPES:
            out["overall"].add(s.counts[kind])
    return out
