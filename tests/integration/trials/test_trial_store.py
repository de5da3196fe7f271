"""Trial records into real SQLite and PostgreSQL databases (actnav.store.trials): upserts, batches.

Uses the packaged records (always present) and, for the 56-record import, the originals in
../shared/data (skipped with a reason when absent, a failure in CI).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from tests.pg import BOTH

from actnav.store.db import create_schema, get_engine, session_scope
from actnav.store.trials import (
    TrialRow,
    UpsertOutcome,
    count_trials,
    decide,
    get_trial,
    import_records,
    list_trials,
    upsert_trials,
)
from actnav.trials.cli import import_files
from actnav.trials.models import TrialRecord
from actnav.trials.sources import iter_bundled_records, parse_record, read_path

DATABASE_BACKENDS = BOTH

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
NOW = dt.datetime(2026, 11, 29, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))


def require_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing (the shared data folder is required in CI)")
        pytest.skip(f"{path} is missing: the shared data folder is needed for this test")
    return path


@pytest.fixture
def engine(migrated_database_url: str) -> Engine:
    eng = get_engine(migrated_database_url)
    create_schema(eng)
    return eng


def bundled() -> list[TrialRecord]:
    return [r.record for r in iter_bundled_records() if r.record is not None]


def dated(study: dict[str, Any], date: str, title: str | None = None) -> TrialRecord:
    """A copy of an API v2 study with a last-update date (and optionally another title)."""
    copy_ = copy.deepcopy(study)
    copy_["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": date, "type": "ACTUAL"}
    if title:
        copy_["protocolSection"]["identificationModule"]["briefTitle"] = title
    return parse_record(copy_)


@pytest.fixture(scope="module")
def toca() -> dict[str, Any]:
    # NCT02576665, a real API v2 study (ctgov-v2-samples), TERMINATED.
    (record,) = [r for r in bundled() if r.nct_id == "NCT02576665"]
    return record.raw


def test_the_56_act_records_import_into_a_fresh_database(engine: Engine) -> None:
    folders = [
        require_shared("data", "ctgov-act-trials"),
        require_shared("data", "trialgpt2-act-sample-records"),
    ]
    summary, problems, files = import_files(folders, engine, batch_size=20, now=NOW)
    assert (files, problems) == (56, [])
    assert (summary.new, summary.updated, summary.unchanged, summary.skipped_older) == (56, 0, 0, 0)
    assert summary.batches_committed == 3
    with session_scope(engine) as session:
        assert count_trials(session) == (56, 56)


def test_bundled_records_reimport_all_unchanged(engine: Engine) -> None:
    first = import_records(engine, bundled(), now=NOW)
    second = import_records(engine, bundled(), now=NOW + dt.timedelta(days=1))
    assert (first.new, first.total) == (59, 59)
    assert (second.unchanged, second.new, second.updated, second.skipped_older) == (59, 0, 0, 0)
    with session_scope(engine) as session:
        row = get_trial(session, "nct03391466")
        assert row is not None
        # unchanged rows keep their import time; times are stored in UTC (SQLite drops the zone)
        assert row.imported_at.replace(tzinfo=None) == NOW.astimezone(dt.UTC).replace(tzinfo=None)
        assert (row.is_act, row.modality, row.targets) == (True, "CAR-T", ["CD19"])


def test_a_stored_record_reads_back_identical(engine: Engine) -> None:
    records = bundled()
    import_records(engine, records, now=NOW)
    with session_scope(engine) as session:
        for record in records:
            row = get_trial(session, record.nct_id)
            assert row is not None
            assert row.to_record() == record
            assert row.raw_json == record.raw


def test_an_older_version_never_overwrites_a_newer_one(engine: Engine, toca: dict[str, Any]) -> None:
    newer = dated(toca, "2024-05-01", title="Toca 6 (May 2024 version)")
    older = dated(toca, "2024-01-15", title="Toca 6 (January 2024 version)")
    with session_scope(engine) as session:
        assert upsert_trials(session, [newer], now=NOW).new == 1
    with session_scope(engine) as session:
        summary = upsert_trials(session, [older], now=NOW)
        assert summary.results[0].outcome is UpsertOutcome.SKIPPED_OLDER
    with session_scope(engine) as session:
        row = get_trial(session, "NCT02576665")
        assert row is not None
        assert (row.title, row.last_update) == ("Toca 6 (May 2024 version)", dt.date(2024, 5, 1))
    undated = parse_record(copy.deepcopy(toca))
    with session_scope(engine) as session:
        assert upsert_trials(session, [undated], now=NOW).skipped_older == 1


def test_same_date_same_content_is_unchanged_and_newer_is_updated(
    engine: Engine, toca: dict[str, Any]
) -> None:
    v1 = dated(toca, "2024-05-01")
    with session_scope(engine) as session:
        upsert_trials(session, [v1], now=NOW)
    with session_scope(engine) as session:
        again = upsert_trials(session, [dated(toca, "2024-05-01")], now=NOW)
        same_day_edit = upsert_trials(
            session, [dated(toca, "2024-05-01", title="Edited the same day")], now=NOW
        )
        later = upsert_trials(session, [dated(toca, "2024-06-01", title="June")], now=NOW)
    assert again.results[0].outcome is UpsertOutcome.UNCHANGED
    assert same_day_edit.results[0].outcome is UpsertOutcome.UPDATED
    assert later.results[0].outcome is UpsertOutcome.UPDATED
    assert later.results[0].previous_status == "TERMINATED"


def test_two_versions_in_one_batch_keep_the_newer(engine: Engine, toca: dict[str, Any]) -> None:
    with session_scope(engine) as session:
        summary = upsert_trials(
            session, [dated(toca, "2024-05-01", "new"), dated(toca, "2024-01-01", "old")], now=NOW
        )
    assert [r.outcome for r in summary.results] == [UpsertOutcome.NEW, UpsertOutcome.SKIPPED_OLDER]
    with session_scope(engine) as session:
        row = get_trial(session, "NCT02576665")
        assert row is not None and row.title == "new"


@pytest.mark.parametrize(
    ("stored", "incoming", "same", "outcome"),
    [
        (dt.date(2024, 5, 1), dt.date(2024, 4, 30), False, UpsertOutcome.SKIPPED_OLDER),
        (dt.date(2024, 5, 1), dt.date(2024, 5, 1), True, UpsertOutcome.UNCHANGED),
        (dt.date(2024, 5, 1), dt.date(2024, 5, 1), False, UpsertOutcome.UPDATED),
        (dt.date(2024, 5, 1), dt.date(2024, 5, 2), False, UpsertOutcome.UPDATED),
        (dt.date(2024, 5, 1), None, False, UpsertOutcome.SKIPPED_OLDER),
        (None, dt.date(2024, 5, 1), False, UpsertOutcome.UPDATED),
        (None, None, False, UpsertOutcome.UPDATED),
        (None, None, True, UpsertOutcome.UNCHANGED),
    ],
)
def test_the_upsert_rule(
    stored: dt.date | None, incoming: dt.date | None, same: bool, outcome: UpsertOutcome
) -> None:
    assert decide(stored, "a", incoming, "a" if same else "b") is outcome


def test_a_crash_in_the_second_batch_keeps_the_first(engine: Engine) -> None:
    records = bundled()[:30]

    def failing() -> Iterator[TrialRecord]:
        for i, record in enumerate(records):
            if i == 14:  # inside the second batch of 10
                raise RuntimeError("simulated crash mid-import")
            yield record

    with pytest.raises(RuntimeError, match="simulated crash"):
        import_records(engine, failing(), batch_size=10, now=NOW)
    with session_scope(engine) as session:
        stored = sorted(session.scalars(select(TrialRow.nct_id)))
    assert stored == sorted(r.nct_id for r in records[:10])

    # A failure while writing (here in the classifier) rolls back only its own batch too.
    def classifier_failing_on(nct_id: str) -> Any:
        from actnav.trials.recognition import classify

        def classify_or_fail(record: TrialRecord) -> Any:
            if record.nct_id == nct_id:
                raise RuntimeError("classifier crashed")
            return classify(record)

        return classify_or_fail

    with pytest.raises(RuntimeError, match="classifier crashed"):
        import_records(
            engine, records, batch_size=10, now=NOW, classifier=classifier_failing_on(records[25].nct_id)
        )
    with session_scope(engine) as session:
        assert session.scalar(select(TrialRow).where(TrialRow.nct_id == records[15].nct_id)) is not None
        assert session.scalar(select(TrialRow).where(TrialRow.nct_id == records[25].nct_id)) is None


def test_malformed_records_are_reported_while_the_rest_lands(engine: Engine, tmp_path: Path) -> None:
    good = {r.nct_id: r.raw for r in bundled()}
    no_id = copy.deepcopy(good["NCT03575351"])
    del no_id["nctid"]
    bad_elig = copy.deepcopy(good["NCT03672851"])
    bad_elig["raw_criteria"] = 42
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps([good["NCT03391466"], no_id, bad_elig]), encoding="utf-8")
    (folder / "b.ndjson").write_text(json.dumps(good["NCT01174121"]) + "\n{oops\n", encoding="utf-8")
    summary, problems, files = import_files([folder], engine, now=NOW)
    assert files == 2 and summary.new == 2
    assert [str(p).split(": ", 1)[0] for p in problems] == [
        f"{folder / 'a.json'}:record 2:nctid",
        f"{folder / 'a.json'}:NCT03672851:raw_criteria",
        f"{folder / 'b.ndjson'}:line 2:(line)",
    ]
    with session_scope(engine) as session:
        assert [t.nct_id for t in list_trials(session)] == ["NCT01174121", "NCT03391466"]


def test_list_filters(engine: Engine) -> None:
    import_records(engine, bundled(), now=NOW)
    with session_scope(engine) as session:
        assert len(list_trials(session)) == 59
        assert len(list_trials(session, act_only=True)) == 56
        til = list_trials(session, modality="TIL")
        recruiting = list_trials(session, status=["RECRUITING"], act_only=True)
    assert {t.modality for t in til} == {"TIL"} and len(til) == 10
    assert {t.status for t in recruiting} == {"RECRUITING"}


def test_shared_files_and_bundle_hold_the_same_records(engine: Engine) -> None:
    folder = require_shared("data", "ctgov-act-trials")
    from_shared = {r.record.nct_id: r.record.raw for r in read_path(folder) if r.record}
    from_bundle = {r.nct_id: r.raw for r in bundled()}
    assert all(from_bundle[k] == v for k, v in from_shared.items())
