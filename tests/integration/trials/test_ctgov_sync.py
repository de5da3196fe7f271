"""Sync with ClinicalTrials.gov into SQLite and PostgreSQL (actnav.trials.ctgov.sync): changes recorded.

The registry is replayed: tests/fixtures/trials/ctgov holds three recorded search pages (9 real
ACT records in the API v2 shape) and one extra study; a second sync serves edited copies (a
newer summary, a status moved to COMPLETED, a trial dropped from the results, a new trial, an
older version). ``httpx.MockTransport`` only; no network. The clock is frozen, in UTC-5.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from tests.pg import BOTH

from actnav.store.db import create_schema, get_engine, session_scope
from actnav.store.trials import SyncRunRow, TrialChangeRow, get_trial
from actnav.trials.ctgov import CtgovClient, CtgovError, RetryPolicy, SearchQuery, sync

DATABASE_BACKENDS = BOTH

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "trials" / "ctgov"
TOKENS = {None: 0, "ZVNkVfNWtkRXhMZ3": 1, "NUpHVGZjb2hGbE1y": 2}
EST = dt.timezone(dt.timedelta(hours=-5))
FIRST = dt.datetime(2026, 11, 28, 7, 0, tzinfo=EST)
SECOND = dt.datetime(2026, 11, 29, 7, 0, tzinfo=EST)
QUERY = SearchQuery(term="CAR-T OR TIL OR TCR", status=())


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def recorded_pages() -> list[dict[str, Any]]:
    return [load(f"studies-page-{n}.json") for n in (1, 2, 3)]


def serve(pages: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[TOKENS[request.url.params.get("pageToken")]])

    return handler


def client(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float] | None = None
) -> CtgovClient:
    return CtgovClient(
        "https://ctgov.test/api/v2",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_retries=2, base_delay_s=0.5),
        sleep=(sleeps if sleeps is not None else []).append,
        rng=random.Random(1),
    )


def study(pages: list[dict[str, Any]], nct: str) -> dict[str, Any]:
    for page in pages:
        for s in page["studies"]:
            if s["protocolSection"]["identificationModule"]["nctId"] == nct:
                return dict(s)
    raise KeyError(nct)


def second_sync_pages() -> list[dict[str, Any]]:
    """The registry a day later: one updated, one completed, one gone, one new, one older copy."""
    pages = copy.deepcopy(recorded_pages())
    updated = study(pages, "NCT02830724")["protocolSection"]
    updated["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-11-20"
    updated["descriptionModule"]["briefSummary"] += "\n\nAmendment: a new dose level was added."
    completed = study(pages, "NCT03190941")["protocolSection"]["statusModule"]
    completed["overallStatus"] = "COMPLETED"
    completed["lastUpdatePostDateStruct"]["date"] = "2026-11-21"
    older = study(pages, "NCT03430011")["protocolSection"]
    older["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2023-01-01"
    older["identificationModule"]["briefTitle"] = "An older title"
    pages[1]["studies"] = [
        s
        for s in pages[1]["studies"]
        if s["protocolSection"]["identificationModule"]["nctId"] != "NCT03407859"
    ]
    pages[2]["studies"].append(load("extra-studies.json")[0])  # NCT02315612
    return pages


@pytest.fixture
def engine(migrated_database_url: str) -> Engine:
    eng = get_engine(migrated_database_url)
    create_schema(eng)
    return eng


def test_first_sync_fetches_three_pages_and_records_every_trial_as_new(engine: Engine) -> None:
    with client(serve(recorded_pages())) as c:
        report = sync(engine, c, QUERY, page_size=3, clock=lambda: FIRST)
    assert (report.total_count, report.fetched, report.pages, report.complete) == (9, 9, 3, True)
    assert report.count("new") == 9 and report.count("updated") == report.count("closed") == 0
    with session_scope(engine) as session:
        run = session.get(SyncRunRow, report.run_id)
        assert run is not None
        assert (run.status, run.total, run.fetched, run.new_count) == ("completed", 9, 9, 9)
        assert run.started_at.replace(tzinfo=None) == FIRST.astimezone(dt.UTC).replace(tzinfo=None)
        assert run.params == {
            "term": "CAR-T OR TIL OR TCR",
            "condition": None,
            "intervention": None,
            "status": [],
        }
        row = get_trial(session, "NCT04044768")
        assert row is not None and row.last_update == dt.date(2024, 3, 11)
        assert (row.is_act, row.modality, row.targets) == (True, "TCR-T", ["MAGE-A4"])


def test_second_sync_records_new_updated_and_closed(engine: Engine) -> None:
    with client(serve(recorded_pages())) as c:
        sync(engine, c, QUERY, page_size=3, clock=lambda: FIRST)
    with client(serve(second_sync_pages())) as c:
        report = sync(engine, c, QUERY, page_size=3, clock=lambda: SECOND)

    changes = {(ch.nct_id, ch.kind, ch.detail) for ch in report.changes}
    assert changes == {
        ("NCT02830724", "updated", None),
        ("NCT03190941", "closed", "RECRUITING -> COMPLETED"),
        ("NCT03407859", "closed", "no longer returned by the query"),
        ("NCT02315612", "new", "COMPLETED"),
    }
    assert (report.summary.unchanged, report.summary.skipped_older) == (5, 1)
    with session_scope(engine) as session:
        rows = session.scalars(
            select(TrialChangeRow).where(TrialChangeRow.sync_run_id == report.run_id)
        ).all()
        assert {(r.nct_id, r.kind) for r in rows} == {(c[0], c[1]) for c in changes}
        run = session.get(SyncRunRow, report.run_id)
        assert run is not None
        assert (run.new_count, run.updated_count, run.closed_count, run.skipped_older_count) == (1, 1, 2, 1)
        kept = get_trial(session, "NCT03430011")
        assert kept is not None and kept.title != "An older title"  # the older copy did not overwrite
        closed = get_trial(session, "NCT03190941")
        assert closed is not None and closed.status == "COMPLETED"


def test_a_different_query_does_not_close_the_first_querys_trials(engine: Engine) -> None:
    with client(serve(recorded_pages())) as c:
        sync(engine, c, QUERY, clock=lambda: FIRST)
    only_page_3 = [recorded_pages()[2]]
    with client(serve(only_page_3)) as c:
        report = sync(engine, c, SearchQuery(condition="myeloma"), clock=lambda: SECOND)
    assert report.count("closed") == 0 and report.summary.unchanged == 3


def test_429_then_success_and_503_twice_then_success(engine: Engine) -> None:
    # page 1 answers 429 (Retry-After: 2) once; page 2 answers 503 twice; then all succeed.
    pages = recorded_pages()
    failures = {0: [httpx.Response(429, headers={"Retry-After": "2"})], 1: [httpx.Response(503)] * 2}

    def handler(request: httpx.Request) -> httpx.Response:
        number = TOKENS[request.url.params.get("pageToken")]
        if failures.get(number):
            return failures[number].pop(0)
        return httpx.Response(200, json=pages[number])

    sleeps: list[float] = []
    with client(handler, sleeps) as c:
        report = sync(engine, c, QUERY, clock=lambda: FIRST)
    assert report.fetched == 9 and report.count("new") == 9
    assert sleeps[0] == 2.0 and len(sleeps) == 3
    assert 0.25 <= sleeps[1] <= 0.5 and 0.5 <= sleeps[2] <= 1.0  # exponential backoff with jitter


def test_a_failure_mid_sync_keeps_the_pages_stored_and_marks_the_run_failed(engine: Engine) -> None:
    pages = recorded_pages()

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("pageToken") == "NUpHVGZjb2hGbE1y":
            return httpx.Response(503)
        return httpx.Response(200, json=pages[TOKENS[request.url.params.get("pageToken")]])

    with client(flaky) as c, pytest.raises(CtgovError, match="HTTP 503 after 3 attempts"):
        sync(engine, c, QUERY, clock=lambda: FIRST)
    with session_scope(engine) as session:
        run = session.scalars(select(SyncRunRow)).one()
        assert (run.status, run.fetched, run.new_count, run.complete) == ("failed", 6, 6, False)
        assert run.error is not None and "503" in run.error
        assert get_trial(session, "NCT03745326") is not None  # page 2 landed
        assert get_trial(session, "NCT03430011") is None  # page 3 never came

    # A failed run is not the reference for "no longer returned": the next complete run closes nothing.
    with client(serve(recorded_pages())) as c:
        report = sync(engine, c, QUERY, clock=lambda: SECOND)
    assert report.count("closed") == 0 and report.count("new") == 3


def test_a_truncated_sync_does_not_close_unreturned_trials(engine: Engine) -> None:
    with client(serve(recorded_pages())) as c:
        sync(engine, c, QUERY, page_size=3, clock=lambda: FIRST)
    with client(serve(recorded_pages())) as c:
        report = sync(engine, c, QUERY, page_size=3, max_pages=1, clock=lambda: SECOND)
    assert (report.complete, report.pages, report.count("closed")) == (False, 1, 0)


def test_a_malformed_study_is_reported_and_the_rest_lands(engine: Engine) -> None:
    pages = recorded_pages()
    broken = pages[0]["studies"][1]["protocolSection"]
    broken["eligibilityModule"]["eligibilityCriteria"] = ["not", "a", "string"]
    with client(serve(pages)) as c:
        report = sync(engine, c, QUERY, clock=lambda: FIRST)
    assert report.count("new") == 8
    (problem,) = report.problems
    assert (problem.file, problem.record, problem.field) == (
        "page 1",
        "NCT02621021",
        "protocolSection.eligibilityModule.eligibilityCriteria",
    )
