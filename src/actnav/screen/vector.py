"""Vectorised criterion evaluation: every product indication and trial for a column table of patients.

The single-patient engines (:mod:`actnav.eligibility.engine` for product labels,
:func:`actnav.trials.match.match_trial` for trials) walk criterion trees per patient. Here the
same trees are evaluated once per *partition*:

1. :meth:`ScreenPlan.fact_table` resolves, per patient, only the facts the criteria name (with
   :class:`~actnav.eligibility.facts.PatientFacts`, the engine's own resolvers) into columns:
   a number fact is a float64 column (NaN = unknown), a boolean fact an int8 column (-1 = unknown),
   a code fact an int32 column of category codes (-1 = unknown), and a codes (set) fact one pair
   of boolean columns per code a criterion names: *present* and *decided* (decided = the value is
   complete, or the code was tested, or it is present), plus a *known* column.
2. The criterion trees of every target are compiled into one table of logical nodes, identical
   criteria of different targets being one node (the compiler of
   :class:`actnav.trials.match.TrialIndex`). Each leaf is one numpy comparison giving a
   three-valued int8 array, encoded so that Kleene logic is arithmetic: ``0`` not met, ``1``
   unknown, ``2`` met; ``all_of`` is the element-wise minimum, ``any_of`` the maximum and ``not``
   is ``2 - x``. Each node is evaluated once per partition, children before parents.
3. A target's verdict is the minimum over its criteria (0 not eligible, 1 needs information,
   2 eligible), and not eligible for a deceased patient: the rule of both
   :func:`actnav.eligibility.evaluate._verdict` and :func:`actnav.trials.match._verdict`.

Targets:

* :class:`Target`, a product indication in force: its criteria, limitations of use and the
  product's contraindications; score = the share of them met (0-100);
* :class:`TrialTarget`, a trial (:func:`bundled_trials`): the structured age and sex criteria and
  every criterion parsed from its eligibility text about the patient (exclusions already negated;
  criteria the parser could not type are ``needs_review`` leaves, always unknown; donor criteria
  not counted), as :func:`~actnav.trials.match.match_trial` counts them; score =
  :func:`actnav.trials.match.score` of the verdict and the relevance (diagnosis, modality,
  target; no location), computed from per-patient concept columns (:class:`_RelevanceColumns`).

The leaf rule is :func:`actnav.eligibility.engine.leaf_result` (``if_missing`` for an unknown
fact; partially tested sets decided only when the tested codes decide them).
``tests/unit/screen/test_screen_vector.py`` checks verdicts, scores and unknowns equal
:func:`actnav.eligibility.evaluate.evaluate_patient`, and ``test_trials_vector.py`` equal
:func:`actnav.trials.match.match_trial` for every bundled trial, on synthetic patients and every
example patient.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from actnav.eligibility.engine import FactValue, Result
from actnav.eligibility.facts import PatientFacts
from actnav.eligibility.report_model import Verdict
from actnav.knowledge.loader import Knowledge
from actnav.knowledge.models import Criterion
from actnav.patient.models import PatientRecord
from actnav.trials.match import (
    DIAGNOSIS_BROAD,
    DIAGNOSIS_SPECIFIC,
    DIAGNOSIS_UNKNOWN,
    _Compiler,
    _concept_tables,
    _norm_target,
    relevance_value,
    score,
    structured_criteria,
    trial_concepts,
)
from actnav.trials.models import TrialRecord
from actnav.trials.parse import ParsedCriterion
from actnav.trials.recognition import ActClassification

Tri = npt.NDArray[np.int8]
NOT_MET, UNKNOWN, MET = 0, 1, 2
_CODE = {Result.MET: MET, Result.NOT_MET: NOT_MET, Result.UNKNOWN: UNKNOWN}
VERDICTS = ("not_eligible", "needs_information", "eligible")
#: ``--trials`` choices: every trial, those whose overall status is recruiting
#: (:data:`actnav.trials.geo.RECRUITING_SITE_STATUSES`), or none.
TRIAL_CHOICES = ("all", "recruiting", "none")
#: The output columns, in order. ``kind`` is ``indication`` or ``trial`` (``record`` for the
#: ``input_error`` row of a record that could not be read, written by ``run.py``).
SCHEMA = pa.schema(
    [
        ("patient", pa.string()),
        ("kind", pa.string()),
        ("target", pa.string()),
        ("product", pa.string()),
        ("indication", pa.string()),
        ("disease", pa.string()),
        ("status", pa.string()),
        ("verdict", pa.string()),
        ("score", pa.float64()),
        ("unknowns", pa.list_(pa.string())),
    ]
)


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


@dataclass(frozen=True)
class TrialTarget:
    """One trial as a screening target.

    ``id`` is the NCT id; ``status`` the record's overall status (``RECRUITING``...; ``""`` when
    not given); ``disease`` its conditions joined with ``"; "``; ``modality`` and ``antigens`` its
    ACT classification (modality, targets); ``concepts`` the disease concepts it names
    (:func:`actnav.trials.match.trial_concepts`); ``trees`` the counted criteria (structured age
    and sex first, then the parsed criteria about the patient, in text order).
    """

    id: str
    title: str
    status: str
    disease: str
    modality: str | None
    antigens: tuple[str, ...]
    concepts: frozenset[str]
    trees: tuple[Criterion, ...]


def trial_target(
    record: TrialRecord, classification: ActClassification, criteria: Sequence[ParsedCriterion]
) -> TrialTarget:
    """A trial's screening target: the criteria :func:`actnav.trials.match.match_trial` counts.

    Args:
        record: the trial record (structured age, sex, conditions, status).
        classification: its ACT classification (:func:`actnav.trials.search.cached_classify`).
        criteria: its parsed eligibility criteria (:func:`actnav.trials.search.cached_parse`).
    """
    counted = [pc.criterion for pc in criteria if pc.source.population == "patient"]
    return TrialTarget(
        id=record.nct_id,
        title=record.title,
        status=record.overall_status or "",
        disease="; ".join(record.conditions),
        modality=classification.modality,
        antigens=tuple(classification.targets),
        concepts=trial_concepts(record, criteria),
        trees=(*structured_criteria(record), *counted),
    )


@cache
def bundled_trials() -> tuple[TrialTarget, ...]:
    """The trials packaged with actnav (``data/trials/bundled``), in NCT id order; loaded once per
    process with the matcher's loaders and on-disk parse cache (:mod:`actnav.trials.search`).

    Raises:
        DataFileError: a bundled record is malformed (a broken installation).
    """
    from actnav.trials.search import _bundled, cached_parse

    parsed: dict[str, tuple[ParsedCriterion, ...]] = {}
    out = []
    for record, classification in _bundled():
        text = record.eligibility_text
        if text not in parsed:
            parsed[text] = cached_parse(text)
        out.append(trial_target(record, classification, parsed[text]))
    return tuple(sorted(out, key=lambda t: t.id))


@cache
def targets_version() -> str:
    """A hex digest of what the trial targets depend on besides the actnav and knowledge versions:
    the bundled trial file's bytes and the parser's and classifier's code and rule files (the
    keys of their on-disk caches). For a screening run's fingerprint."""
    from actnav.trials.search import _fingerprint
    from actnav.trials.sources import bundled_trials_file

    digest = hashlib.sha256(bundled_trials_file().read_bytes())
    digest.update(_fingerprint("parse").encode())
    digest.update(_fingerprint("classify").encode())
    return digest.hexdigest()[:32]


def select_trials(table: pa.Table, choice: str) -> pa.Table:
    """The rows of a screen table with the trial rows ``--trials`` asks for: ``all``,
    ``recruiting`` (overall status in :data:`actnav.trials.geo.RECRUITING_SITE_STATUSES`) or
    ``none``; rows of other kinds are all kept.

    Raises:
        InputError: an unknown choice.
    """
    import pyarrow.compute as pc

    from actnav.errors import InputError
    from actnav.trials.geo import RECRUITING_SITE_STATUSES

    if choice not in TRIAL_CHOICES:
        raise InputError(f"--trials must be one of {', '.join(TRIAL_CHOICES)}", where="--trials")
    if choice == "all":
        return table
    trial = pc.equal(table.column("kind"), "trial")
    if choice == "none":
        return table.filter(pc.invert(trial))
    recruiting = pc.is_in(
        pc.utf8_upper(table.column("status")), value_set=pa.array(sorted(RECRUITING_SITE_STATUSES))
    )
    return table.filter(pc.or_(pc.invert(trial), recruiting))


@dataclass
class FactTable:
    """The facts of a partition's patients as columns (see the module docstring).

    ``numbers``/``booleans``/``codes`` map fact id -> column; ``categories`` holds each code
    fact's category list; ``sets`` maps (fact id, code) -> (present, decided) and ``set_known``
    fact id -> known mask. ``deceased`` is a boolean column; ``antigen_keys`` maps a normalised
    antigen name (``magea4``) to whether the tumour shows it (trial relevance). Length: ``n`` patients.
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
    antigen_keys: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)


class _RelevanceColumns:
    """Trial relevance for every patient from columns (:func:`actnav.trials.match._relevance`).

    A trial's relevance depends on its (concepts, modality, antigens) key and on the patient's
    profile (:func:`actnav.trials.match.patient_profile`): the diagnosis concepts (with their
    ancestors), the modalities and targets of approved products labelled for one of them, and the
    antigens shown on the tumour. Per key and patient the three parts are coded in one int8
    ``4 x diagnosis + 2 x modality + target`` (diagnosis 0: none shared, 1: not compared,
    2: broad, 3: specific), and the value of each code is :func:`relevance_value` of the parts.
    """

    def __init__(self, kb: Knowledge, trials: Sequence[TrialTarget]):
        _lineage, self.roots, _states = _concept_tables()
        keys: dict[tuple[frozenset[str], str | None, tuple[str, ...]], int] = {}
        self.trial_key = np.array(
            [keys.setdefault((t.concepts, t.modality, t.antigens), len(keys)) for t in trials], dtype=np.int64
        )
        self.keys = list(keys)
        # (diseases on the label, modality, normalised target or "") per product, as patient_profile.
        self.products: list[tuple[frozenset[str], str, str]] = []
        for product in kb.products:
            key = _norm_target(product.target.split()[0])
            self.products.append(
                (
                    frozenset(ind.disease for ind in product.indications),
                    product.modality,
                    key if key and key != "none" else "",
                )
            )
        self.concepts = sorted(
            {c for t in trials for c in t.concepts}
            | {d for diseases, _, _ in self.products for d in diseases}
        )
        self.antigen_keys = sorted({_norm_target(a) for t in trials for a in t.antigens})
        parts = (0.0, DIAGNOSIS_UNKNOWN, DIAGNOSIS_BROAD, DIAGNOSIS_SPECIFIC)
        values = [relevance_value(parts[code >> 2], (code >> 1) & 1, code & 1) for code in range(16)]
        verdicts = (Verdict.NOT_ELIGIBLE, Verdict.NEEDS_INFORMATION, Verdict.ELIGIBLE)
        #: score[verdict (0-2), relevance code (0-15)], :func:`actnav.trials.match.score`.
        self.score = np.array([[score(v, value) for value in values] for v in verdicts], dtype=np.float64)

    def codes(self, table: FactTable) -> npt.NDArray[np.int8]:
        """The relevance code of every (trial key, patient): shape (keys, patients)."""
        n = table.n
        known = table.set_known["diagnosis"]
        none = np.zeros(n, dtype=bool)

        def has(concept: str) -> npt.NDArray[np.bool_]:
            return table.sets[("diagnosis", concept)][0]

        def any_of(columns: list[npt.NDArray[np.bool_]]) -> npt.NDArray[np.bool_]:
            return np.logical_or.reduce(columns) if columns else none

        labelled = [any_of([has(d) for d in sorted(diseases)]) for diseases, _, _ in self.products]
        modality: dict[str, npt.NDArray[np.bool_]] = {}
        target: dict[str, npt.NDArray[np.bool_]] = dict(table.antigen_keys)
        for (_, product_modality, key), on_label in zip(self.products, labelled, strict=True):
            modality[product_modality] = modality.get(product_modality, none) | on_label
            if key:
                target[key] = target.get(key, none) | on_label
        out = np.empty((len(self.keys), n), dtype=np.int8)
        for k, (concepts, mod_name, antigens) in enumerate(self.keys):
            if not concepts:
                diagnosis = np.full(n, 1, dtype=np.int8)
            else:
                specific = any_of([has(c) for c in sorted(concepts) if c not in self.roots])
                broad = any_of([has(c) for c in sorted(concepts) if c in self.roots])
                diagnosis = np.where(~known, 1, np.where(specific, 3, np.where(broad, 2, 0))).astype(np.int8)
            mod = modality.get(mod_name, none) if mod_name else none
            tgt = any_of([target.get(_norm_target(a), none) for a in antigens])
            out[k] = diagnosis * 4 + mod.astype(np.int8) * 2 + tgt.astype(np.int8)
        return out


class ScreenPlan:
    """The compiled screen: which facts to resolve and how to evaluate every target.

    Args:
        kb: the clinical knowledge (facts catalogue for fact types, product labels).
        as_of: the screening date (which label revisions are in force).
        trials: trials to screen as well (:func:`bundled_trials`); none by default.

    Raises:
        ValueError: a leaf uses an operator this evaluator does not support for its fact type
            (a data file the single-patient engine reads but the screen cannot; never for the
            packaged products and bundled trials).
    """

    def __init__(self, kb: Knowledge, as_of: dt.date, trials: Sequence[TrialTarget] = ()):
        self.kb = kb
        self.as_of = as_of
        self.targets = targets(kb, as_of)
        self.trials = tuple(trials)
        self._nodes = _Compiler()
        every: tuple[Target | TrialTarget, ...] = (*self.targets, *self.trials)
        #: Per target (indications, then trials): the node ids of its counted criteria.
        self._tops = [tuple(self._nodes.node(tree) for tree in target.trees) for target in every]
        leaves = [leaf for leaf in self._nodes.leaf if leaf is not None]
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
        self._relevance = _RelevanceColumns(kb, self.trials) if self.trials else None
        if self._relevance is not None:
            for fact in ("diagnosis", "tumor_antigens"):
                self.fact_types[fact] = kb.facts[fact].type
                self.set_codes.setdefault(fact, set())
            self.set_codes["diagnosis"].update(self._relevance.concepts)
        #: Fact ids whose unknown leaves are reported, sorted (the ``unknowns`` list order).
        self.unknown_facts = sorted(self.fact_types)
        self._fact_column = {fact: i for i, fact in enumerate(self.unknown_facts)}

    @property
    def distinct_nodes(self) -> int:
        """Logical criterion nodes of all targets (identical criteria counted once)."""
        return len(self._nodes.kind)

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
                held = [frozenset(_as_tuple(v.value)) if v.value is not None else frozenset() for v in column]
                tested = [None if v.tested is None else frozenset(v.tested) for v in column]
                for code in sorted(self.set_codes[fact_id]):
                    present = np.array([code in h for h in held], dtype=bool)
                    decided = np.array([t is None or code in t for t in tested], dtype=bool) | present
                    table.sets[(fact_id, code)] = (present & known, decided & known)
        if self._relevance is not None:
            shown = [
                {_norm_target(str(c)) for c in v.value} if isinstance(v.value, tuple) else set()
                for v in values["tumor_antigens"]
            ]
            for key in self._relevance.antigen_keys:
                table.antigen_keys[key] = np.array([key in s for s in shown], dtype=bool)
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

    def nodes(self, table: FactTable) -> list[Tri]:
        """Every compiled node over all patients, by node id (children come before parents)."""
        comp = self._nodes
        out: list[Tri] = []
        for nid, kind in enumerate(comp.kind):
            if kind == "leaf":
                leaf = comp.leaf[nid]
                assert leaf is not None
                out.append(self.leaf(leaf, table))
                continue
            children = [out[k] for k in comp.children[nid]]
            if kind == "all":
                out.append(np.minimum.reduce(children).astype(np.int8))
            elif kind == "any":
                out.append(np.maximum.reduce(children).astype(np.int8))
            else:
                out.append((MET - children[0]).astype(np.int8))
        return out

    def evaluate(self, table: FactTable, patient_ids: Sequence[str]) -> pa.Table:
        """Every target for every patient of the table.

        Returns:
            A table of :data:`SCHEMA` with one row per (patient, target), patients in input order,
            then product indications in knowledge-base order and trials in NCT id order:
            ``patient`` (str), ``kind`` (indication / trial), ``target`` (``product/indication``
            or the NCT id), ``product``, ``indication`` (empty for trials), ``disease`` (the
            indication's disease concept; the trial's conditions), ``status`` (the trial's
            overall status; empty for indications), ``verdict`` (not_eligible /
            needs_information / eligible), ``score`` (float64, 0-100: an indication's share of
            criteria met; a trial's :func:`actnav.trials.match.score`), ``unknowns`` (sorted fact
            ids of the unknown leaves that keep a needs-information verdict open; empty otherwise).
        """
        n = table.n
        every: tuple[Target | TrialTarget, ...] = (*self.targets, *self.trials)
        count = len(every)
        nodes = self.nodes(table)
        verdicts = np.empty((count, n), dtype=np.int8)
        scores = np.empty((count, n), dtype=np.float64)
        unknown = np.zeros((count, len(self.unknown_facts), n), dtype=bool)  # target, fact, patient
        is_unknown = [a == UNKNOWN for a in nodes]
        rel_codes = self._relevance.codes(table) if self._relevance is not None else None
        for i, tops in enumerate(self._tops):
            arrays = [nodes[nid] for nid in tops]
            verdict = np.minimum.reduce(arrays).astype(np.int8) if arrays else np.full(n, MET, np.int8)
            verdict[table.deceased] = NOT_MET
            open_ = verdict == UNKNOWN
            if open_.any():
                for nid in tops:
                    self._unknown_leaves(nid, open_, is_unknown, unknown[i])
            verdicts[i] = verdict
            if i < len(self.targets):
                scores[i] = np.round(100.0 * np.sum(np.stack(arrays) == MET, axis=0) / len(arrays), 1)
            else:
                assert self._relevance is not None and rel_codes is not None
                key = self._relevance.trial_key[i - len(self.targets)]
                scores[i] = self._relevance.score[verdict, rel_codes[key]]
        # Patient-major rows: row p * count + t is patient p, target t.
        p_idx = pa.array(np.repeat(np.arange(n, dtype=np.int64), count))
        t_idx = pa.array(np.tile(np.arange(count, dtype=np.int64), n))

        def per_target(values: list[str]) -> pa.Array:
            return pa.array(values, type=pa.string()).take(t_idx)

        mask = unknown.transpose(2, 0, 1).reshape(n * count, len(self.unknown_facts))
        rows, cols = np.nonzero(mask)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n * count))]).astype(np.int32)
        names = pa.array(self.unknown_facts, type=pa.string()).take(pa.array(cols, type=pa.int64()))
        indications, trials = self.targets, self.trials
        return pa.table(
            {
                "patient": pa.array(list(patient_ids), type=pa.string()).take(p_idx),
                "kind": per_target(["indication"] * len(indications) + ["trial"] * len(trials)),
                "target": per_target([t.id for t in every]),
                "product": per_target([t.product for t in indications] + [""] * len(trials)),
                "indication": per_target([t.indication for t in indications] + [""] * len(trials)),
                "disease": per_target([t.disease for t in every]),
                "status": per_target([""] * len(indications) + [t.status for t in trials]),
                "verdict": pa.array(VERDICTS, type=pa.string()).take(
                    pa.array(verdicts.T.ravel().astype(np.int64))
                ),
                "score": pa.array(scores.T.ravel(), type=pa.float64()),
                "unknowns": pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), names),
            },
            schema=SCHEMA,
        )

    def _unknown_leaves(
        self,
        nid: int,
        relevant: npt.NDArray[np.bool_],
        is_unknown: list[npt.NDArray[np.bool_]],
        mask: npt.NDArray[np.bool_],
    ) -> None:
        """Mark (in ``mask``, fact x patient) the facts of unknown leaves reached through unknown
        nodes only (as :func:`actnav.eligibility.evaluate.unknown_leaves` walks a result tree)."""
        here = relevant & is_unknown[nid]
        if not here.any():
            return
        leaf = self._nodes.leaf[nid]
        if leaf is not None:
            assert leaf.fact is not None
            mask[self._fact_column[leaf.fact]] |= here
            return
        for child in self._nodes.children[nid]:
            self._unknown_leaves(child, here, is_unknown, mask)


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
