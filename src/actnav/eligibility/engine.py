"""Three-valued evaluation of criterion trees (Kleene logic): met, not met, unknown.

Leaves compare a patient fact with a value; groups combine children:

* ``all_of``: not met if any child is not met; else unknown if any is unknown; else met.
* ``any_of``: met if any child is met; else unknown if any is unknown; else not met.
* ``not``: swaps met and not met; unknown stays unknown.

Unknown is never silently false: a missing fact yields ``unknown`` (unless the leaf's
``if_missing`` says otherwise, citing why) with the work-up that would settle it.
The engine is pure: it asks a :class:`FactSource` for facts and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actnav.knowledge.models import Criterion, Reference, SourceRef


class Result(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    UNKNOWN = "unknown"


class Evidence(BaseModel):
    """One piece of evidence behind a fact: where it came from and what it said.

    ``resource`` is ``"Observation/<id>"`` (None for facts derived from several resources);
    ``value`` and ``unit`` are as used by the rule (canonical unit); ``date`` is the
    effective date; ``note`` explains derivations (e.g. "3 lines counted: ...").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: str | None = None
    value: str | float | int | bool | None = None
    unit: str | None = None
    date: str | None = None
    note: str | None = None


class FactValue(BaseModel):
    """A fact's value for one patient, or why it is unknown.

    ``value`` is a float (number facts, in the fact's canonical unit), a str (code facts),
    a bool, or a tuple of str (codes facts). ``value is None`` means unknown, and then
    ``reason`` says why (missing, stale, not mappable...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: str
    value: float | str | bool | tuple[str, ...] | None = None
    evidence: tuple[Evidence, ...] = ()
    reason: str | None = None
    tested: tuple[str, ...] | None = Field(
        default=None,
        description="Codes facts only: the codes whose presence or absence was tested. None when the "
        "value is complete (a code not in it is absent); otherwise an untested code is unknown.",
    )

    @property
    def known(self) -> bool:
        return self.value is not None


FactSource = Callable[[str], FactValue]


class SourceInfo(BaseModel):
    """A criterion's source as shown in a report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    citation: str
    section: str | None = None
    url: str | None = None
    verification: str
    confirmed: bool
    note: str | None = None


class CriterionResult(BaseModel):
    """The outcome of one criterion (leaf or group) for one patient.

    ``needs`` is set when the result is unknown: what information would settle it.
    ``workup`` lists the work-up item ids that would settle the unknown leaves below.
    ``unconfirmed`` is True when the criterion or any leaf below rests on a fact tagged R or U.
    ``from_note`` quotes the words of a clinical note the evidence (of any leaf below) rests on.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    result: Result
    evidence: list[Evidence] = Field(default_factory=list)
    needs: str | None = None
    workup: list[str] = Field(default_factory=list)
    source: SourceInfo | None = None
    unconfirmed: bool = False
    children: list[CriterionResult] = Field(default_factory=list)
    from_note: list[str] = Field(
        default_factory=list,
        description="The words of a clinical note this criterion's evidence rests on (facts read from "
        "a note, unconfirmed until reviewed); empty when the evidence is a structured record.",
    )


def source_info(source: SourceRef | None, references: dict[str, Reference]) -> SourceInfo | None:
    """The report form of a source reference.

    Cached by object identity: the knowledge base is loaded once per process and the same few
    hundred sources recur for every patient (hashing frozen pydantic models costs more).
    """
    if source is None:
        return None
    hit = _SOURCE_CACHE.get(id(source))
    if hit is not None and hit[0] is source:
        return hit[1]
    ref = references[source.ref]
    info = SourceInfo(
        citation=ref.citation,
        section=source.section,
        url=ref.url,
        verification=source.verification.value,
        confirmed=source.verification.confirmed,
        note=source.note,
    )
    _SOURCE_CACHE[id(source)] = (source, info)
    return info


_SOURCE_CACHE: dict[int, tuple[SourceRef, SourceInfo]] = {}


def evaluate(
    node: Criterion,
    facts: FactSource,
    references: dict[str, Reference],
    workup_for: Callable[[str], str],
) -> CriterionResult:
    """Evaluate a criterion tree for one patient.

    Args:
        node: the criterion (group or leaf).
        facts: returns a :class:`FactValue` for a fact id (cached by the caller).
        references: the file's reference table, to resolve sources.
        workup_for: fact id -> work-up item id that settles it.

    Returns:
        The result tree; group results carry their children.
    """
    source = source_info(node.source, references)
    own_unconfirmed = source is not None and not source.confirmed
    if node.fact is not None:
        return _leaf(node, facts(node.fact), source, own_unconfirmed, workup_for)

    children = [evaluate(child, facts, references, workup_for) for child in node.children]
    results = [child.result for child in children]
    if node.all_of is not None:
        result = _all(results)
    elif node.any_of is not None:
        result = _any(results)
    else:
        result = _not(results[0])
    workup = _unique(item for child in children if child.result is Result.UNKNOWN for item in child.workup)
    needs = None
    if result is Result.UNKNOWN:
        needs = "; ".join(dict.fromkeys(c.needs for c in children if c.result is Result.UNKNOWN and c.needs))
    return _result(
        id=node.id,
        text=node.text,
        result=result,
        evidence=[ev for child in children for ev in child.evidence],
        needs=needs or None,
        workup=workup if result is Result.UNKNOWN else [],
        source=source,
        unconfirmed=own_unconfirmed or any(child.unconfirmed for child in children),
        children=children,
    )


def _result(
    *,
    id: str,
    text: str,
    result: Result,
    evidence: list[Evidence] | None = None,
    needs: str | None = None,
    workup: list[str] | None = None,
    source: SourceInfo | None = None,
    unconfirmed: bool = False,
    children: list[CriterionResult] | None = None,
) -> CriterionResult:
    """Build a result without re-validating typed inputs (every field given: pydantic's
    default factories are slow under ``model_construct``)."""
    return CriterionResult.model_construct(
        id=id,
        text=text,
        result=result,
        evidence=evidence if evidence is not None else [],
        needs=needs,
        workup=workup if workup is not None else [],
        source=source,
        unconfirmed=unconfirmed,
        children=children if children is not None else [],
        from_note=[],
    )


def _all(results: list[Result]) -> Result:
    if Result.NOT_MET in results:
        return Result.NOT_MET
    return Result.UNKNOWN if Result.UNKNOWN in results else Result.MET


def _any(results: list[Result]) -> Result:
    if Result.MET in results:
        return Result.MET
    return Result.UNKNOWN if Result.UNKNOWN in results else Result.NOT_MET


def _not(result: Result) -> Result:
    return {Result.MET: Result.NOT_MET, Result.NOT_MET: Result.MET}.get(result, Result.UNKNOWN)


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


def _leaf(
    node: Criterion,
    fact: FactValue,
    source: SourceInfo | None,
    unconfirmed: bool,
    workup_for: Callable[[str], str],
) -> CriterionResult:
    assert node.fact is not None and node.op is not None
    result = leaf_result(node, fact)
    if result is not Result.UNKNOWN:
        return _result(
            id=node.id,
            text=node.text,
            result=result,
            evidence=list(fact.evidence),
            source=source,
            unconfirmed=unconfirmed,
        )
    needs: str | None
    if node.remarks and node.remarks.startswith(REVIEW_PREFIX):
        # A criterion the trial parser could not type: what settles it is reading its own text.
        needs = f"unknown: {node.remarks}"
    elif fact.known:
        untested = sorted(set(_as_tuple(node.value)) - set(fact.tested or ()))
        needs = f"unknown: needs {fact.reason or 'a test'} for {', '.join(map(str, untested))}"
    else:
        needs = f"unknown: needs {fact.reason}" if fact.reason else None
    return _result(
        id=node.id,
        text=node.text,
        result=Result.UNKNOWN,
        evidence=list(fact.evidence),
        needs=needs,
        workup=[workup_for(node.fact)],
        source=source,
        unconfirmed=unconfirmed,
    )


#: Remarks of a leaf the trial parser could not type start with this (``actnav.trials.parse``).
REVIEW_PREFIX = "needs review:"


def leaf_result(node: Criterion, fact: FactValue) -> Result:
    """The three-valued result of one leaf for a fact value (the engine's leaf rule, reused by the
    trial matcher's fast path so both always agree).

    * unknown fact: the leaf's ``if_missing`` (``unknown`` unless the source says otherwise);
    * a codes fact with ``tested`` (only some codes were tested): ``has_all`` / ``has_any`` /
      ``has_none`` are decided when the tested codes decide them, else unknown;
    * otherwise :func:`compare`.
    """
    assert node.op is not None
    if not fact.known:
        return Result(node.if_missing)
    if fact.tested is not None and node.op in ("has_any", "has_all", "has_none"):
        return _partial_set(node.op, _as_tuple(fact.value), fact.tested, _as_tuple(node.value))
    return Result.MET if compare(node.op, fact.value, node.value) else Result.NOT_MET


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _partial_set(op: str, have: tuple[Any, ...], tested: tuple[str, ...], want: tuple[Any, ...]) -> Result:
    present = set(have)
    decided = set(tested) | present
    if op == "has_all":
        if all(w in present for w in want):
            return Result.MET
        if any(w in decided and w not in present for w in want):
            return Result.NOT_MET
        return Result.UNKNOWN
    if op == "has_any":
        if any(w in present for w in want):
            return Result.MET
        return Result.NOT_MET if all(w in decided for w in want) else Result.UNKNOWN
    if any(w in present for w in want):  # has_none
        return Result.NOT_MET
    return Result.MET if all(w in decided for w in want) else Result.UNKNOWN


def compare(op: str, actual: Any, expected: Any) -> bool:
    """Apply a leaf operator. ``actual`` is a known fact value (never None).

    Raises:
        TypeError: the operator does not fit the value types (a data file bug).
    """
    if op in ("has_any", "has_all", "has_none"):
        have = set(actual) if isinstance(actual, tuple) else {actual}
        want = set(expected)
        if op == "has_any":
            return bool(have & want)
        if op == "has_all":
            return want <= have
        return not (have & want)
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if isinstance(actual, bool) or isinstance(expected, bool):
        raise TypeError(f"operator {op} needs numbers, got {actual!r} and {expected!r}")
    a, e = float(actual), float(expected)
    return {"lt": a < e, "le": a <= e, "gt": a > e, "ge": a >= e}[op]
