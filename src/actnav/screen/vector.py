"""Vectorised criterion evaluation: every product indication for a column table of patients.

The single-patient engine (:mod:`actnav.eligibility.engine`) walks a criterion tree per patient.
Here the same trees are evaluated once per *partition*:

1. :func:`fact_table` resolves, per patient, only the facts the criteria name (with
   :class:`~actnav.eligibility.facts.PatientFacts`, the engine's own resolvers) into columns:
   a number fact is a float64 column (NaN = unknown), a boolean fact an int8 column (-1 = unknown),
   a code fact an int32 column of category codes (-1 = unknown), and a codes (set) fact one pair
   of boolean columns per code a criterion names: *present* and *decided* (decided = the value is
   complete, or the code was tested, or it is present), plus a *known* column.
2. :class:`ScreenPlan` evaluates each leaf as one numpy comparison giving a three-valued int8
   array, encoded so that Kleene logic is arithmetic: ``0`` not met, ``1`` unknown, ``2`` met;
   ``all_of`` is the element-wise minimum, ``any_of`` the maximum and ``not`` is ``2 - x``.
3. The indication verdict follows :func:`actnav.eligibility.evaluate._verdict`: the minimum over
   its criteria, limitations of use and the product's contraindications (0 not eligible, 1 needs
   information, 2 eligible), and not eligible for a deceased patient.

The leaf rule is :func:`actnav.eligibility.engine.leaf_result` (``if_missing`` for an unknown
fact; partially tested sets decided only when the tested codes decide them);
``tests/unit/screen/test_vector.py`` checks verdicts, scores and unknowns equal
:func:`actnav.eligibility.evaluate.evaluate_patient` on synthetic patients and every example.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from actnav.eligibility.engine import FactValue, Result
from actnav.eligibility.facts import PatientFacts
from actnav.knowledge.loader import Knowledge
from actnav.knowledge.models import Criterion
from actnav.patient.models import PatientRecord

Tri = npt.NDArray[np.int8]
NOT_MET, UNKNOWN, MET = 0, 1, 2
_CODE = {Result.NOT_MET: NOT_MET, Result.UNKNOWN: UNKNOWN, Result.MET: MET}
VERDICTS = ("not_eligible", "needs_information", "eligible")


@dataclass(frozen=True)
class Target:
    """One product indication in force on the screening date.

    ``id`` is ``"<product>/<indication>"``; ``trees`` are its criteria, its limitations of use and
    the product's contraindications (all required, as in the single-patient report).
    """

    id: str
    product: str
    indication: str
    name: str
    disease: str
    trees: tuple[Criterion, ...]


def targets(kb: Knowledge, as_of: dt.date) -> list[Target]:
    """The product indications in force on ``as_of`` (approved product, label revision in force),
    in the knowledge base's order."""
    out = []
    for product in kb.products:
        if product.first_approval > as_of:
            continue
        for ind in product.indications:
            if ind.in_force(as_of):
                out.append(
                    Target(
                        id=f"{product.id}/{ind.id}",
                        product=product.id,
                        indication=ind.id,
                        name=ind.name,
                        disease=ind.disease,
                        trees=(*ind.criteria, *ind.limitations_of_use, *product.contraindications),
                    )
                )
    return out


def _leaves(node: Criterion) -> list[Criterion]:
    if node.fact is not None:
        return [node]
    return [leaf for child in node.children for leaf in _leaves(child)]


@dataclass
class FactTable:
    """The facts of a partition's patients as columns (see the module docstring).

    ``numbers``/``booleans``/``codes`` map fact id -> column; ``categories`` holds each code
    fact's category list; ``sets`` maps (fact id, code) -> (present, decided) and ``set_known``
    fact id -> known mask. ``deceased`` is a boolean column. Length: ``n`` patients.
    """

    n: int
    numbers: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    booleans: dict[str, npt.NDArray[np.int8]] = field(default_factory=dict)
    codes: dict[str, npt.NDArray[np.int32]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[tuple[str, str], tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]] = field(
        default_factory=dict
    )
    set_known: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    deceased: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))


class ScreenPlan:
    """The compiled screen: which facts to resolve and how to evaluate every target.

    Args:
        kb: the clinical knowledge (facts catalogue for fact types).
        as_of: the screening date (which label revisions are in force).

    Raises:
        ValueError: a leaf uses an operator this evaluator does not support for its fact type
            (a data file the single-patient engine reads but the screen cannot; never for the
            packaged products).
    """

    def __init__(self, kb: Knowledge, as_of: dt.date):
        self.kb = kb
        self.as_of = as_of
        self.targets = targets(kb, as_of)
        leaves = [leaf for t in self.targets for tree in t.trees for leaf in _leaves(tree)]
        self.fact_types = {leaf.fact: kb.facts[leaf.fact].type for leaf in leaves if leaf.fact}
        self.set_codes: dict[str, set[str]] = {}
        for leaf in leaves:
            assert leaf.fact is not None and leaf.op is not None
            kind = self.fact_types[leaf.fact]
            if kind == "codes":
                if leaf.op not in ("has_any", "has_all", "has_none"):
                    raise ValueError(f"criterion {leaf.id!r}: {leaf.op} on a codes fact is not supported")
                self.set_codes.setdefault(leaf.fact, set()).update(str(v) for v in _as_tuple(leaf.value))
            elif leaf.op in ("has_any", "has_all", "has_none") or (
                kind != "number" and leaf.op in ("lt", "le", "gt", "ge")
            ):
                raise ValueError(f"criterion {leaf.id!r}: {leaf.op} on a {kind} fact is not supported")
        #: Fact ids whose unknown leaves are reported, sorted (the ``unknowns`` list order).
        self.unknown_facts = sorted(self.fact_types)

    # -- facts --------------------------------------------------------------------------------

    def fact_table(self, patients: Sequence[PatientRecord]) -> FactTable:
        """Resolve the facts the criteria name for each patient into columns (a loop over
        patients; criteria are not evaluated here)."""
        n = len(patients)
        values: dict[str, list[FactValue]] = {f: [] for f in self.fact_types}
        for patient in patients:
            facts = PatientFacts(patient, self.as_of, self.kb.facts)
            for fact_id, column in values.items():
                column.append(facts(fact_id))
        table = FactTable(n=n, deceased=np.array([p.deceased for p in patients], dtype=bool))
        for fact_id, column in values.items():
            kind = self.fact_types[fact_id]
            if kind == "number":
                table.numbers[fact_id] = np.array(
                    [np.nan if v.value is None else _number(v) for v in column], dtype=np.float64
                )
            elif kind == "boolean":
                table.booleans[fact_id] = np.array(
                    [-1 if v.value is None else int(_boolean(v)) for v in column], dtype=np.int8
                )
            elif kind == "code":
                cats: dict[str, int] = {}
                table.codes[fact_id] = np.array(
                    [-1 if v.value is None else cats.setdefault(_code(v), len(cats)) for v in column],
                    dtype=np.int32,
                )
                table.categories[fact_id] = list(cats)
            else:
                known = np.array([v.value is not None for v in column], dtype=bool)
                table.set_known[fact_id] = known
                for code in sorted(self.set_codes[fact_id]):
                    present = np.array([code in _as_tuple(v.value) for v in column], dtype=bool)
                    decided = (
                        np.array([v.tested is None or code in v.tested for v in column], dtype=bool) | present
                    )
                    table.sets[(fact_id, code)] = (present & known, decided & known)
        return table

    # -- evaluation ---------------------------------------------------------------------------

    def leaf(self, node: Criterion, table: FactTable) -> Tri:
        """One leaf over all patients: 0 not met, 1 unknown, 2 met (``leaf_result``'s rule)."""
        assert node.fact is not None and node.op is not None
        fact, op, value = node.fact, node.op, node.value
        kind = self.fact_types[fact]
        missing = _CODE[Result(node.if_missing)]
        if kind == "codes":
            want = [str(v) for v in _as_tuple(value)]
            known = table.set_known[fact]
            present = np.stack([table.sets[(fact, w)][0] for w in want])
            decided = np.stack([table.sets[(fact, w)][1] for w in want])
            if op == "has_all":
                met = present.all(axis=0)
                failed = (decided & ~present).any(axis=0)
            elif op == "has_any":
                met = present.any(axis=0)
                failed = decided.all(axis=0) & ~met
            else:  # has_none
                failed = present.any(axis=0)
                met = decided.all(axis=0) & ~failed
            out = np.where(met, MET, np.where(failed, NOT_MET, UNKNOWN)).astype(np.int8)
            return np.where(known, out, missing).astype(np.int8)
        if kind == "number":
            col = table.numbers[fact]
            known = ~np.isnan(col)
            truth = _compare_numbers(op, col, value)
        elif kind == "boolean":
            bcol = table.booleans[fact]
            known = bcol >= 0
            truth = _compare_scalars(op, bcol == 1, value, lambda v: bool(v))
        else:
            ccol = table.codes[fact]
            known = ccol >= 0
            cats = table.categories[fact]
            truth = _compare_codes(op, ccol, cats, value)
        return np.where(known, np.where(truth, MET, NOT_MET), missing).astype(np.int8)

    def node(self, node: Criterion, table: FactTable, out: dict[int, Tri]) -> Tri:
        """Evaluate a tree; every node's array is kept in ``out`` (by ``id(node)``)."""
        if node.fact is not None:
            result = self.leaf(node, table)
        else:
            children = [self.node(child, table, out) for child in node.children]
            if node.all_of is not None:
                result = np.minimum.reduce(children)
            elif node.any_of is not None:
                result = np.maximum.reduce(children)
            else:
                result = (MET - children[0]).astype(np.int8)
        out[id(node)] = result
        return result

    def evaluate(self, table: FactTable, patient_ids: Sequence[str]) -> pa.Table:
        """Every target for every patient of the table.

        Returns:
            A table with one row per (patient, target), patients in input order, targets in
            knowledge-base order: ``patient`` (str), ``target`` (``product/indication``),
            ``product``, ``indication``, ``disease``, ``verdict`` (not_eligible /
            needs_information / eligible), ``score`` (float64, 0-100: share of the target's
            criteria met), ``unknowns`` (list of fact ids of the unknown leaves that keep a
            needs-information verdict open; empty otherwise).
        """
        n = table.n
        columns: dict[str, list[Any]] = {k: [] for k in ("patient", "target", "product", "indication")}
        columns["disease"] = []
        verdicts: list[Tri] = []
        scores: list[npt.NDArray[np.float64]] = []
        unknown_masks: list[npt.NDArray[np.bool_]] = []
        ids = list(patient_ids)
        for target in self.targets:
            nodes: dict[int, Tri] = {}
            tops = [self.node(tree, table, nodes) for tree in target.trees]
            verdict = np.minimum.reduce(tops).astype(np.int8)
            verdict[table.deceased] = NOT_MET
            open_ = verdict == UNKNOWN
            mask = np.zeros((n, len(self.unknown_facts)), dtype=bool)
            for tree, top in zip(target.trees, tops, strict=True):
                self._unknown_leaves(tree, (top == UNKNOWN) & open_, nodes, mask)
            verdicts.append(verdict)
            scores.append(np.round(100.0 * np.sum(np.stack(tops) == MET, axis=0) / len(tops), 1))
            unknown_masks.append(mask)
            columns["patient"] += ids
            columns["target"] += [target.id] * n
            columns["product"] += [target.product] * n
            columns["indication"] += [target.indication] * n
            columns["disease"] += [target.disease] * n
        # Row order: target-major above; reorder patient-major (stable: patients in input order).
        order = (
            np.arange(n * len(self.targets)).reshape(len(self.targets), n).T.ravel()
            if self.targets
            else np.zeros(0, dtype=np.int64)
        )
        verdict_all = np.concatenate(verdicts) if verdicts else np.zeros(0, dtype=np.int8)
        mask_all = (
            np.concatenate(unknown_masks)
            if unknown_masks
            else np.zeros((0, len(self.unknown_facts)), dtype=bool)
        )
        mask_all = mask_all[order]
        rows, cols = np.nonzero(mask_all)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(order)))]).astype(np.int32)
        names = pa.array(self.unknown_facts, type=pa.string()).take(pa.array(cols, type=pa.int64()))
        unknowns = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), names)
        labels = np.array(VERDICTS, dtype=object)
        return pa.table(
            {
                "patient": pa.array(np.array(columns["patient"], dtype=object)[order], type=pa.string()),
                "target": pa.array(np.array(columns["target"], dtype=object)[order], type=pa.string()),
                "product": pa.array(np.array(columns["product"], dtype=object)[order], type=pa.string()),
                "indication": pa.array(
                    np.array(columns["indication"], dtype=object)[order], type=pa.string()
                ),
                "disease": pa.array(np.array(columns["disease"], dtype=object)[order], type=pa.string()),
                "verdict": pa.array(labels[verdict_all[order]], type=pa.string()),
                "score": pa.array(
                    (np.concatenate(scores) if scores else np.zeros(0))[order], type=pa.float64()
                ),
                "unknowns": unknowns,
            }
        )

    def _unknown_leaves(
        self,
        node: Criterion,
        relevant: npt.NDArray[np.bool_],
        nodes: dict[int, Tri],
        mask: npt.NDArray[np.bool_],
    ) -> None:
        """Mark the facts of unknown leaves reached through unknown nodes only (as
        :func:`actnav.eligibility.evaluate.unknown_leaves` walks a result tree)."""
        here = relevant & (nodes[id(node)] == UNKNOWN)
        if not here.any():
            return
        if node.fact is not None:
            mask[:, self.unknown_facts.index(node.fact)] |= here
            return
        for child in node.children:
            self._unknown_leaves(child, here, nodes, mask)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _number(v: FactValue) -> float:
    if isinstance(v.value, bool) or not isinstance(v.value, int | float):
        raise TypeError(f"fact {v.fact} should be a number, got {type(v.value).__name__}")
    return float(v.value)


def _boolean(v: FactValue) -> bool:
    if not isinstance(v.value, bool):
        raise TypeError(f"fact {v.fact} should be a boolean, got {type(v.value).__name__}")
    return v.value


def _code(v: FactValue) -> str:
    if not isinstance(v.value, str):
        raise TypeError(f"fact {v.fact} should be a code, got {type(v.value).__name__}")
    return v.value


def _compare_numbers(op: str, col: npt.NDArray[np.float64], value: Any) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):  # NaN (unknown) rows are masked by the caller
        if op in ("in", "not_in"):
            hit: npt.NDArray[np.bool_] = np.isin(col, np.array([float(v) for v in value]))
            return hit if op == "in" else ~hit
        expected = float(value)
        result: npt.NDArray[np.bool_] = {
            "eq": col == expected,
            "ne": col != expected,
            "lt": col < expected,
            "le": col <= expected,
            "gt": col > expected,
            "ge": col >= expected,
        }[op]
        return result


def _compare_scalars(op: str, col: npt.NDArray[np.bool_], value: Any, cast: Any) -> npt.NDArray[np.bool_]:
    if op in ("in", "not_in"):
        wanted = {cast(v) for v in value}
        hit = np.zeros(col.shape, dtype=bool)
        for w in wanted:
            hit |= col == w
        return hit if op == "in" else ~hit
    if not isinstance(value, bool):
        # ``compare`` uses ==: a boolean fact never equals a non-boolean value.
        return np.zeros(col.shape, dtype=bool) if op == "eq" else np.ones(col.shape, dtype=bool)
    same: npt.NDArray[np.bool_] = col == value
    return same if op == "eq" else ~same


def _compare_codes(op: str, col: npt.NDArray[np.int32], cats: list[str], value: Any) -> npt.NDArray[np.bool_]:
    wanted = [value] if op in ("eq", "ne") else list(value)
    indices = [cats.index(w) for w in wanted if isinstance(w, str) and w in cats]
    hit = np.isin(col, np.array(indices, dtype=np.int32))
    return hit if op in ("eq", "in") else ~hit
