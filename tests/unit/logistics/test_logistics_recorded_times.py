"""QA defects of the vein-to-vein service: when recorded steps happened, the schedule of a case that
has moved on, slips, indication ids, free-text limits.

The walk is a tisagenlecleucel (Kymriah) case for B-ALL up to 25 years at 40 kg. Label facts used
(src/actnav/data/products/tisagenlecleucel.yaml, label 2.2, verified): lymphodepletion over 4 days
(fludarabine 4 days, cyclophosphamide 2 days), infusion 2 to 14 days after it is completed; dose
at 50 kg or less 0.2 to 5.0 x 10^6 CAR-positive viable T cells/kg (40 kg: 8 x 10^6 to 2 x 10^8).
Identifiers are invented.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from tests.unit.logistics.conftest import ACTOR, bag_for, person

from actnav.errors import InputError
from actnav.logistics import service
from actnav.logistics.dose import Certificate
from actnav.logistics.lifecycle import CLOCK_SKEW, FREE_TEXT_MAX, Step, TransitionRefused, check_event_time

UTC = dt.UTC
CASE = "CASE-1"
KYMRIAH, B_ALL = "tisagenlecleucel", "b-all-up-to-25"
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=UTC)  # "now" of every write of the walk
LD_START, LD_END = dt.date(2026, 11, 24), dt.date(2026, 11, 27)  # 4 days (label)


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC)


def move(engine: Engine, target: Step, when: dt.datetime, now: dt.datetime = NOW, **kwargs: object) -> None:
    service.advance(
        engine, CASE, target, at=when, recorded_at=now, actor=ACTOR, reason=f"to {target.value}", **kwargs
    )  # type: ignore[arg-type]


def custody(engine: Engine, din: str, event: str, when: dt.datetime, **kwargs: object) -> None:
    service.append_custody_event(engine, CASE, din, event, at=when, recorded_at=NOW, actor=ACTOR, **kwargs)  # type: ignore[arg-type]


def kymriah(engine: Engine, until: Step) -> str:
    """Walk CASE to ``until`` (from collection on); returns the DIN."""
    common = {"recorded_at": NOW, "actor": ACTOR}
    service.open_case(
        engine,
        CASE,
        KYMRIAH,
        indication_id=B_ALL,
        identity=person(),
        at=at(10, 1),
        reason="referral",
        **common,
    )  # type: ignore[arg-type]
    move(engine, Step.EVALUATION, at(10, 5))
    service.attach_report(engine, CASE, sha256="ab" * 32, name="r.html", size=1, at=at(10, 12, 8), **common)  # type: ignore[arg-type]
    move(engine, Step.REVIEW, at(10, 12))
    move(engine, Step.AUTHORISATION, at(10, 14), decision="proceed")
    move(engine, Step.COLLECTION, at(10, 20))
    din = service.add_collection(engine, CASE, facility="G1234", at=at(10, 22, 8), **common).text  # type: ignore[arg-type]
    custody(engine, din, "labelled", at(10, 22, 9))
    custody(engine, din, "shipped", at(10, 22, 10))
    move(engine, Step.SHIPPED_TO_MANUFACTURING, at(10, 22, 11))
    custody(engine, din, "received", at(10, 23, 9))
    move(engine, Step.MANUFACTURING, at(10, 23))
    move(engine, Step.RELEASE_TESTING, at(11, 15))
    if until is Step.RELEASE_TESTING:
        return din
    service.case_certificate(
        engine,
        CASE,
        40.0,
        Certificate(cells=1.0e8, lot="L1"),
        record=True,
        din=din,
        at=at(11, 20, 8),
        **common,
    )  # type: ignore[arg-type]
    custody(engine, din, "shipped", at(11, 21, 9))
    move(engine, Step.SHIPPED_BACK, at(11, 21))
    custody(engine, din, "received", at(11, 22, 9))
    custody(engine, din, "stored", at(11, 22, 10))
    move(engine, Step.RECEIVED, at(11, 22, 11))
    if until is Step.RECEIVED:
        return din
    move(engine, Step.LYMPHODEPLETION, at(11, 24, 8), lymphodepletion=(LD_START, LD_END, "Flu/Cy"))
    custody(engine, din, "thawed", at(11, 30, 9))
    move(engine, Step.INFUSED, at(11, 30), bag=bag_for(din), wristband=person())  # 3 days after LD ends
    return din


# ------------------------------------------------------------------------ 1. when steps happened


def test_the_clock_rule_allows_five_minutes_of_clock_difference() -> None:
    assert dt.timedelta(minutes=5) == CLOCK_SKEW
    check_event_time(NOW + dt.timedelta(minutes=5), now=NOW, previous=NOW)
    with pytest.raises(InputError, match="in the future") as caught:
        check_event_time(NOW + dt.timedelta(minutes=6), now=NOW)
    assert caught.value.where == "at"
    with pytest.raises(InputError, match=r"before the previous step review \(2026-11-01T09:00Z\)"):
        check_event_time(at(10, 1), now=NOW, previous=at(11, 1, 9), previous_what="step review")


def test_a_step_dated_before_the_one_it_follows_is_refused_naming_its_time(engine: Engine) -> None:
    service.open_case(engine, CASE, KYMRIAH, at=at(10, 20), recorded_at=NOW, actor=ACTOR)
    move(engine, Step.EVALUATION, at(11, 1, 9))
    service.attach_report(
        engine, CASE, sha256="ab" * 32, name="r", size=1, at=at(11, 1), recorded_at=NOW, actor=ACTOR
    )
    with pytest.raises(InputError) as caught:
        move(engine, Step.REVIEW, at(10, 1))
    assert caught.value.where == "at"
    assert "previous step evaluation (2026-11-01T09:00Z)" in str(caught.value)
    assert service.read_case(engine, CASE).step == "evaluation"


def test_future_steps_are_refused_they_belong_to_the_schedule(engine: Engine) -> None:
    with pytest.raises(InputError, match="in the future"):
        service.open_case(engine, CASE, KYMRIAH, at=NOW + dt.timedelta(days=1), recorded_at=NOW, actor=ACTOR)
    service.open_case(engine, CASE, KYMRIAH, at=at(10, 20), recorded_at=NOW, actor=ACTOR)
    with pytest.raises(InputError, match="schedule") as caught:
        move(engine, Step.EVALUATION, dt.datetime(2099, 1, 1, tzinfo=UTC))
    assert caught.value.where == "at"
    move(engine, Step.EVALUATION, NOW + dt.timedelta(minutes=4))  # a clock a little ahead


def test_the_release_and_the_collection_follow_the_case_steps(engine: Engine) -> None:
    din = kymriah(engine, Step.RELEASE_TESTING)
    certificate = Certificate(cells=1.0e8, lot="L1")
    common = {"record": True, "din": din, "recorded_at": NOW, "actor": ACTOR}
    with pytest.raises(InputError, match=r"before the previous step release_testing \(2026-11-15T10:00Z\)"):
        service.case_certificate(engine, CASE, 40.0, certificate, at=at(11, 14), **common)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="in the future"):
        service.case_certificate(engine, CASE, 40.0, certificate, at=NOW + dt.timedelta(hours=1), **common)  # type: ignore[arg-type]
    # QA's case: the release stamped later than the shipment back it precedes
    service.case_certificate(engine, CASE, 40.0, certificate, at=at(11, 28), **common)  # type: ignore[arg-type]
    custody(engine, din, "shipped", at(11, 28, 11))
    with pytest.raises(InputError, match=r"previous product release \(2026-11-28T10:00Z\)"):
        move(engine, Step.SHIPPED_BACK, at(11, 21))


def test_a_custody_event_may_not_precede_the_previous_one_of_its_collection(engine: Engine) -> None:
    din = kymriah(engine, Step.RELEASE_TESTING)  # shipped 2026-10-22, received 2026-10-23 09:00
    with pytest.raises(InputError, match=r"custody event 'received' of .* \(2026-10-23T09:00Z\)") as caught:
        custody(engine, din, "shipped", dt.datetime(2020, 1, 1, tzinfo=UTC))
    assert caught.value.where == "at"
    with pytest.raises(InputError, match="in the future"):
        custody(engine, din, "stored", NOW + dt.timedelta(days=1))


def test_monitoring_and_infusion_follow_the_steps_before_them(engine: Engine) -> None:
    din = kymriah(engine, Step.RECEIVED)
    move(engine, Step.LYMPHODEPLETION, at(11, 24, 8), lymphodepletion=(LD_START, LD_END, "Flu/Cy"))
    custody(engine, din, "thawed", at(11, 30, 9))
    with pytest.raises(InputError, match=r"custody event 'thawed'"):
        move(engine, Step.INFUSED, at(11, 30, 8), bag=bag_for(din), wristband=person())
    move(engine, Step.INFUSED, at(11, 30), bag=bag_for(din), wristband=person())
    with pytest.raises(InputError, match=r"previous step infused \(2026-11-30T10:00Z\)"):
        move(engine, Step.MONITORING, at(11, 29, 0))


# --------------------------------------------------------------- 2. the schedule of a case moved on


def test_the_schedule_uses_every_recorded_step_and_plans_only_ahead(engine: Engine) -> None:
    kymriah(engine, Step.RECEIVED)
    plan = service.case_schedule(engine, CASE, as_of=dt.date(2026, 11, 23))
    for key, day in (
        ("collection", dt.date(2026, 10, 22)),
        ("release", dt.date(2026, 11, 20)),
        ("shipped_back", dt.date(2026, 11, 21)),
        ("received", dt.date(2026, 11, 22)),
    ):
        assert (plan.milestone(key).date, plan.milestone(key).status) == (day, "done"), key
    # planned from the receipt: +1 day (programme default), 4 days of regimen, +2 days (label minimum)
    assert plan.milestone("lymphodepletion_start").date == dt.date(2026, 11, 23)
    assert plan.milestone("lymphodepletion_end").date == dt.date(2026, 11, 26)
    assert plan.milestone("infusion").date == dt.date(2026, 11, 28)
    assert plan.conflicts == ()
    assert [d.milestone for d in service.due_steps(engine, dt.date(2026, 11, 23))] == [
        "lymphodepletion_start"
    ]


def test_an_infused_case_has_no_due_shipment_and_no_false_conflict(engine: Engine) -> None:
    kymriah(engine, Step.INFUSED)
    as_of = dt.date(2026, 12, 1)
    plan = service.case_schedule(engine, CASE, as_of=as_of)
    chain = [plan.milestone(k) for k in ("shipped_back", "received", "lymphodepletion_end", "infusion")]
    assert [(m.date, m.status) for m in chain] == [
        (dt.date(2026, 11, 21), "done"),
        (dt.date(2026, 11, 22), "done"),
        (LD_END, "done"),
        (dt.date(2026, 11, 30), "done"),
    ]
    assert plan.conflicts == ()  # 3 days after lymphodepletion: inside 2-14
    assert all(d.milestone not in ("shipped_back", "received") for d in service.due_steps(engine, as_of))


def test_planned_lymphodepletion_days_are_not_done_before_the_step(engine: Engine) -> None:
    kymriah(engine, Step.RECEIVED)
    service.record_lymphodepletion(
        engine,
        CASE,
        start=LD_START,
        end=LD_END,
        regimen="Flu/Cy",
        at=at(11, 22, 12),
        recorded_at=NOW,
        actor=ACTOR,
        reason="booked",
    )
    plan = service.case_schedule(engine, CASE, as_of=dt.date(2026, 11, 25))
    assert plan.milestone("lymphodepletion_start").status == "overdue"  # not recorded as started
    assert plan.milestone("received").status == "done"


def test_a_return_to_manufacturing_drops_the_earlier_release(engine: Engine) -> None:
    din = kymriah(engine, Step.RELEASE_TESTING)
    common = {"record": True, "din": din, "recorded_at": NOW, "actor": ACTOR}
    service.case_certificate(engine, CASE, 40.0, Certificate(cells=1.0e8), at=at(11, 16), **common)  # type: ignore[arg-type]
    move(engine, Step.MANUFACTURING, at(11, 17))  # failed release: re-manufacture
    plan = service.case_schedule(engine, CASE, as_of=dt.date(2026, 11, 18))
    assert plan.milestone("release").status != "done"
    assert plan.milestone("collection").date == dt.date(2026, 10, 22)


# ------------------------------------------------------------------------------------- 3. slips


def test_a_step_that_happened_cannot_slip(engine: Engine) -> None:
    kymriah(engine, Step.INFUSED)
    with pytest.raises(InputError, match="already happened on 2026-11-30") as caught:
        service.record_expected_date(
            engine, CASE, "infusion", dt.date(2026, 12, 5), at=NOW, recorded_at=NOW, actor=ACTOR, reason="x"
        )
    assert caught.value.where == "milestone"
    assert service.read_case(engine, CASE).latest("expected_date") is None


def test_a_slip_into_the_past_is_refused(engine: Engine) -> None:
    kymriah(engine, Step.RELEASE_TESTING)
    slip = {"at": NOW, "recorded_at": NOW, "actor": ACTOR, "reason": "QC retest"}
    with pytest.raises(InputError, match="in the past"):
        service.record_expected_date(engine, CASE, "release", dt.date(2020, 1, 1), **slip)  # type: ignore[arg-type]
    service.record_expected_date(engine, CASE, "release", dt.date(2026, 12, 3), **slip)  # type: ignore[arg-type]
    assert service.case_schedule(engine, CASE, as_of=NOW.date()).milestone("release").date == dt.date(
        2026, 12, 3
    )


# ------------------------------------------------------------------- 4. and 5. indications, free text


def test_an_unknown_indication_lists_the_product_indications(engine: Engine) -> None:
    with pytest.raises(InputError) as caught:
        service.open_case(
            engine, CASE, KYMRIAH, indication_id="x", at=at(10, 1), recorded_at=NOW, actor=ACTOR
        )
    assert caught.value.where == "indication"
    assert caught.value.hint == "one of b-all-up-to-25, lbcl-after-2-lines, fl-after-2-lines"


def test_deviations_and_custody_details_are_short_notes(engine: Engine) -> None:
    din = kymriah(engine, Step.RECEIVED)
    with pytest.raises(InputError, match=f"at most {FREE_TEXT_MAX}") as caught:
        custody(engine, din, "thawed", at(11, 30, 9), details={"note": "x" * (FREE_TEXT_MAX + 1)})
    assert caught.value.where == "details"
    move(engine, Step.LYMPHODEPLETION, at(11, 24, 8), lymphodepletion=(LD_START, LD_END, "Flu/Cy"))
    custody(engine, din, "thawed", at(11, 30, 9), details={"note": "x" * FREE_TEXT_MAX})
    with pytest.raises(InputError) as refused:
        move(engine, Step.INFUSED, at(11, 30), bag=bag_for(din), wristband=person(), deviation="y" * 501)
    assert refused.value.where == "deviation" and not isinstance(refused.value, TransitionRefused)
