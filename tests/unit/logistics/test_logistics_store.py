"""Cases, transitions, records and the custody log in a database (SQLite file and PostgreSQL).

Acceptance of issue 6 covered here: tampering with any stored custody event (changing or deleting a
row directly in the database) is reported naming the first broken entry; a bag for another patient
is refused at the bedside; the lifecycle refuses an infusion without release and lymphodepletion.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from tests.pg import BOTH
from tests.unit.logistics.conftest import (
    ACTOR,
    CASE,
    DAYS,
    OTHER_PATIENT,
    PATIENT,
    RECORDED,
    bag_for,
    custody,
    move,
    noon,
    person,
    walk,
)

from actnav.errors import InputError
from actnav.logistics import service
from actnav.logistics.din import make_din
from actnav.logistics.lifecycle import Step, TransitionRefused
from actnav.store.db import create_schema

DATABASE_BACKENDS = BOTH


def test_a_full_case_from_referral_to_closure(engine: Engine) -> None:
    din = walk(engine, Step.CLOSED)
    case = service.read_case(engine, CASE)
    assert case.step == "closed"
    assert [t.to_step for t in case.transitions] == [s.value for s in Step if s is not Step.WITHDRAWN]
    for t in case.transitions:
        assert t.actor == ACTOR and t.reason and t.at.tzinfo is not None
    assert case.transitions[3].details == {
        "decision": "proceed",
        "product": "axicabtagene_ciloleucel",
        "indication": "lbcl-second-line",
    }
    infused = next(t for t in case.transitions if t.to_step == "infused")
    assert infused.details == {"din": din, "bedside_check": "passed"}
    assert case.collections[0].custody[-2:] == ("thawed", "infused")
    assert service.verify_custody_chain(engine).intact


def test_the_release_record_keeps_the_certificate_check(engine: Engine) -> None:
    din = walk(engine, Step.SHIPPED_BACK)
    release = service.read_case(engine, CASE).latest("release")
    assert release is not None
    assert release.payload["status"] == "within_label"
    assert release.payload["din"] == din
    assert (release.payload["min_cells"], release.payload["max_cells"]) == (1.6e8, 1.6e8)  # 2e6/kg x 80 kg


def test_infusion_is_refused_without_release_and_lymphodepletion(engine: Engine) -> None:
    din = walk(engine, Step.RELEASE_TESTING)
    assert din is not None
    with pytest.raises(TransitionRefused) as caught:
        move(engine, Step.INFUSED, bag=bag_for(din), wristband=person())
    reasons = " ".join(caught.value.reasons)
    assert "release is not recorded" in reasons
    assert "lymphodepletion is not recorded" in reasons
    assert service.read_case(engine, CASE).step == "release_testing"


def test_shipping_back_is_refused_until_the_release_is_recorded(engine: Engine) -> None:
    walk(engine, Step.RELEASE_TESTING)
    with pytest.raises(TransitionRefused, match="release is not recorded"):
        move(engine, Step.SHIPPED_BACK)


def test_an_out_of_specification_release_blocks_until_the_decision_is_documented(engine: Engine) -> None:
    din = walk(engine, Step.RELEASE_TESTING)
    from actnav.logistics.dose import Certificate

    check = service.case_certificate(
        engine,
        CASE,
        80,
        Certificate(cells=1.2e8),
        record=True,
        din=din,
        at=noon(DAYS[Step.SHIPPED_BACK]),
        recorded_at=RECORDED,
        actor=ACTOR,
    )
    assert check.status == "out_of_specification"
    with pytest.raises(TransitionRefused, match="out of specification"):
        move(engine, Step.SHIPPED_BACK)
    service.case_certificate(
        engine,
        CASE,
        80,
        Certificate(cells=1.2e8),
        record=True,
        din=din,
        accepted_deviation="Patient consented; manufacturer expanded access protocol EAP-7",
        at=noon(DAYS[Step.SHIPPED_BACK]),
        recorded_at=RECORDED,
        actor=ACTOR,
    )
    assert din is not None
    custody(engine, din, "shipped", DAYS[Step.SHIPPED_BACK])
    move(engine, Step.SHIPPED_BACK)


def test_a_bag_for_another_patient_is_refused_at_infusion_and_the_refusal_is_recorded(engine: Engine) -> None:
    din = walk(engine, Step.LYMPHODEPLETION)
    assert din is not None
    other = walk(engine, Step.SHIPPED_TO_MANUFACTURING, case_ref="CASE-0002", patient=OTHER_PATIENT)
    assert other is not None
    custody(engine, din, "thawed", DAYS[Step.INFUSED])
    for bag, wristband in (
        (bag_for(other, OTHER_PATIENT), person()),  # another patient's bag, this patient
        (bag_for(other, PATIENT), person()),  # this patient's names on another case's bag
        (
            bag_for(din, OTHER_PATIENT),
            person(OTHER_PATIENT),
        ),  # wristband and bag agree, not this case's patient
    ):
        with pytest.raises(TransitionRefused, match="bedside check failed"):
            move(engine, Step.INFUSED, bag=bag, wristband=wristband)
    case = service.read_case(engine, CASE)
    assert case.step == "lymphodepletion"
    checks = [r for r in case.records if r.kind == "bedside_check"]
    assert len(checks) == 3 and not any(r.payload["passed"] for r in checks)
    assert case.collections[0].custody[-1] == "thawed"  # nothing infused
    move(engine, Step.INFUSED, bag=bag_for(din), wristband=person())
    assert service.read_case(engine, CASE).step == "infused"


def test_bedside_check_without_infusion_is_recorded_without_identifiers(
    engine: Engine, tmp_path: Path
) -> None:
    din = walk(engine, Step.RECEIVED)
    assert din is not None
    result = service.run_bedside_check(
        engine,
        CASE,
        bag_for(din, {**PATIENT, "birth_date": "1970-01-03"}),
        person(),
        at=noon(DAYS[Step.RECEIVED]),
        recorded_at=RECORDED,
        actor=ACTOR,
    )
    assert not result.passed and result.mismatched == ("birth_date",)
    stored = _everything_stored(engine, tmp_path)
    for value in ("Doe", "Jane", "1970-01-02", "1970-01-03", "MRN-0001"):
        assert value.encode() not in stored, value


def _everything_stored(engine: Engine, tmp_path: Path) -> bytes:
    """The SQLite file's bytes (free pages too), or the text of every row of every PostgreSQL table."""
    if engine.dialect.name == "sqlite":
        engine.dispose()
        return (tmp_path / "actnav.db").read_bytes()
    with engine.connect() as connection:
        rows = [
            connection.scalar(text(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {name} AS t"))
            for name in inspect(connection).get_table_names()
        ]
    assert any("G1234" in (row or "") for row in rows)  # the DIN is stored: the dump sees the rows
    return " ".join(row or "" for row in rows).encode()


def test_infusion_outside_the_window_needs_a_deviation(engine: Engine) -> None:
    din = walk(engine, Step.LYMPHODEPLETION)
    assert din is not None
    custody(engine, din, "thawed", DAYS[Step.INFUSED] + dt.timedelta(days=1))
    late = noon(DAYS[Step.INFUSED] + dt.timedelta(days=1))
    with pytest.raises(TransitionRefused, match="outside the label's window"):
        move(engine, Step.INFUSED, bag=bag_for(din), wristband=person(), at=late)
    move(
        engine,
        Step.INFUSED,
        bag=bag_for(din),
        wristband=person(),
        at=late,
        deviation="bed shortage; Dr A agreed",
    )
    infused = service.read_case(engine, CASE).transitions[-1]
    assert infused.details["deviation"] == "bed shortage; Dr A agreed"


def test_illegal_moves_are_refused_and_change_nothing(engine: Engine) -> None:
    walk(engine, Step.EVALUATION)
    with pytest.raises(TransitionRefused, match="collection does not follow evaluation"):
        move(engine, Step.COLLECTION)
    with pytest.raises(TransitionRefused, match="report is not attached"):
        move(engine, Step.REVIEW)
    assert len(service.read_case(engine, CASE).transitions) == 2


def test_a_not_proceed_decision_withdraws_the_case(engine: Engine) -> None:
    walk(engine, Step.REVIEW)
    move(
        engine,
        Step.WITHDRAWN,
        decision="not_proceed",
        reason="MDT: not a candidate",
        at=noon(DAYS[Step.REVIEW]),
    )
    case = service.read_case(engine, CASE)
    assert case.step == "withdrawn" and case.next_steps == ()
    assert case.transitions[-1].details == {"decision": "not_proceed"}
    assert service.list_cases(engine) == []
    assert [c.case_ref for c in service.list_cases(engine, active_only=False)] == [CASE]


def test_the_review_may_choose_another_product(engine: Engine) -> None:
    walk(engine, Step.REVIEW)
    move(
        engine,
        Step.AUTHORISATION,
        decision="proceed",
        product_id="Breyanzi",
        indication_id="lbcl-second-line",
    )
    case = service.read_case(engine, CASE)
    assert (case.product_id, case.indication_id) == ("lisocabtagene_maraleucel", "lbcl-second-line")
    walk_error = pytest.raises(InputError)
    with walk_error:
        service.open_case(
            engine, CASE, "Kymriah", at=noon(DAYS[Step.REFERRAL]), recorded_at=RECORDED, actor=ACTOR
        )


def test_bridging_is_recorded_between_review_and_lymphodepletion_only(engine: Engine) -> None:
    walk(engine, Step.EVALUATION)
    kwargs = dict(
        regimen="R-GemOx",
        start=dt.date(2026, 2, 7),
        end=None,
        at=noon(dt.date(2026, 2, 7)),
        recorded_at=RECORDED,
        actor=ACTOR,
        reason="control disease",
    )
    with pytest.raises(InputError, match="from the review until lymphodepletion"):
        service.record_bridging(engine, CASE, **kwargs)  # type: ignore[arg-type]
    service.attach_report(
        engine,
        CASE,
        sha256="cd" * 32,
        name="r.html",
        size=1,
        at=noon(DAYS[Step.REVIEW]),
        recorded_at=RECORDED,
        actor=ACTOR,
    )
    move(engine, Step.REVIEW)
    case = service.record_bridging(engine, CASE, **kwargs)  # type: ignore[arg-type]
    bridging = case.latest("bridging")
    assert bridging is not None and bridging.payload == {
        "regimen": "R-GemOx",
        "start": "2026-02-07",
        "end": None,
    }
    assert bridging.actor == ACTOR and bridging.reason == "control disease"


def test_custody_events_must_follow_in_order_and_belong_to_the_case(engine: Engine) -> None:
    din = walk(engine, Step.COLLECTION)
    assert din is None
    din = service.add_collection(
        engine, CASE, facility="G1234", at=noon(DAYS[Step.COLLECTION]), recorded_at=RECORDED, actor=ACTOR
    ).text
    with pytest.raises(InputError, match="cannot come after 'collected'"):
        custody(engine, din, "thawed", DAYS[Step.COLLECTION])
    for event in ("collected", "infused", "opened"):
        with pytest.raises(InputError):
            custody(engine, din, event, DAYS[Step.COLLECTION])
    with pytest.raises(InputError, match="not a collection of this case"):
        custody(engine, make_din("G1234", 26, 999).text, "labelled", DAYS[Step.COLLECTION])


def test_dins_are_numbered_per_facility_and_year(engine: Engine) -> None:
    walk(engine, Step.COLLECTION)
    walk(engine, Step.COLLECTION, case_ref="CASE-0002", patient=OTHER_PATIENT)
    at = noon(DAYS[Step.COLLECTION])
    first = service.add_collection(engine, CASE, facility="G1234", at=at, recorded_at=RECORDED, actor=ACTOR)
    second = service.add_collection(
        engine, "CASE-0002", facility="G1234", at=at, recorded_at=RECORDED, actor=ACTOR
    )
    other = service.add_collection(engine, CASE, facility="W0001", at=at, recorded_at=RECORDED, actor=ACTOR)
    assert (first.sequence, second.sequence, other.sequence) == (1, 2, 1)
    assert first.year == 26 and first.text.startswith("G123426000001")


def test_records_and_steps_need_who_and_why(engine: Engine) -> None:
    walk(engine, Step.EVALUATION)
    for actor, reason in (("", "x"), ("nurse.k", "  "), ("a\nb", "x")):
        with pytest.raises(InputError):
            service.advance(
                engine,
                CASE,
                Step.WITHDRAWN,
                at=noon(DAYS[Step.REVIEW]),
                recorded_at=RECORDED,
                actor=actor,
                reason=reason,
            )
    with pytest.raises(InputError):
        service.read_case(engine, "Jane Doe")


# --------------------------------------------------------------------------------- tampering


@pytest.fixture
def logged(infused: Engine) -> Engine:
    assert service.verify_custody_chain(infused).head_seq == 9  # a case walked to infusion
    return infused


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("event", "stored"),
        ("at", "2026-02-13T09:00:01+00:00"),
        ("actor", "someone.else"),
        ("location", "elsewhere"),
        ("details", '{"x":1}'),
        ("din", "G123426000002"),
        ("case_ref", "CASE-0009"),
        ("recorded_at", "2026-03-11T12:00:00+00:00"),
        ("prev_hash", "0" * 64),
        ("entry_hash", "f" * 64),
    ],
)
def test_editing_any_column_of_a_stored_event_is_detected(logged: Engine, column: str, value: str) -> None:
    with logged.begin() as connection:
        connection.execute(
            text(f"UPDATE custody_event SET {column} = :value WHERE seq = 4"), {"value": value}
        )
    report = service.verify_custody_chain(logged)
    assert report.status == "broken"
    # the hash column itself breaks entry 4 (mismatch) or entry 5 (its link)
    assert report.first_broken_seq in ((4, 5) if column == "entry_hash" else (4,))


@pytest.mark.parametrize("seq", [1, 4, 8, 9])
def test_deleting_a_stored_event_is_detected_naming_it(logged: Engine, seq: int) -> None:
    with logged.begin() as connection:
        connection.execute(text("DELETE FROM custody_event WHERE seq = :seq"), {"seq": seq})
    report = service.verify_custody_chain(logged)
    assert (report.status, report.first_broken_seq) == ("broken", seq)


def test_deleting_and_renumbering_is_detected(logged: Engine) -> None:
    with logged.begin() as connection:
        connection.execute(text("DELETE FROM custody_event WHERE seq = 6"))
        connection.execute(text("UPDATE custody_event SET seq = seq - 1 WHERE seq > 6"))
        connection.execute(text("UPDATE custody_chain_head SET seq = 8"))
    report = service.verify_custody_chain(logged)
    assert report.first_broken_seq == 6


def test_the_log_is_read_in_order_and_by_din(logged: Engine) -> None:
    entries = service.read_custody_log(logged)
    assert [e.seq for e in entries] == list(range(1, 10))
    assert entries[0].prev_hash == "0" * 64 and entries[1].prev_hash == entries[0].entry_hash
    assert [e.event for e in service.read_custody_log(logged, din=entries[0].din)][-1] == "infused"
    assert service.read_custody_log(logged, case_ref="CASE-0009") == []


def test_schema_creation_is_repeatable(engine: Engine) -> None:
    create_schema(engine)
    create_schema(engine)
    walk(engine, Step.EVALUATION)


# ------------------------------------------------------------------------- schedule of a case


def test_a_case_schedule_uses_recorded_dates_and_slips(engine: Engine) -> None:
    walk(engine, Step.MANUFACTURING)
    as_of = dt.date(2026, 2, 20)
    schedule = service.case_schedule(engine, CASE, as_of=as_of)
    assert schedule.milestone("collection").date == DAYS[Step.SHIPPED_TO_MANUFACTURING]
    assert schedule.milestone("collection").status == "done"
    assert schedule.milestone("release").date == dt.date(2026, 2, 26)  # 12 Feb + 14 days
    service.record_expected_date(
        engine,
        CASE,
        "release",
        dt.date(2026, 3, 3),
        at=noon(as_of),
        recorded_at=noon(as_of),
        actor=ACTOR,
        reason="QC retest",
    )
    slipped = service.case_schedule(engine, CASE, as_of=as_of)
    assert slipped.milestone("release").date == dt.date(2026, 3, 3)
    assert slipped.milestone("infusion").date == dt.date(2026, 3, 11)  # +2 ship, +1, 3 days LD, +3
    with pytest.raises(InputError):
        service.record_expected_date(
            engine, CASE, "apheresis", as_of, at=noon(as_of), recorded_at=RECORDED, actor=ACTOR, reason="x"
        )


def test_due_steps_name_cases_by_reference(engine: Engine) -> None:
    walk(engine, Step.MANUFACTURING)
    due = service.due_steps(engine, dt.date(2026, 3, 1))
    assert {d.case_ref for d in due} == {CASE}
    release = next(d for d in due if d.milestone == "release")
    assert (release.status, release.days_late) == ("overdue", 3)
    assert service.due_steps(engine, dt.date(2026, 2, 14)) == []
