"""The calendar: planned from product durations, recomputed when a date slips, conflicts flagged
against the label windows.

Label facts used (clinical-reference.md):

* axicabtagene ciloleucel: lymphodepletion on days -5, -4, -3, infusion on day 0 (3 days after it
  ends) (1.2); stay near the centre 4 weeks before the June 2025 label change and 2 weeks after (1.10).
* tisagenlecleucel B-ALL: fludarabine 4 days + cyclophosphamide 2 days; infuse 2 to 14 days after
  lymphodepletion completes (1.1).
* obecabtagene autoleucel: no infusion window after lymphodepletion encoded (its day schedule is [R]).

Data of this repository: axicabtagene ciloleucel turnaround 14 days (sponsor figure, SOHO 2024);
programme defaults: 1 day shipment out, 2 days back, lymphodepletion from the day after receipt.
"""

from __future__ import annotations

import datetime as dt

import pytest

from actnav.errors import InputError
from actnav.logistics.schedule import Schedule, build_schedule

AXI, AXI_IND = "axicabtagene_ciloleucel", "lbcl-second-line"
D = dt.date


def dates(schedule: Schedule) -> dict[str, dt.date | None]:
    return {m.key: m.date for m in schedule.milestones}


def test_axicabtagene_plan_from_a_collection_day() -> None:
    plan = build_schedule(AXI, AXI_IND, as_of=D(2026, 3, 1), planned_collection=D(2026, 3, 2))
    got = dates(plan)
    assert got["collection"] == D(2026, 3, 2)
    assert got["shipped_to_manufacturing"] == D(2026, 3, 3)
    assert got["release"] == D(2026, 3, 16)  # 14 days
    assert got["received"] == D(2026, 3, 18)
    assert (got["lymphodepletion_start"], got["lymphodepletion_end"]) == (D(2026, 3, 19), D(2026, 3, 21))
    assert got["infusion"] == D(2026, 3, 24)  # day -3 -> day 0
    assert got["monitoring_end"] == D(2026, 4, 7)  # 2 weeks (label from June 2025)
    assert plan.milestone("lymphodepletion_start").day == -5
    assert plan.milestone("lymphodepletion_end").day == -3
    assert plan.conflicts == ()


def test_before_june_2025_the_period_near_the_centre_was_4_weeks() -> None:
    plan = build_schedule(AXI, AXI_IND, as_of=D(2024, 5, 1), planned_collection=D(2024, 5, 1))
    assert plan.milestone("infusion").date == D(2024, 5, 23)
    assert plan.milestone("monitoring_end").date == D(2024, 6, 20)
    assert plan.milestone("no_driving_end").date == D(2024, 7, 18)  # 8 weeks then


def test_a_slipped_release_moves_everything_after_it() -> None:
    base = dict(
        as_of=D(2026, 3, 10), actual={"collection": D(2026, 3, 2), "shipped_to_manufacturing": D(2026, 3, 3)}
    )
    slipped = build_schedule(AXI, AXI_IND, expected={"release": D(2026, 3, 20)}, **base)  # type: ignore[arg-type]
    got = dates(slipped)
    assert got["release"] == D(2026, 3, 20)
    assert got["received"] == D(2026, 3, 22)
    assert got["lymphodepletion_start"] == D(2026, 3, 23)
    assert got["infusion"] == D(2026, 3, 28)
    assert got["follow_up_28"] == D(2026, 4, 25)
    assert slipped.milestone("release").basis == "expected (set by a user)"
    assert slipped.milestone("collection").status == "done"


def test_recorded_dates_win_over_expected_and_computed_ones() -> None:
    plan = build_schedule(
        AXI,
        AXI_IND,
        as_of=D(2026, 3, 30),
        actual={"collection": D(2026, 3, 2), "infusion": D(2026, 3, 25)},
        expected={"collection": D(2026, 3, 9)},
    )
    assert plan.milestone("collection").date == D(2026, 3, 2)
    assert plan.milestone("infusion").status == "done"
    assert plan.milestone("follow_up_7").date == D(2026, 4, 1)


def test_lymphodepletion_ending_outside_the_label_window_is_a_conflict() -> None:
    tisa = "tisagenlecleucel"
    ld = {"lymphodepletion_start": D(2026, 2, 26), "lymphodepletion_end": D(2026, 3, 1)}
    for infusion, conflict in (
        (D(2026, 3, 2), True),  # 1 day: before the 2-day minimum
        (D(2026, 3, 3), False),  # 2 days
        (D(2026, 3, 15), False),  # 14 days
        (D(2026, 3, 16), True),  # 15 days
    ):
        plan = build_schedule(
            tisa, "b-all-up-to-25", as_of=D(2026, 3, 1), actual=ld, expected={"infusion": infusion}
        )
        kinds = [c.kind for c in plan.conflicts]
        assert ("lymphodepletion_window" in kinds) is conflict, infusion
        if conflict:
            found = next(c for c in plan.conflicts if c.kind == "lymphodepletion_window")
            assert "2 to 14 days" in found.text and found.severity == "conflict"
            assert found.source is not None and found.source.verification == "V"


def test_a_late_lymphodepletion_slip_is_flagged_for_a_product_with_a_fixed_day() -> None:
    # Yescarta: infusion 3 days after lymphodepletion ends; a lymphodepletion that ends 2 days
    # before the fixed infusion day is a conflict.
    plan = build_schedule(
        AXI,
        AXI_IND,
        as_of=D(2026, 3, 19),
        actual={"lymphodepletion_start": D(2026, 3, 19)},
        expected={"lymphodepletion_end": D(2026, 3, 22), "infusion": D(2026, 3, 24)},
    )
    kinds = {c.kind for c in plan.conflicts}
    assert "lymphodepletion_window" in kinds
    assert "lymphodepletion_length" in kinds  # 4 days instead of the label's 3


def test_a_regimen_of_another_length_is_a_warning() -> None:
    plan = build_schedule(
        "tisagenlecleucel",
        "b-all-up-to-25",
        as_of=D(2026, 3, 1),
        actual={"lymphodepletion_start": D(2026, 2, 26), "lymphodepletion_end": D(2026, 2, 28)},
    )
    warning = next(c for c in plan.conflicts if c.kind == "lymphodepletion_length")
    assert warning.severity == "warning" and "takes 4" in warning.text
    assert plan.milestone("infusion").date == D(2026, 3, 2)  # 2 days after, the label's minimum


def test_lymphodepletion_before_the_product_arrives_is_a_warning() -> None:
    plan = build_schedule(
        AXI,
        AXI_IND,
        as_of=D(2026, 3, 10),
        actual={"collection": D(2026, 3, 2)},
        expected={"received": D(2026, 3, 12), "lymphodepletion_start": D(2026, 3, 10)},
    )
    warning = next(c for c in plan.conflicts if c.kind == "lymphodepletion_before_receipt")
    assert "before the product is received" in warning.text
    assert warning.source is not None and not warning.source.confirmed  # label recollection [R]


def test_dates_out_of_order_are_a_conflict() -> None:
    plan = build_schedule(
        AXI,
        AXI_IND,
        as_of=D(2026, 3, 10),
        actual={"collection": D(2026, 3, 2)},
        expected={"release": D(2026, 3, 20), "shipped_back": D(2026, 3, 18)},
    )
    assert any(c.kind == "order" and c.milestone == "shipped_back" for c in plan.conflicts)


def test_statuses_done_overdue_due_and_planned() -> None:
    plan = build_schedule(AXI, AXI_IND, as_of=D(2026, 3, 17), actual={"collection": D(2026, 3, 2)})
    status = {m.key: m.status for m in plan.milestones}
    assert status["collection"] == "done"
    assert status["shipped_to_manufacturing"] == "overdue"  # due 3 March, not recorded
    assert status["received"] == "due"  # 18 March, within the 2-day horizon
    assert status["infusion"] == "planned"


def test_a_product_without_an_encoded_window_leaves_infusion_to_the_user() -> None:
    plan = build_schedule(
        "obecabtagene_autoleucel", "b-all-adult", as_of=D(2026, 3, 1), planned_collection=D(2026, 3, 2)
    )
    assert plan.milestone("lymphodepletion_end").date is None
    assert plan.milestone("infusion").date is None
    assert any("window" in n for n in plan.notes) and any("day schedule" in n for n in plan.notes)
    with_day = build_schedule(
        "obecabtagene_autoleucel",
        "b-all-adult",
        as_of=D(2026, 3, 1),
        planned_collection=D(2026, 3, 2),
        expected={"infusion": D(2026, 4, 10)},
    )
    assert with_day.milestone("follow_up_7").date == D(2026, 4, 17)


def test_programme_defaults_are_marked_and_sourced_durations_are_not() -> None:
    axi = build_schedule(AXI, AXI_IND, as_of=D(2026, 3, 1), planned_collection=D(2026, 3, 2))
    release = axi.milestone("release")
    assert not release.programme_default
    assert release.source is not None and release.source.verification == "S"
    assert axi.milestone("shipped_to_manufacturing").programme_default
    liso = build_schedule(
        "lisocabtagene_maraleucel", "lbcl-second-line", as_of=D(2026, 3, 1), planned_collection=D(2026, 3, 2)
    )
    assert liso.milestone("release").programme_default and liso.unconfirmed


def test_til_turnaround_is_22_days() -> None:
    plan = build_schedule("lifileucel", None, as_of=D(2026, 3, 1), planned_collection=D(2026, 3, 2))
    assert plan.milestone("release").date == D(2026, 3, 24)
    ld_start, ld_end = (
        plan.milestone("lymphodepletion_start").date,
        plan.milestone("lymphodepletion_end").date,
    )
    assert ld_start is not None and ld_end is not None and (ld_end - ld_start).days + 1 == 7
    assert plan.milestone("infusion").date == ld_end + dt.timedelta(days=1)  # at least 24 h after


def test_without_a_collection_date_nothing_is_dated() -> None:
    plan = build_schedule(AXI, AXI_IND, as_of=D(2026, 3, 1))
    assert all(m.date is None for m in plan.milestones)
    assert any("collection date is not set" in n for n in plan.notes)


def test_an_unknown_milestone_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        build_schedule(AXI, AXI_IND, as_of=D(2026, 3, 1), expected={"apheresis": D(2026, 3, 2)})
    assert caught.value.where == "expected"
