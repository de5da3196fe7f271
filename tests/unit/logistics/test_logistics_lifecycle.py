"""The lifecycle rules on their own (no database): moves, and what each step needs.

The infusion rules come from the issue's acceptance ("the lifecycle refuses an infusion without
release and lymphodepletion recorded") and the label's window after lymphodepletion
(axicabtagene ciloleucel: infuse 3 days after the last lymphodepletion day, clinical-reference 1.2).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from actnav.errors import InputError
from actnav.logistics.lifecycle import (
    MOVES,
    ORDER,
    CaseFacts,
    InfusionCheck,
    LymphodepletionDates,
    Release,
    Step,
    TransitionRefused,
    check_transition,
    parse_step,
    unmet_requirements,
)

DIN = "G1234260000014"
READY = CaseFacts(
    step=Step.LYMPHODEPLETION,
    product_id="axicabtagene_ciloleucel",
    indication_id="lbcl-second-line",
    report_attached=True,
    release=Release(din=DIN, status="within_label"),
    lymphodepletion=LymphodepletionDates(start=dt.date(2026, 2, 28), end=dt.date(2026, 3, 2)),
    identity_registered=True,
    custody={
        DIN: ("collected", "labelled", "shipped", "received", "shipped", "received", "stored", "thawed")
    },
)


def infusion(day: dt.date = dt.date(2026, 3, 5), **changes: object) -> InfusionCheck:
    check = InfusionCheck(
        din=DIN,
        bedside_passed=True,
        bedside_reasons=(),
        infusion_date=day,
        window_min_days=3,
        window_max_days=3,
    )
    return replace(check, **changes)  # type: ignore[arg-type]


def test_a_complete_case_may_be_infused() -> None:
    assert unmet_requirements(READY, Step.INFUSED, infusion=infusion()) == []
    check_transition(READY, Step.INFUSED, infusion=infusion())


def test_infusion_without_release_is_refused() -> None:
    reasons = unmet_requirements(replace(READY, release=None), Step.INFUSED, infusion=infusion())
    assert any("release is not recorded" in r for r in reasons)


def test_infusion_without_lymphodepletion_is_refused() -> None:
    reasons = unmet_requirements(replace(READY, lymphodepletion=None), Step.INFUSED, infusion=infusion())
    assert reasons == ["lymphodepletion is not recorded"]


def test_infusion_without_both_gives_both_reasons_even_from_the_wrong_step() -> None:
    facts = replace(READY, step=Step.RECEIVED, release=None, lymphodepletion=None)
    with pytest.raises(TransitionRefused) as caught:
        check_transition(facts, Step.INFUSED, infusion=infusion())
    text = " ".join(caught.value.reasons)
    assert "infused does not follow received" in text
    assert "release is not recorded" in text
    assert "lymphodepletion is not recorded" in text
    assert isinstance(caught.value, InputError)


def test_an_out_of_specification_product_needs_the_documented_decision() -> None:
    oos = replace(READY, release=Release(din=DIN, status="out_of_specification"))
    assert any(
        "out of specification" in r for r in unmet_requirements(oos, Step.INFUSED, infusion=infusion())
    )
    accepted = replace(
        READY, release=Release(din=DIN, status="out_of_specification", accepted_deviation="EAP consent 12")
    )
    assert unmet_requirements(accepted, Step.INFUSED, infusion=infusion()) == []


def test_infusion_outside_the_label_window_needs_a_documented_deviation() -> None:
    late = infusion(dt.date(2026, 3, 6))  # 4 days after the last lymphodepletion day; the label says 3
    reasons = unmet_requirements(READY, Step.INFUSED, infusion=late)
    assert reasons and "outside the label's window (3 days)" in reasons[0]
    assert (
        unmet_requirements(READY, Step.INFUSED, infusion=replace(late, deviation="ICU bed; Dr A agreed"))
        == []
    )
    early = unmet_requirements(READY, Step.INFUSED, infusion=infusion(dt.date(2026, 3, 1)))
    assert "before lymphodepletion ends" in " ".join(early)


def test_infusion_needs_a_passed_bedside_check_a_thawed_bag_of_this_case_and_the_released_one() -> None:
    failed = infusion(
        bedside_passed=False, bedside_reasons=("the date of birth on the bag label does not match",)
    )
    assert any("bedside check failed" in r for r in unmet_requirements(READY, Step.INFUSED, infusion=failed))
    stored = replace(READY, custody={DIN: ("collected", "labelled", "stored")})
    assert any("thawed" in r for r in unmet_requirements(stored, Step.INFUSED, infusion=infusion()))
    other = unmet_requirements(READY, Step.INFUSED, infusion=infusion(din="G1234260000022"))
    assert any("not a collection of this case" in r for r in other)
    assert unmet_requirements(replace(READY, identity_registered=False), Step.INFUSED, infusion=infusion())
    assert unmet_requirements(READY, Step.INFUSED) == [
        "infusion needs the bag's DIN and a bedside identity check"
    ]


def test_steps_follow_in_order_and_cannot_be_skipped() -> None:
    facts = CaseFacts(step=Step.REFERRAL, product_id="tisagenlecleucel", indication_id=None)
    assert unmet_requirements(facts, Step.EVALUATION) == []
    assert "does not follow" in unmet_requirements(facts, Step.COLLECTION)[0]
    for i, step in enumerate(ORDER[: ORDER.index(Step.INFUSED)]):
        assert ORDER[i + 1] in MOVES[step] and Step.WITHDRAWN in MOVES[step]
    assert MOVES[Step.CLOSED] == frozenset() and MOVES[Step.WITHDRAWN] == frozenset()
    assert Step.WITHDRAWN not in MOVES[Step.INFUSED]


def test_failed_manufacture_and_release_may_go_back() -> None:
    assert Step.COLLECTION in MOVES[Step.MANUFACTURING]
    assert {Step.MANUFACTURING, Step.COLLECTION} <= MOVES[Step.RELEASE_TESTING]


def test_review_needs_the_report_and_authorisation_the_decision_and_indication() -> None:
    evaluation = CaseFacts(step=Step.EVALUATION, product_id="tisagenlecleucel", indication_id=None)
    assert unmet_requirements(evaluation, Step.REVIEW) == ["the evaluation report is not attached"]
    review = replace(evaluation, step=Step.REVIEW, report_attached=True)
    reasons = unmet_requirements(review, Step.AUTHORISATION)
    assert len(reasons) == 2
    assert unmet_requirements(review, Step.AUTHORISATION, decision="not_proceed")
    assert (
        unmet_requirements(
            replace(review, indication_id="b-all-up-to-25"), Step.AUTHORISATION, decision="proceed"
        )
        == []
    )
    assert unmet_requirements(review, Step.WITHDRAWN, decision="not_proceed") == []


def test_shipments_and_receipt_need_the_custody_log() -> None:
    facts = CaseFacts(
        step=Step.COLLECTION, product_id="x", indication_id="y", custody={DIN: ("collected", "labelled")}
    )
    assert "shipped" in unmet_requirements(facts, Step.SHIPPED_TO_MANUFACTURING)[0]
    shipped = replace(facts, custody={DIN: ("collected", "labelled", "shipped")})
    assert unmet_requirements(shipped, Step.SHIPPED_TO_MANUFACTURING) == []
    back = replace(shipped, step=Step.SHIPPED_BACK)
    assert "received" in unmet_requirements(back, Step.RECEIVED)[0]


def test_lymphodepletion_needs_its_dates_in_order() -> None:
    facts = replace(READY, step=Step.RECEIVED, lymphodepletion=None)
    assert unmet_requirements(facts, Step.LYMPHODEPLETION) == [
        "the lymphodepletion start and end dates are not given"
    ]
    backwards = replace(
        facts, lymphodepletion=LymphodepletionDates(dt.date(2026, 3, 2), dt.date(2026, 2, 28))
    )
    assert unmet_requirements(backwards, Step.LYMPHODEPLETION) == ["lymphodepletion ends before it starts"]


@pytest.mark.parametrize(
    ("text", "step"), [("shipped-back", Step.SHIPPED_BACK), ("Release testing", Step.RELEASE_TESTING)]
)
def test_step_names_are_read_leniently(text: str, step: Step) -> None:
    assert parse_step(text) is step


def test_an_unknown_step_lists_the_steps() -> None:
    with pytest.raises(InputError) as caught:
        parse_step("apheresis")
    assert "referral" in (caught.value.hint or "")
