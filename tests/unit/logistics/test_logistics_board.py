"""The case board of the service API: cases by lifecycle step, days in step, next milestone.

The walk is the axicabtagene ciloleucel case of conftest (collection recorded on 2026-02-12,
manufacturing entered on 2026-02-13). Manufacturing turnaround of axicabtagene ciloleucel: 14 days
from collection to release (median after the Feb 2024 process change, Kite via SOHO news [S];
docs/vein-to-vein.md section 4 and data/logistics/vein-to-vein.yaml).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from tests.unit.logistics.conftest import ACTOR, CASE, DAYS, RECORDED, move, noon, walk

from actnav.errors import InputError
from actnav.logistics import service
from actnav.logistics.lifecycle import Step


def test_find_case_gives_none_for_an_unknown_reference_and_refuses_a_malformed_one(engine: Engine) -> None:
    assert service.find_case(engine, "CASE-9999") is None
    walk(engine, Step.EVALUATION)
    found = service.find_case(engine, CASE)
    assert found is not None and found.step == "evaluation"
    with pytest.raises(InputError):
        service.find_case(engine, "Jane Doe")  # a space: not a pseudonymous reference


def test_the_step_was_entered_with_its_latest_transition(engine: Engine) -> None:
    walk(engine, Step.MANUFACTURING)
    case = service.read_case(engine, CASE)
    assert service.step_entered_at(case) == noon(DAYS[Step.MANUFACTURING])


def test_the_board_groups_active_cases_by_step_in_lifecycle_order(engine: Engine) -> None:
    walk(engine, Step.MANUFACTURING)
    service.open_case(
        engine,
        "CASE-0002",
        "lifileucel",
        at=noon(dt.date(2026, 2, 18)),
        recorded_at=RECORDED,
        actor=ACTOR,
        reason="referral received",
    )
    board = service.case_board(engine, dt.date(2026, 2, 20))
    assert [c.step for c in board] == [
        "referral",
        "evaluation",
        "review",
        "authorisation",
        "collection",
        "shipped_to_manufacturing",
        "manufacturing",
        "release_testing",
        "shipped_back",
        "received",
        "lymphodepletion",
        "infused",
        "monitoring",
        "follow_up",
    ]
    columns = {c.step: c for c in board}
    (card,) = columns["manufacturing"].cards
    assert (card.case_ref, card.brand, card.modality) == (CASE, "Yescarta", "CAR-T")
    assert card.days_in_step == 7  # entered 2026-02-13
    assert card.next_milestone is not None
    assert (card.next_milestone.key, card.next_milestone.date) == ("release", dt.date(2026, 2, 26))
    assert card.next_milestone.status == "planned"
    assert card.conflicts == ()
    (other,) = columns["referral"].cards
    assert (other.case_ref, other.modality, other.days_in_step) == ("CASE-0002", "TIL", 2)
    assert other.next_milestone is None  # no collection date yet: nothing dated


def test_closed_and_withdrawn_cases_are_on_the_full_board_only(engine: Engine) -> None:
    walk(engine, Step.EVALUATION)
    move(engine, Step.WITHDRAWN, at=noon(dt.date(2026, 2, 3)), reason="patient's choice")
    assert all(not c.cards for c in service.case_board(engine, dt.date(2026, 2, 20)))
    full = {c.step: c for c in service.case_board(engine, dt.date(2026, 2, 20), active_only=False)}
    assert list(full)[-2:] == ["closed", "withdrawn"]
    assert [c.case_ref for c in full["withdrawn"].cards] == [CASE]
