"""Trial tables and the upsert rule (SQLite by default, PostgreSQL the same way).

Tables:

* ``trial``: one row per NCT id: title, status, last update, source format, the normalised record
  (JSON, without ``raw``), the raw source record (JSON), a SHA-256 of the raw record, the ACT
  classification (``is_act``, ``modality``, ``targets``, ``cell_source``, its evidence and the
  vocabulary version), first and last import times.
* ``sync_run``: one row per ``actnav trials sync``: started/finished, parameters and query key,
  total reported by the registry vs fetched, counts of new, updated, closed, unchanged,
  skipped-older and malformed records, status (``running``, ``completed``, ``failed``).
* ``trial_change``: what a sync run changed: ``new``, ``updated`` or ``closed`` per NCT id, with
  a detail (``RECRUITING -> COMPLETED``, ``no longer returned by the query``).
* ``sync_seen``: the NCT ids each sync run received, so the next run of the same query can tell
  which trials are no longer returned.

The upsert rule (:func:`upsert_trials`), per incoming record against the stored row:

1. no stored row: **new**;
2. same raw content (SHA-256 of the canonical JSON): **unchanged**;
3. both dated: older ``last_update`` than stored: **skipped-older** (never overwrites); newer, or the
   same date with different content: **updated**;
4. stored dated, incoming undated: **skipped-older** (an undated record cannot prove it is newer);
5. stored undated, incoming dated: **updated**; both undated and different: **updated** (the
   latest import wins).

Writes happen in the caller's transaction; :func:`import_records` commits in batches, each batch
in its own transaction (:func:`actnav.store.db.session_scope`), so an error mid-import rolls back
only the batch in progress and keeps every batch already committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from actnav.store.db import Base, session_scope
from actnav.trials.models import TrialRecord
from actnav.trials.recognition import ActClassification, classify

_JSON = JSON().with_variant(JSONB(), "postgresql")

DEFAULT_BATCH_SIZE = 500


class TrialRow(Base):
    """One trial (table ``trial``)."""

    __tablename__ = "trial"

    nct_id: Mapped[str] = mapped_column(String(11), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(40), index=True)
    last_update: Mapped[dt.date | None] = mapped_column(Date)
    source_format: Mapped[str] = mapped_column(String(20))
    record_json: Mapped[dict[str, Any]] = mapped_column(_JSON)
    raw_json: Mapped[dict[str, Any]] = mapped_column(_JSON)
    content_sha256: Mapped[str] = mapped_column(String(64))
    is_act: Mapped[bool | None] = mapped_column(Boolean, index=True)
    modality: Mapped[str | None] = mapped_column(String(30), index=True)
    targets: Mapped[list[str]] = mapped_column(_JSON, default=list)
    cell_source: Mapped[str | None] = mapped_column(String(20))
    act_evidence: Mapped[list[dict[str, Any]]] = mapped_column(_JSON, default=list)
    vocabulary_version: Mapped[str | None] = mapped_column(String(40))
    first_imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def to_record(self) -> TrialRecord:
        """The stored record as a :class:`TrialRecord` (``raw`` restored from ``raw_json``)."""
        return TrialRecord.model_validate({**self.record_json, "raw": self.raw_json})

    def classification(self) -> ActClassification:
        """The stored ACT classification."""
        return ActClassification.model_validate(
            {
                "is_act": bool(self.is_act),
                "modality": self.modality,
                "targets": tuple(self.targets or ()),
                "cell_source": self.cell_source or "unknown",
                "evidence": tuple(self.act_evidence or ()),
                "vocabulary_version": self.vocabulary_version or "",
            }
        )


class SyncRunRow(Base):
    """One sync with ClinicalTrials.gov (table ``sync_run``)."""

    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    params: Mapped[dict[str, Any]] = mapped_column(_JSON)
    query_key: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    total: Mapped[int | None] = mapped_column(Integer)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    new_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    closed_count: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_older_count: Mapped[int] = mapped_column(Integer, default=0)
    malformed_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class TrialChangeRow(Base):
    """What one sync run changed for one trial (table ``trial_change``)."""

    __tablename__ = "trial_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_run.id"), index=True)
    nct_id: Mapped[str] = mapped_column(String(11), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    detail: Mapped[str | None] = mapped_column(Text)


class SyncSeenRow(Base):
    """An NCT id a sync run received (table ``sync_seen``)."""

    __tablename__ = "sync_seen"

    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_run.id"), primary_key=True)
    nct_id: Mapped[str] = mapped_column(String(11), primary_key=True)


# --------------------------------------------------------------------------------------------
# Upsert
# --------------------------------------------------------------------------------------------


class UpsertOutcome(StrEnum):
    """What the upsert did with one incoming record."""

    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED_OLDER = "skipped-older"


@dataclass(frozen=True)
class UpsertResult:
    """The outcome for one record, with the stored status before the write (None when new)."""

    nct_id: str
    outcome: UpsertOutcome
    previous_status: str | None = None
    status: str | None = None


@dataclass
class ImportSummary:
    """Counts of an import (one call of :func:`upsert_trials` or a whole :func:`import_records`).

    Attributes:
        new / updated / unchanged / skipped_older: records by upsert outcome.
        results: one :class:`UpsertResult` per record, in input order.
        batches_committed: transactions committed (set by :func:`import_records`).
    """

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_older: int = 0
    results: list[UpsertResult] = field(default_factory=list)
    batches_committed: int = 0

    @property
    def total(self) -> int:
        """Records processed."""
        return self.new + self.updated + self.unchanged + self.skipped_older

    def add(self, result: UpsertResult) -> None:
        """Count one result."""
        self.results.append(result)
        if result.outcome is UpsertOutcome.NEW:
            self.new += 1
        elif result.outcome is UpsertOutcome.UPDATED:
            self.updated += 1
        elif result.outcome is UpsertOutcome.UNCHANGED:
            self.unchanged += 1
        else:
            self.skipped_older += 1

    def merge(self, other: ImportSummary) -> None:
        """Add another summary's counts and results to this one."""
        for result in other.results:
            self.add(result)
        self.batches_committed += other.batches_committed


def to_utc(when: dt.datetime | None) -> dt.datetime:
    """A time in UTC (default: now); naive times are taken as UTC.

    Times are stored in UTC because SQLite keeps no time zone: a local time would be stored as is.
    """
    if when is None:
        return dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def content_sha256(raw: dict[str, Any]) -> str:
    """SHA-256 of a raw record's canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def decide(
    stored_date: dt.date | None, stored_sha: str, incoming_date: dt.date | None, incoming_sha: str
) -> UpsertOutcome:
    """The upsert rule for a record already stored (see the module docstring).

    Args:
        stored_date: the stored row's ``last_update`` (None when the source had none).
        stored_sha: the stored raw record's SHA-256.
        incoming_date: the incoming record's ``last_update``.
        incoming_sha: the incoming raw record's SHA-256.

    Returns:
        UNCHANGED, UPDATED or SKIPPED_OLDER.
    """
    if stored_sha == incoming_sha:
        return UpsertOutcome.UNCHANGED
    if stored_date is not None and incoming_date is not None:
        return UpsertOutcome.SKIPPED_OLDER if incoming_date < stored_date else UpsertOutcome.UPDATED
    if stored_date is not None:
        return UpsertOutcome.SKIPPED_OLDER
    return UpsertOutcome.UPDATED


Classifier = Callable[[TrialRecord], ActClassification]


def _fill(
    row: TrialRow, record: TrialRecord, sha: str, classification: ActClassification, now: dt.datetime
) -> None:
    row.title = record.title
    row.status = record.overall_status
    row.last_update = record.last_update
    row.source_format = record.source_format
    row.record_json = record.model_dump(mode="json", exclude={"raw"})
    row.raw_json = record.raw
    row.content_sha256 = sha
    row.is_act = classification.is_act
    row.modality = classification.modality
    row.targets = list(classification.targets)
    row.cell_source = classification.cell_source
    row.act_evidence = [e.model_dump(mode="json") for e in classification.evidence]
    row.vocabulary_version = classification.vocabulary_version
    row.imported_at = now


def upsert_trials(
    session: Session,
    records: Iterable[TrialRecord],
    *,
    now: dt.datetime | None = None,
    classifier: Classifier = classify,
) -> ImportSummary:
    """Insert or update trial rows by NCT id, in the caller's transaction.

    The stored rows of the incoming NCT ids are read in one query; a record appearing twice is
    compared with the version written just before it.

    Args:
        session: an open session (the caller commits or rolls back).
        records: the records to write.
        now: the import time (timezone-aware; default: the current UTC time).
        classifier: the ACT classifier (default :func:`actnav.trials.recognition.classify`).

    Returns:
        The counts and per-record outcomes.
    """
    when = to_utc(now)
    batch = list(records)
    summary = ImportSummary()
    if not batch:
        return summary
    ids = {r.nct_id for r in batch}
    rows: dict[str, TrialRow] = {
        row.nct_id: row for row in session.scalars(select(TrialRow).where(TrialRow.nct_id.in_(ids)))
    }
    for record in batch:
        sha = content_sha256(record.raw)
        row = rows.get(record.nct_id)
        if row is None:
            row = TrialRow(nct_id=record.nct_id, first_imported_at=when)
            _fill(row, record, sha, classifier(record), when)
            session.add(row)
            rows[record.nct_id] = row
            summary.add(UpsertResult(record.nct_id, UpsertOutcome.NEW, None, record.overall_status))
            continue
        outcome = decide(row.last_update, row.content_sha256, record.last_update, sha)
        previous = row.status
        if outcome is UpsertOutcome.UPDATED:
            _fill(row, record, sha, classifier(record), when)
        summary.add(UpsertResult(record.nct_id, outcome, previous, row.status))
    session.flush()
    return summary


def _batches(records: Iterable[TrialRecord], size: int) -> Iterator[list[TrialRecord]]:
    batch: list[TrialRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_records(
    engine: Engine,
    records: Iterable[TrialRecord],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: dt.datetime | None = None,
    classifier: Classifier = classify,
    on_batch: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Upsert records in batches, each batch one transaction (committed before the next starts).

    An exception while reading or writing a batch rolls back that batch only and propagates;
    the batches already committed stay.

    Args:
        engine: the database (schema already created, see :func:`actnav.store.db.create_schema`).
        records: the records (any iterable; read lazily, batch by batch).
        batch_size: records per transaction.
        now: the import time (default: the current UTC time, read once).
        classifier: the ACT classifier.
        on_batch: called with each committed batch's summary (progress reporting).

    Returns:
        The summary over all batches.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    when = to_utc(now)
    total = ImportSummary()
    for batch in _batches(records, batch_size):
        with session_scope(engine) as session:
            part = upsert_trials(session, batch, now=when, classifier=classifier)
        part.batches_committed = 1
        total.merge(part)
        if on_batch is not None:
            on_batch(part)
    return total


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialListing:
    """One line of ``actnav trials list``."""

    nct_id: str
    title: str
    status: str | None
    last_update: dt.date | None
    is_act: bool
    modality: str | None
    targets: tuple[str, ...]
    cell_source: str | None


def list_trials(
    session: Session,
    *,
    act_only: bool = False,
    modality: str | None = None,
    status: Sequence[str] = (),
    limit: int | None = None,
) -> list[TrialListing]:
    """Stored trials, by NCT id.

    Args:
        session: an open session.
        act_only: only trials classified as ACT.
        modality: only this modality (``CAR-T``, ``TIL``...).
        status: only these overall statuses (upper case, e.g. ``RECRUITING``); empty for all.
        limit: at most this many rows.
    """
    query = select(
        TrialRow.nct_id,
        TrialRow.title,
        TrialRow.status,
        TrialRow.last_update,
        TrialRow.is_act,
        TrialRow.modality,
        TrialRow.targets,
        TrialRow.cell_source,
    ).order_by(TrialRow.nct_id)
    if act_only:
        query = query.where(TrialRow.is_act.is_(True))
    if modality:
        query = query.where(TrialRow.modality == modality)
    if status:
        query = query.where(TrialRow.status.in_(list(status)))
    if limit is not None:
        query = query.limit(limit)
    return [
        TrialListing(
            nct_id=row.nct_id,
            title=row.title,
            status=row.status,
            last_update=row.last_update,
            is_act=bool(row.is_act),
            modality=row.modality,
            targets=tuple(row.targets or ()),
            cell_source=row.cell_source,
        )
        for row in session.execute(query)
    ]


def get_trial(session: Session, nct_id: str) -> TrialRow | None:
    """The stored row of one trial, or None."""
    return session.get(TrialRow, nct_id.strip().upper())


def iter_trial_records(
    session: Session, *, act_only: bool = False, batch: int = 1000
) -> Iterator[TrialRecord]:
    """Every stored trial as a :class:`TrialRecord` (for matching), streamed in NCT id order."""
    query = select(TrialRow).order_by(TrialRow.nct_id).execution_options(yield_per=batch)
    if act_only:
        query = query.where(TrialRow.is_act.is_(True))
    for row in session.scalars(query):
        yield row.to_record()


def count_trials(session: Session) -> tuple[int, int]:
    """(all trials, ACT trials) stored."""
    total = session.scalar(select(func.count()).select_from(TrialRow)) or 0
    act = session.scalar(select(func.count()).select_from(TrialRow).where(TrialRow.is_act.is_(True))) or 0
    return total, act
