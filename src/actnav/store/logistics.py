"""Database tables of the vein-to-vein capability, and every write to them (one transaction each).

Tables:

* ``logistics_case``: one therapy case per pseudonymous case reference: product, indication, the
  step it is at, who opened it and when, and (optionally) an Argon2id hash of the patient's
  identifiers for the bedside check. Identifiers themselves are never stored.
* ``logistics_transition``: every move between steps (from, to, when it happened, when it was
  recorded, who, why, details such as the decision or the lymphodepletion dates).
* ``logistics_record``: facts recorded on a case outside a transition (kind ``report``,
  ``identity``, ``bridging``, ``lymphodepletion``, ``release``, ``expected_date``,
  ``bedside_check``), each with when, who and why. Newer records of a kind supersede older ones;
  nothing is updated in place.
* ``logistics_collection``: each collection's donation identification number (DIN), unique.
* ``custody_event``: the chain-of-custody log, append-only and hash-chained (see
  :mod:`actnav.logistics.custody`), with ``custody_chain_head`` holding the newest sequence number
  and hash so that deleting the newest entry is detected too.

Every write checks when it says things happened (:func:`actnav.logistics.lifecycle.check_event_time`):
not after ``recorded_at`` (the caller's "now", 5 minutes of clock difference allowed), and for a
transition, a collection or the release not before the case's previous step (its newest transition
or release), for a custody event not before the previous event of the same DIN.

There is no function that updates or deletes a custody event. Times are stored in UTC; the custody
log stores them as ISO 8601 text so the hashed form is the stored form on every database.
Case references follow :data:`actnav.store.toxicity.CASE_REF` (pseudonymous, never a name).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from actnav.errors import InputError
from actnav.knowledge.models import Product
from actnav.logistics import custody as chain
from actnav.logistics.bedside import BagLabel, BedsideResult, PatientIdentifiers, bedside_check, identity_hash
from actnav.logistics.din import Din, make_din, parse_din
from actnav.logistics.dose import CertificateCheck
from actnav.logistics.lifecycle import (
    MOVES,
    TITLES,
    CaseFacts,
    InfusionCheck,
    LymphodepletionDates,
    Release,
    Step,
    check_event_time,
    check_free_text,
    check_transition,
    unmet_requirements,
)
from actnav.store.db import Base, create_schema, session_scope
from actnav.store.toxicity import CASE_REF

_ACTOR = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
RECORD_KINDS = (
    "report",
    "identity",
    "bridging",
    "lymphodepletion",
    "release",
    "expected_date",
    "bedside_check",
)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


class LogisticsCaseRow(Base):
    """A therapy case (pseudonymous reference, product, current step)."""

    __tablename__ = "logistics_case"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_ref: Mapped[str] = mapped_column(String(100), unique=True)
    product_id: Mapped[str] = mapped_column(String(60))
    indication_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    step: Mapped[str] = mapped_column(String(40), index=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    opened_by: Mapped[str] = mapped_column(String(100))
    identity_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)


class LogisticsTransitionRow(Base):
    """One move of a case between steps: who, when, why."""

    __tablename__ = "logistics_transition"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("logistics_case.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    from_step: Mapped[str | None] = mapped_column(String(40), nullable=True)
    to_step: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class LogisticsRecordRow(Base):
    """A fact recorded on a case (report, identity, bridging, lymphodepletion, release, ...)."""

    __tablename__ = "logistics_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("logistics_case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class LogisticsCollectionRow(Base):
    """A collection (apheresis or tumour resection) and its donation identification number."""

    __tablename__ = "logistics_collection"
    __table_args__ = (UniqueConstraint("facility", "year", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("logistics_case.id"), index=True)
    din: Mapped[str] = mapped_column(String(14), unique=True)
    facility: Mapped[str] = mapped_column(String(5))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    collected_on: Mapped[dt.date] = mapped_column(Date)


class CustodyEventRow(Base):
    """One entry of the append-only, hash-chained custody log."""

    __tablename__ = "custody_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    din: Mapped[str] = mapped_column(String(14), index=True)
    case_ref: Mapped[str] = mapped_column(String(100), index=True)
    event: Mapped[str] = mapped_column(String(20))
    at: Mapped[str] = mapped_column(String(40))
    recorded_at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class CustodyHeadRow(Base):
    """The newest custody entry's sequence number and hash (one row, id 1)."""

    __tablename__ = "custody_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(64))


# ---------------------------------------------------------------------------------------------
# Views returned to callers (the service API and the CLI)
# ---------------------------------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransitionView(_View):
    seq: int
    from_step: str | None
    to_step: str
    at: dt.datetime
    recorded_at: dt.datetime
    actor: str
    reason: str
    details: dict[str, Any]


class RecordView(_View):
    kind: str
    at: dt.datetime
    recorded_at: dt.datetime
    actor: str
    reason: str
    payload: dict[str, Any]


class CollectionView(_View):
    din: str
    display: str
    kind: str
    collected_on: dt.date
    custody: tuple[str, ...]


class NextStep(_View):
    step: str
    title: str
    unmet: tuple[str, ...]


class CaseView(_View):
    """A case as stored, with what its next steps still need."""

    case_ref: str
    product_id: str
    indication_id: str | None
    step: str
    step_title: str
    opened_at: dt.datetime
    opened_by: str
    identity_registered: bool
    transitions: tuple[TransitionView, ...]
    records: tuple[RecordView, ...]
    collections: tuple[CollectionView, ...]
    next_steps: tuple[NextStep, ...]

    def latest(self, kind: str) -> RecordView | None:
        """The newest record of a kind (``release``, ``lymphodepletion`` ...)."""
        found = [r for r in self.records if r.kind == kind]
        return found[-1] if found else None


class CustodyEntryView(_View):
    seq: int
    din: str
    case_ref: str
    event: str
    at: str
    recorded_at: str
    actor: str
    location: str | None
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def check_case_ref(case_ref: str) -> str:
    """A pseudonymous case reference (``[A-Za-z0-9._:-]{1,100}``).

    Raises:
        InputError: malformed (``where`` = ``case_ref``).
    """
    if not isinstance(case_ref, str) or not CASE_REF.match(case_ref):
        raise InputError(
            "a case reference is 1-100 letters, digits or . _ : - (a pseudonymous id, never a name)",
            where="case_ref",
        )
    return case_ref


def _actor(actor: str) -> str:
    text = actor.strip() if isinstance(actor, str) else ""
    if not _ACTOR.match(text):
        raise InputError("who did it: 1-100 printable characters (a staff user id)", where="actor")
    return text


def _reason(reason: str, *, required: bool = True) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if required and not text:
        raise InputError("say why (a short reason is recorded with the change)", where="reason")
    if len(text) > 2000:
        raise InputError("the reason is longer than 2000 characters", where="reason")
    return text


def utc(moment: dt.datetime, *, where: str = "at") -> dt.datetime:
    """A timezone-aware moment in UTC (a naive one is read as UTC: SQLite returns naive values).

    Raises:
        InputError: not a datetime.
    """
    if not isinstance(moment, dt.datetime):
        raise InputError(f"must be a date and time, got {moment!r}", where=where)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return utc(moment).isoformat(timespec="seconds")


def _latest_step(session: Session, row: LogisticsCaseRow) -> tuple[dt.datetime, str] | None:
    """When the case's previous step happened and what it was: its newest transition, or the
    release when that was recorded after it."""
    last = session.scalars(
        select(LogisticsTransitionRow)
        .where(LogisticsTransitionRow.case_id == row.id)
        .order_by(LogisticsTransitionRow.seq.desc())
        .limit(1)
    ).first()
    found = (utc(last.at), f"step {last.to_step}") if last is not None else None
    releases = _records(session, row.id, "release")
    if releases and (found is None or utc(releases[-1].at) > found[0]):
        found = (utc(releases[-1].at), "product release")
    return found


def _check_step_time(
    session: Session, row: LogisticsCaseRow, at: dt.datetime, recorded_at: dt.datetime
) -> None:
    previous = _latest_step(session, row)
    check_event_time(
        utc(at),
        now=utc(recorded_at, where="recorded_at"),
        previous=previous[0] if previous else None,
        previous_what=previous[1] if previous else "step",
    )


def _check_not_future(at: dt.datetime, recorded_at: dt.datetime) -> None:
    check_event_time(utc(at), now=utc(recorded_at, where="recorded_at"))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _case_row(session: Session, case_ref: str) -> LogisticsCaseRow:
    row = session.scalars(select(LogisticsCaseRow).where(LogisticsCaseRow.case_ref == case_ref)).first()
    if row is None:
        raise InputError("no such case", where=f"case {case_ref}")
    return row


def _records(session: Session, case_id: int, kind: str | None = None) -> list[LogisticsRecordRow]:
    query = select(LogisticsRecordRow).where(LogisticsRecordRow.case_id == case_id)
    if kind is not None:
        query = query.where(LogisticsRecordRow.kind == kind)
    return list(session.scalars(query.order_by(LogisticsRecordRow.id)))


def _custody_by_din(session: Session, dins: list[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {din: [] for din in dins}
    if dins:
        rows = session.execute(
            select(CustodyEventRow.din, CustodyEventRow.event)
            .where(CustodyEventRow.din.in_(dins))
            .order_by(CustodyEventRow.seq)
        )
        for din, event in rows:
            found[din].append(event)
    return {din: tuple(events) for din, events in found.items()}


def _collections(session: Session, case_id: int) -> list[LogisticsCollectionRow]:
    query = select(LogisticsCollectionRow).where(LogisticsCollectionRow.case_id == case_id)
    return list(session.scalars(query.order_by(LogisticsCollectionRow.id)))


def _facts(session: Session, row: LogisticsCaseRow) -> CaseFacts:
    release_rows = _records(session, row.id, "release")
    release = None
    if release_rows:
        payload = release_rows[-1].payload
        release = Release(
            din=payload.get("din"),
            status=str(payload.get("status")),
            accepted_deviation=payload.get("accepted_deviation"),
        )
    ld_rows = _records(session, row.id, "lymphodepletion")
    ld = None
    if ld_rows:
        payload = ld_rows[-1].payload
        ld = LymphodepletionDates(
            start=dt.date.fromisoformat(payload["start"]), end=dt.date.fromisoformat(payload["end"])
        )
    dins = [c.din for c in _collections(session, row.id)]
    return CaseFacts(
        step=Step(row.step),
        product_id=row.product_id,
        indication_id=row.indication_id,
        report_attached=bool(_records(session, row.id, "report")),
        release=release,
        lymphodepletion=ld,
        identity_registered=row.identity_hash is not None,
        custody=_custody_by_din(session, dins),
    )


def _view(session: Session, row: LogisticsCaseRow) -> CaseView:
    transitions = session.scalars(
        select(LogisticsTransitionRow)
        .where(LogisticsTransitionRow.case_id == row.id)
        .order_by(LogisticsTransitionRow.seq)
    )
    facts = _facts(session, row)
    collections = []
    for c in _collections(session, row.id):
        din = parse_din(c.din)
        collections.append(
            CollectionView(
                din=c.din,
                display=din.display,
                kind=c.kind,
                collected_on=c.collected_on,
                custody=facts.custody.get(c.din, ()),
            )
        )
    next_steps = tuple(
        NextStep(step=s.value, title=TITLES[s], unmet=tuple(unmet_requirements(facts, s, decision="proceed")))
        for s in sorted(MOVES[facts.step], key=lambda s: list(Step).index(s))
    )
    return CaseView(
        case_ref=row.case_ref,
        product_id=row.product_id,
        indication_id=row.indication_id,
        step=row.step,
        step_title=TITLES[Step(row.step)],
        opened_at=utc(row.opened_at),
        opened_by=row.opened_by,
        identity_registered=row.identity_hash is not None,
        transitions=tuple(
            TransitionView(
                seq=t.seq,
                from_step=t.from_step,
                to_step=t.to_step,
                at=utc(t.at),
                recorded_at=utc(t.recorded_at),
                actor=t.actor,
                reason=t.reason,
                details=t.details,
            )
            for t in transitions
        ),
        records=tuple(
            RecordView(
                kind=r.kind,
                at=utc(r.at),
                recorded_at=utc(r.recorded_at),
                actor=r.actor,
                reason=r.reason,
                payload=r.payload,
            )
            for r in _records(session, row.id)
        ),
        collections=tuple(collections),
        next_steps=next_steps,
    )


def read_case(engine: Engine, case_ref: str) -> CaseView:
    """A case with its transitions, records, collections and what the next steps need.

    Raises:
        InputError: malformed reference, or no such case.
    """
    check_case_ref(case_ref)
    create_schema(engine)
    with session_scope(engine) as session:
        return _view(session, _case_row(session, case_ref))


def list_cases(engine: Engine, *, active_only: bool = True) -> list[CaseView]:
    """Every case (only those not closed or withdrawn, unless ``active_only`` is False), by reference."""
    create_schema(engine)
    with session_scope(engine) as session:
        query = select(LogisticsCaseRow).order_by(LogisticsCaseRow.case_ref)
        if active_only:
            query = query.where(LogisticsCaseRow.step.not_in([Step.CLOSED.value, Step.WITHDRAWN.value]))
        return [_view(session, row) for row in session.scalars(query)]


# ---------------------------------------------------------------------------------------------
# Writing: cases, transitions, records
# ---------------------------------------------------------------------------------------------


def _add_transition(
    session: Session,
    row: LogisticsCaseRow,
    target: Step,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
    details: dict[str, Any],
) -> LogisticsTransitionRow:
    last = session.scalar(
        select(func.max(LogisticsTransitionRow.seq)).where(LogisticsTransitionRow.case_id == row.id)
    )
    transition = LogisticsTransitionRow(
        case_id=row.id,
        seq=(last or 0) + 1,
        from_step=None if last is None else row.step,
        to_step=target.value,
        at=utc(at),
        recorded_at=utc(recorded_at, where="recorded_at"),
        actor=actor,
        reason=reason,
        details=details,
    )
    session.add(transition)
    row.step = target.value
    return transition


def _add_record(
    session: Session,
    row: LogisticsCaseRow,
    kind: str,
    payload: dict[str, Any],
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
) -> None:
    assert kind in RECORD_KINDS
    session.add(
        LogisticsRecordRow(
            case_id=row.id,
            kind=kind,
            at=utc(at),
            recorded_at=utc(recorded_at, where="recorded_at"),
            actor=actor,
            reason=reason,
            payload=payload,
        )
    )


def _check_indication(product: Product, indication_id: str) -> None:
    ids = [i.id for i in product.indications]
    if indication_id not in ids:
        raise InputError(
            f"{product.brand} has no indication {indication_id!r}",
            where="indication",
            hint="one of " + ", ".join(ids),
        )


def open_case(
    engine: Engine,
    case_ref: str,
    product_id: str,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str = "referral received",
    indication_id: str | None = None,
    identity: PatientIdentifiers | None = None,
) -> CaseView:
    """Open a case at the referral step.

    Args:
        engine: the database (tables created if missing).
        case_ref: pseudonymous case reference.
        product_id: the product considered (id, INN, brand or short name; stored as the id).
        at: when the referral arrived; recorded_at: now (the caller reads the clock).
        actor: who opens it; reason: why (recorded with the first transition).
        indication_id: the product's indication id, if already known.
        identity: the patient's identifiers, to register their Argon2id hash (never stored as such).

    Raises:
        InputError: malformed reference, actor or reason; unknown product or indication (the hint
            lists the product's indication ids); ``at`` after ``recorded_at`` (5 minutes of
            tolerance); the case exists already.
    """
    from actnav.toxicity.guidance import resolve_product

    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    product = resolve_product(product_id, where="product")
    if indication_id is not None:
        _check_indication(product, indication_id)
    _check_not_future(at, recorded_at)
    hashed = identity_hash(identity) if identity is not None else None
    create_schema(engine)
    try:
        with session_scope(engine) as session:
            row = LogisticsCaseRow(
                case_ref=case_ref,
                product_id=product.id,
                indication_id=indication_id,
                step=Step.REFERRAL.value,
                opened_at=utc(at),
                opened_by=who,
                identity_hash=hashed,
            )
            session.add(row)
            session.flush()
            _add_transition(
                session, row, Step.REFERRAL, at=at, recorded_at=recorded_at, actor=who, reason=why, details={}
            )
            if hashed is not None:
                _add_record(
                    session,
                    row,
                    "identity",
                    {"registered": True},
                    at=at,
                    recorded_at=recorded_at,
                    actor=who,
                    reason=why,
                )
            session.flush()
            return _view(session, row)
    except IntegrityError as exc:
        raise InputError("a case with this reference exists already", where=f"case {case_ref}") from exc


def register_identity(
    engine: Engine,
    case_ref: str,
    identity: PatientIdentifiers,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
) -> CaseView:
    """Register (or replace) the hash of the patient's identifiers for the bedside check.

    Raises:
        InputError: no such case; malformed actor or reason.
    """
    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    _check_not_future(at, recorded_at)
    hashed = identity_hash(identity)
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        replaced = row.identity_hash is not None
        row.identity_hash = hashed
        _add_record(
            session,
            row,
            "identity",
            {"registered": True, "replaced": replaced},
            at=at,
            recorded_at=recorded_at,
            actor=who,
            reason=why,
        )
        session.flush()
        return _view(session, row)


def attach_report(
    engine: Engine,
    case_ref: str,
    *,
    sha256: str,
    name: str,
    size: int,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str = "evaluation report attached",
) -> CaseView:
    """Attach the evaluation report (its SHA-256, file name and size; the report stays a file).

    Raises:
        InputError: no such case; not a SHA-256; the case is past the review.
    """
    check_case_ref(case_ref)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise InputError("not a SHA-256 hex digest", where="report")
    who, why = _actor(actor), _reason(reason)
    _check_not_future(at, recorded_at)
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        if Step(row.step) not in (Step.REFERRAL, Step.EVALUATION, Step.REVIEW):
            raise InputError(
                f"the case is at {row.step}: reports are attached during evaluation", where="report"
            )
        _add_record(
            session,
            row,
            "report",
            {"sha256": sha256, "name": name[-255:], "bytes": size},
            at=at,
            recorded_at=recorded_at,
            actor=who,
            reason=why,
        )
        session.flush()
        return _view(session, row)


def record_bridging(
    engine: Engine,
    case_ref: str,
    *,
    regimen: str,
    start: dt.date,
    end: dt.date | None,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
) -> CaseView:
    """Record bridging therapy (regimen, start and end days) between the decision and lymphodepletion.

    Raises:
        InputError: no such case; the case is not between review and lymphodepletion; an empty
            regimen; the end before the start.
    """
    from actnav.logistics.lifecycle import BRIDGING_STEPS

    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    text = regimen.strip() if isinstance(regimen, str) else ""
    if not text or len(text) > 500:
        raise InputError("name the bridging regimen (1-500 characters)", where="regimen")
    if end is not None and end < start:
        raise InputError("bridging ends before it starts", where="end")
    _check_not_future(at, recorded_at)
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        if Step(row.step) not in BRIDGING_STEPS:
            raise InputError(
                f"the case is at {row.step}: bridging therapy is recorded from the review until lymphodepletion",
                where="step",
            )
        payload = {"regimen": text, "start": start.isoformat(), "end": end.isoformat() if end else None}
        _add_record(session, row, "bridging", payload, at=at, recorded_at=recorded_at, actor=who, reason=why)
        session.flush()
        return _view(session, row)


def record_lymphodepletion(
    engine: Engine,
    case_ref: str,
    *,
    start: dt.date,
    end: dt.date,
    regimen: str | None,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
) -> CaseView:
    """Record (or correct) the lymphodepletion days of a case; the newest record counts.

    Raises:
        InputError: no such case; the end before the start; the case is already infused.
    """
    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    if end < start:
        raise InputError("lymphodepletion ends before it starts", where="end")
    _check_not_future(at, recorded_at)
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        if list(Step).index(Step(row.step)) >= list(Step).index(Step.INFUSED):
            raise InputError(f"the case is at {row.step}: lymphodepletion can no longer change", where="step")
        _add_record(
            session,
            row,
            "lymphodepletion",
            _ld_payload(start, end, regimen),
            at=at,
            recorded_at=recorded_at,
            actor=who,
            reason=why,
        )
        session.flush()
        return _view(session, row)


def _ld_payload(start: dt.date, end: dt.date, regimen: str | None) -> dict[str, Any]:
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "regimen": (regimen or "").strip()[:500] or None,
    }


def record_release(
    engine: Engine,
    case_ref: str,
    check: CertificateCheck,
    *,
    din: str | None,
    lot: str | None,
    accepted_deviation: str | None,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
) -> CaseView:
    """Record the product's release: the certificate check and, for an out-of-specification product,
    the documented decision to proceed (consent, expanded access reference).

    Raises:
        InputError: no such case; the DIN is not one of the case's collections; the check is for
            another product; the case is not in manufacturing or release testing; ``at`` after
            ``recorded_at`` or before the case's previous step; ``accepted_deviation`` longer than
            :data:`~actnav.logistics.lifecycle.FREE_TEXT_MAX` characters.
    """
    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    deviation = check_free_text(accepted_deviation, where="accepted_deviation")
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        if check.dose.product_id != row.product_id:
            raise InputError(
                f"the certificate check is for {check.dose.product_id}, the case is {row.product_id}",
                where="product",
            )
        if Step(row.step) not in (Step.MANUFACTURING, Step.RELEASE_TESTING):
            raise InputError(
                f"the case is at {row.step}: a release is recorded during release testing", where="step"
            )
        _check_step_time(session, row, at, recorded_at)
        din_text = None
        if din is not None:
            din_text = parse_din(din).text
            if din_text not in {c.din for c in _collections(session, row.id)}:
                raise InputError(f"{din_text} is not a collection of this case", where="din")
        payload = {
            "status": check.status,
            "din": din_text,
            "lot": lot,
            "cells": check.cells,
            "min_cells": check.dose.min_cells,
            "max_cells": check.dose.max_cells,
            "weight_kg": check.dose.weight_kg,
            "findings": list(check.findings),
            "accepted_deviation": deviation if check.status == "out_of_specification" else None,
        }
        _add_record(session, row, "release", payload, at=at, recorded_at=recorded_at, actor=who, reason=why)
        session.flush()
        return _view(session, row)


def record_expected_date(
    engine: Engine,
    case_ref: str,
    milestone: str,
    day: dt.date,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
) -> CaseView:
    """Record that a milestone is now expected on another day (a slip); the schedule moves with it.

    Raises:
        InputError: no such case; not a milestone of :data:`actnav.logistics.schedule.CHAIN`.
    """
    from actnav.logistics.schedule import CHAIN

    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    if milestone not in CHAIN:
        raise InputError(
            f"unknown milestone {milestone!r}", where="milestone", hint="one of " + ", ".join(CHAIN)
        )
    _check_not_future(at, recorded_at)
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        payload = {"milestone": milestone, "date": day.isoformat()}
        _add_record(
            session, row, "expected_date", payload, at=at, recorded_at=recorded_at, actor=who, reason=why
        )
        session.flush()
        return _view(session, row)


def advance(
    engine: Engine,
    case_ref: str,
    target: Step,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
    decision: str | None = None,
    product_id: str | None = None,
    indication_id: str | None = None,
    lymphodepletion: tuple[dt.date, dt.date, str | None] | None = None,
    deviation: str | None = None,
    bag: BagLabel | None = None,
    wristband: PatientIdentifiers | None = None,
) -> TransitionView:
    """Move a case to another step, checking the lifecycle rules in the same transaction.

    Args:
        engine: the database.
        case_ref: the case.
        target: the step to move to.
        at: when it happened; recorded_at: now. actor: who; reason: why (required).
        decision: for ``review -> authorisation``: ``proceed``; for ``review -> withdrawn``:
            ``not_proceed`` is recorded.
        product_id / indication_id: the review's choice (with ``decision="proceed"``).
        lymphodepletion: ``(start, end, regimen)`` for ``-> lymphodepletion``.
        deviation: for ``-> infused`` outside the label's window: why, and who agreed (at most
            :data:`~actnav.logistics.lifecycle.FREE_TEXT_MAX` characters; no patient identifiers).
        bag / wristband: for ``-> infused``: the bag label and the wristband (the bedside check runs
            here; its result, without identifiers, is recorded even when it fails).

    Returns:
        The recorded transition.

    Raises:
        TransitionRefused: the move is not allowed or something it needs is missing (every reason).
        InputError: malformed inputs, unknown case; ``at`` after ``recorded_at`` (5 minutes of
            tolerance) or before the case's previous step (``where="at"``, the message gives both
            times); for ``-> infused``, ``at`` before the bag's previous custody event.
    """
    from actnav.logistics.schedule import lymphodepletion_row
    from actnav.toxicity.guidance import resolve_product

    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    if decision not in (None, "proceed", "not_proceed"):
        raise InputError("the decision is proceed or not_proceed", where="decision")
    if target is Step.INFUSED and (bag is None or wristband is None):
        raise InputError("infusion needs the bag label and the wristband for the bedside check", where="bag")
    deviation = check_free_text(deviation, where="deviation")
    create_schema(engine)
    failed_check: tuple[BedsideResult, str] | None = None
    try:
        with session_scope(engine) as session:
            row = _case_row(session, case_ref)
            _check_step_time(session, row, at, recorded_at)
            facts = _facts(session, row)
            details: dict[str, Any] = {}
            if decision is not None:
                details["decision"] = decision
            if target is Step.AUTHORISATION:
                product = resolve_product(product_id or row.product_id, where="product")
                chosen = indication_id or row.indication_id
                if chosen is not None:
                    _check_indication(product, chosen)
                facts = replace(facts, product_id=product.id, indication_id=chosen)
                details.update(product=product.id, indication=chosen)
            if lymphodepletion is not None:
                start, end, regimen = lymphodepletion
                facts = replace(facts, lymphodepletion=LymphodepletionDates(start=start, end=end))
                details["lymphodepletion"] = _ld_payload(start, end, regimen)
            infusion = None
            if target is Step.INFUSED:
                assert bag is not None and wristband is not None
                result = bedside_check(
                    wristband,
                    bag,
                    expected_dins=tuple(facts.custody),
                    registered_hash=row.identity_hash,
                )
                product = resolve_product(row.product_id, where="product")
                ld_row = lymphodepletion_row(product, row.indication_id)
                infusion = InfusionCheck(
                    din=result.din or "(unreadable)",
                    bedside_passed=result.passed,
                    bedside_reasons=result.reasons,
                    infusion_date=at.date(),
                    window_min_days=ld_row.infuse_days_after_min if ld_row else None,
                    window_max_days=ld_row.infuse_days_after_max if ld_row else None,
                    deviation=deviation,
                )
                details.update(din=result.din, bedside_check="passed" if result.passed else "failed")
                if infusion.deviation:
                    details["deviation"] = infusion.deviation
                if not result.passed:
                    failed_check = (result, row.step)
            check_transition(facts, target, decision=decision, infusion=infusion)
            if target is Step.AUTHORISATION:
                row.product_id, row.indication_id = facts.product_id, facts.indication_id
            if lymphodepletion is not None:
                _add_record(
                    session,
                    row,
                    "lymphodepletion",
                    details["lymphodepletion"],
                    at=at,
                    recorded_at=recorded_at,
                    actor=who,
                    reason=why,
                )
            if target is Step.INFUSED and infusion is not None:
                _add_record(
                    session,
                    row,
                    "bedside_check",
                    {"passed": True, "din": infusion.din, "reasons": []},
                    at=at,
                    recorded_at=recorded_at,
                    actor=who,
                    reason=why,
                )
                _append_custody(
                    session,
                    infusion.din,
                    row.case_ref,
                    "infused",
                    at=at,
                    recorded_at=recorded_at,
                    actor=who,
                    location=None,
                    details={},
                )
            transition = _add_transition(
                session, row, target, at=at, recorded_at=recorded_at, actor=who, reason=why, details=details
            )
            session.flush()
            return TransitionView(
                seq=transition.seq,
                from_step=transition.from_step,
                to_step=transition.to_step,
                at=utc(transition.at),
                recorded_at=utc(transition.recorded_at),
                actor=transition.actor,
                reason=transition.reason,
                details=transition.details,
            )
    except InputError:
        if failed_check is not None:
            _record_failed_bedside(
                engine, case_ref, failed_check[0], at=at, recorded_at=recorded_at, actor=who, reason=why
            )
        raise


def _record_failed_bedside(
    engine: Engine,
    case_ref: str,
    result: BedsideResult,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str,
) -> None:
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        payload = {
            "passed": False,
            "din": result.din,
            "mismatched": list(result.mismatched),
            "reasons": list(result.reasons),
        }
        _add_record(
            session, row, "bedside_check", payload, at=at, recorded_at=recorded_at, actor=actor, reason=reason
        )


def run_bedside_check(
    engine: Engine,
    case_ref: str,
    bag: BagLabel,
    wristband: PatientIdentifiers,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    reason: str = "bedside identity check",
) -> BedsideResult:
    """Run the bedside identity check for a case without infusing, and record its result
    (passed or not, the fields that differ, never the identifiers).

    Raises:
        InputError: no such case; malformed actor.
    """
    check_case_ref(case_ref)
    who, why = _actor(actor), _reason(reason)
    _check_not_future(at, recorded_at)
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        dins = tuple(c.din for c in _collections(session, row.id))
        result = bedside_check(wristband, bag, expected_dins=dins, registered_hash=row.identity_hash)
        payload = {
            "passed": result.passed,
            "din": result.din,
            "mismatched": list(result.mismatched),
            "reasons": list(result.reasons),
        }
        _add_record(
            session, row, "bedside_check", payload, at=at, recorded_at=recorded_at, actor=who, reason=why
        )
        return result


# ---------------------------------------------------------------------------------------------
# Collections and the custody log
# ---------------------------------------------------------------------------------------------


def add_collection(
    engine: Engine,
    case_ref: str,
    *,
    facility: str,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    location: str | None = None,
    year: int | None = None,
) -> Din:
    """Give a new collection of the case its DIN and append ``collected`` to the custody log.

    The sequence number is the next free one for the facility and year (two-digit year of ``at``
    unless given). The case must be at the collection step.

    Returns:
        The DIN.

    Raises:
        InputError: no such case; the case is not at the collection step; malformed facility;
            ``at`` after ``recorded_at`` or before the case entered the collection step.
    """
    from actnav.toxicity.guidance import resolve_product

    check_case_ref(case_ref)
    who = _actor(actor)
    yy = at.year % 100 if year is None else year
    make_din(facility, yy, 1)  # validates the facility and year before touching the database
    create_schema(engine)
    with session_scope(engine) as session:
        row = _case_row(session, case_ref)
        if Step(row.step) is not Step.COLLECTION:
            raise InputError(
                f"the case is at {row.step}: collections are recorded at the collection step", where="step"
            )
        _check_step_time(session, row, at, recorded_at)
        fin = facility.strip().upper()
        last = session.scalar(
            select(func.max(LogisticsCollectionRow.sequence)).where(
                LogisticsCollectionRow.facility == fin, LogisticsCollectionRow.year == yy
            )
        )
        din = make_din(fin, yy, (last or 0) + 1)
        modality = resolve_product(row.product_id, where="product").modality
        session.add(
            LogisticsCollectionRow(
                case_id=row.id,
                din=din.text,
                facility=din.facility,
                year=din.year,
                sequence=din.sequence,
                kind="tumour_resection" if modality == "TIL" else "apheresis",
                collected_on=at.date(),
            )
        )
        _append_custody(
            session,
            din.text,
            row.case_ref,
            "collected",
            at=at,
            recorded_at=recorded_at,
            actor=who,
            location=location,
            details={},
        )
        return din


def _append_custody(
    session: Session,
    din: str,
    case_ref: str,
    event: str,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    location: str | None,
    details: dict[str, Any],
) -> chain.Entry:
    last = session.scalars(
        select(CustodyEventRow)
        .where(CustodyEventRow.din == din)
        .order_by(CustodyEventRow.seq.desc())
        .limit(1)
    ).first()
    previous = last.event if last is not None else None
    if event not in chain.allowed_next(previous):
        allowed = ", ".join(sorted(chain.allowed_next(previous))) or "nothing (the product was infused)"
        after = f"after {previous!r}" if previous else "as the first event"
        raise InputError(
            f"custody event {event!r} cannot come {after} for {din} (allowed: {allowed})", where="event"
        )
    check_event_time(
        utc(at),
        now=utc(recorded_at, where="recorded_at"),
        previous=dt.datetime.fromisoformat(last.at) if last is not None else None,
        previous_what=f"custody event {previous!r} of {din}",
    )
    head = session.get(CustodyHeadRow, 1, with_for_update=True)
    seq = head.seq + 1 if head is not None else 1
    prev_hash = head.entry_hash if head is not None else chain.GENESIS
    try:
        details_text = chain.canonical_json(details)
    except (TypeError, ValueError) as exc:
        raise InputError(f"details must be plain JSON values: {exc}", where="details") from exc
    entry = chain.Entry(
        seq=seq,
        din=din,
        case_ref=case_ref,
        event=event,
        at=_iso(at),
        recorded_at=_iso(recorded_at),
        actor=actor,
        location=(location or "").strip()[:200] or None,
        details=details_text,
        prev_hash=prev_hash,
        entry_hash="",
    )
    digest = chain.entry_hash(entry.content())
    entry = replace(entry, entry_hash=digest)
    session.add(
        CustodyEventRow(
            seq=entry.seq,
            din=entry.din,
            case_ref=entry.case_ref,
            event=entry.event,
            at=entry.at,
            recorded_at=entry.recorded_at,
            actor=entry.actor,
            location=entry.location,
            details=entry.details,
            prev_hash=entry.prev_hash,
            entry_hash=entry.entry_hash,
        )
    )
    if head is None:
        session.add(CustodyHeadRow(id=1, seq=seq, entry_hash=digest))
    else:
        head.seq, head.entry_hash = seq, digest
    session.flush()
    return entry


def append_custody_event(
    engine: Engine,
    case_ref: str,
    din: str,
    event: str,
    *,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    location: str | None = None,
    details: dict[str, Any] | None = None,
) -> CustodyEntryView:
    """Append one custody event for a collection of the case (the only way the log grows).

    ``collected`` is appended by :func:`add_collection` and ``infused`` by the infusion transition
    (after the bedside check); the other events follow :data:`actnav.logistics.custody.NEXT`.

    Raises:
        InputError: unknown event, DIN not of this case, the event cannot follow the previous one,
            ``at`` after ``recorded_at`` (5 minutes of tolerance) or before the DIN's previous
            event, ``details`` too long (at most 20 entries; keys up to 50 characters, values up to
            :data:`~actnav.logistics.lifecycle.FREE_TEXT_MAX`; no patient identifiers), or another
            writer appended at the same moment (try again).
    """
    check_case_ref(case_ref)
    who = _actor(actor)
    if event not in chain.EVENTS:
        raise InputError(
            f"unknown custody event {event!r}", where="event", hint="one of " + ", ".join(chain.EVENTS)
        )
    if event in ("collected", "infused"):
        how = "a new collection" if event == "collected" else "the infusion step (after the bedside check)"
        raise InputError(f"{event!r} is recorded by {how}", where="event")
    din_text = parse_din(din).text
    _check_details(details or {})
    create_schema(engine)
    try:
        with session_scope(engine) as session:
            row = _case_row(session, case_ref)
            if din_text not in {c.din for c in _collections(session, row.id)}:
                raise InputError(f"{din_text} is not a collection of this case", where="din")
            entry = _append_custody(
                session,
                din_text,
                row.case_ref,
                event,
                at=at,
                recorded_at=recorded_at,
                actor=who,
                location=location,
                details=details or {},
            )
            return _entry_view(entry)
    except IntegrityError as exc:
        raise InputError(
            "another custody event was appended at the same moment: try again", where="custody"
        ) from exc


def _check_details(details: dict[str, Any]) -> None:
    if len(details) > 20:
        raise InputError(f"{len(details)} details: at most 20", where="details")
    for key, value in details.items():
        if not isinstance(key, str) or not 0 < len(key.strip()) <= 50:
            raise InputError(f"a detail's name is 1-50 characters: {str(key)[:60]!r}", where="details")
        check_free_text(str(value), where="details")


def _entry_view(entry: chain.Entry) -> CustodyEntryView:
    return CustodyEntryView(
        seq=entry.seq,
        din=entry.din,
        case_ref=entry.case_ref,
        event=entry.event,
        at=entry.at,
        recorded_at=entry.recorded_at,
        actor=entry.actor,
        location=entry.location,
        details=json.loads(entry.details) if entry.details else {},
        prev_hash=entry.prev_hash,
        entry_hash=entry.entry_hash,
    )


def _entry(row: CustodyEventRow) -> chain.Entry:
    return chain.Entry(
        seq=row.seq,
        din=row.din,
        case_ref=row.case_ref,
        event=row.event,
        at=row.at,
        recorded_at=row.recorded_at,
        actor=row.actor,
        location=row.location,
        details=row.details,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
    )


def read_custody_log(
    engine: Engine, *, din: str | None = None, case_ref: str | None = None
) -> list[CustodyEntryView]:
    """The custody log in sequence order, optionally for one DIN or one case.

    Raises:
        InputError: malformed DIN or case reference.
    """
    create_schema(engine)
    query = select(CustodyEventRow).order_by(CustodyEventRow.seq)
    if din is not None:
        query = query.where(CustodyEventRow.din == parse_din(din).text)
    if case_ref is not None:
        query = query.where(CustodyEventRow.case_ref == check_case_ref(case_ref))
    with session_scope(engine) as session:
        return [_entry_view(_entry(row)) for row in session.scalars(query)]


def verify_custody_chain(engine: Engine) -> chain.ChainReport:
    """Verify the whole custody log against its hash chain and head (see
    :func:`actnav.logistics.custody.verify_entries`)."""
    create_schema(engine)
    with session_scope(engine) as session:
        entries = [_entry(row) for row in session.scalars(select(CustodyEventRow))]
        head_row = session.get(CustodyHeadRow, 1)
        head = (head_row.seq, head_row.entry_hash) if head_row is not None else None
        return chain.verify_entries(entries, head)
