"""Three-valued logic of criterion trees (Kleene): unknown is never silently false."""

from __future__ import annotations

import pytest

from actnav.eligibility.engine import FactValue, Result, compare, evaluate
from actnav.knowledge.models import Criterion, Reference

REFS = {"ref": Reference(citation="test reference")}


def leaf(cid: str, fact: str, op: str, value: object, unit: str | None = None) -> dict[str, object]:
    node: dict[str, object] = {"id": cid, "text": cid, "fact": fact, "op": op, "value": value}
    if unit:
        node["unit"] = unit
    return node


def facts_from(values: dict[str, object]):
    def source(fact_id: str) -> FactValue:
        value = values.get(fact_id)
        if value is None:
            return FactValue(fact=fact_id, reason=f"{fact_id} result")
        return FactValue(fact=fact_id, value=value)  # type: ignore[arg-type]

    return source


def run(tree: dict[str, object], values: dict[str, object]) -> Result:
    criterion = Criterion.model_validate(tree)
    return evaluate(criterion, facts_from(values), REFS, lambda f: f"workup-{f}").result


AGE = leaf("age", "age_years", "le", 25, "a")
STATE = {
    "id": "state",
    "text": "refractory or second or later relapse",
    "any_of": [leaf("refr", "refractory", "eq", True), leaf("rel2", "relapse_count", "ge", 2, "1")],
}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"refractory": True}, Result.MET),
        ({"refractory": False, "relapse_count": 2.0}, Result.MET),
        ({"refractory": False, "relapse_count": 1.0}, Result.NOT_MET),
        ({"relapse_count": 2.0}, Result.MET),  # unknown OR met = met
        ({"relapse_count": 1.0}, Result.UNKNOWN),  # unknown OR not met = unknown
        ({}, Result.UNKNOWN),
    ],
)
def test_any_of_follows_kleene_logic(values: dict[str, object], expected: Result) -> None:
    assert run(STATE, values) is expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"age_years": 34.0, "refractory": True}, Result.NOT_MET),
        ({"age_years": 34.0}, Result.NOT_MET),  # not met AND unknown = not met
        ({"age_years": 25.0}, Result.UNKNOWN),  # met AND unknown = unknown
        ({"age_years": 25.0, "refractory": True}, Result.MET),
    ],
)
def test_all_of_follows_kleene_logic(values: dict[str, object], expected: Result) -> None:
    tree = {"id": "all", "text": "all", "all_of": [AGE, STATE]}
    assert run(tree, values) is expected


def test_not_keeps_unknown_unknown() -> None:
    tree = {"id": "n", "text": "not", "not": leaf("x", "braf_v600", "eq", "positive")}
    assert run(tree, {}) is Result.UNKNOWN
    assert run(tree, {"braf_v600": "positive"}) is Result.NOT_MET
    assert run(tree, {"braf_v600": "negative"}) is Result.MET


def test_unknown_leaf_says_what_is_needed_and_which_workup() -> None:
    criterion = Criterion.model_validate({"id": "all", "text": "all", "all_of": [AGE, STATE]})
    out = evaluate(criterion, facts_from({"age_years": 20.0}), REFS, lambda f: f"workup-{f}")
    assert out.result is Result.UNKNOWN
    assert out.needs is not None and "refractory result" in out.needs
    assert out.workup == ["workup-refractory", "workup-relapse_count"]


def test_if_missing_can_be_stated_by_the_rule() -> None:
    tree = leaf("cns", "cns_involvement", "eq", False) | {"if_missing": "met"}
    assert run(tree, {}) is Result.MET


@pytest.mark.parametrize(
    ("op", "actual", "expected", "result"),
    [
        ("has_any", ("A*02:01P", "A*03:01P"), ("A*02:01P", "A*02:06P"), True),
        ("has_none", ("A*02:01P", "A*02:05P"), ("A*02:05P",), False),
        ("has_all", ("imid", "proteasome_inhibitor"), ("imid", "proteasome_inhibitor", "anti_cd38"), False),
        ("in", "b_all", ("b_all", "t_all"), True),
        ("ge", 18.0, 18, True),
        ("lt", 17.99, 18, True),
    ],
)
def test_operators(op: str, actual: object, expected: object, result: bool) -> None:
    assert compare(op, actual, expected) is result


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "x", "text": "x", "fact": "age_years", "op": "le"},  # no value
        {"id": "x", "text": "x", "fact": "age_years", "op": "in", "value": 3},  # list op, scalar
        {"id": "x", "text": "x", "all_of": []},
        {"id": "x", "text": "x", "all_of": [AGE], "any_of": [AGE]},
        {"id": "x", "text": "x", "fact": "age_years", "op": "le", "value": 25, "bogus": 1},
    ],
)
def test_malformed_criteria_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Criterion.model_validate(bad)
