"""ClinicalTrials.gov API v2 client (httpx) and the sync that records what changed.

* :class:`CtgovClient` searches ``GET {base_url}/studies`` with ``query.term``, ``query.cond``,
  ``query.intr``, ``filter.overallStatus`` and ``pageSize``, follows ``nextPageToken`` to the last
  page, and reads ``totalCount`` (``countTotal=true`` on the first request). It retries 429 and 5xx
  responses and transport errors (timeouts, refused connections) with exponential backoff and
  jitter, honours ``Retry-After``, and gives up after a bounded number of retries.
  The base URL comes from the environment variable ``ACTNAV_CTGOV_URL`` (default
  ``https://clinicaltrials.gov/api/v2``); the transport is swappable (``httpx.MockTransport`` in
  tests, so tests never touch the network).
* :func:`sync` stores every page as it arrives (one transaction per page: a failure mid-sync keeps
  the pages already stored), then records in ``sync_run`` / ``trial_change`` what changed since the
  last completed run of the same query: ``new`` trials, ``updated`` ones, and ``closed`` ones, i.e.
  whose status moved to a closed status (:data:`CLOSED_STATUSES`) or which the same query no
  longer returns (only decided when this run fetched every page). Each trial gets at most one
  change per run; a trial that was updated and closed is recorded as ``closed``.

Errors: :class:`CtgovError` (exit code 2) names the URL and what the API or the network said.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine

from actnav.errors import InputError
from actnav.store.db import session_scope
from actnav.store.trials import (
    ImportSummary,
    SyncRunRow,
    SyncSeenRow,
    TrialChangeRow,
    UpsertOutcome,
    to_utc,
    upsert_trials,
)
from actnav.trials.recognition import classify
from actnav.trials.sources import RecordError, RecordProblem, SourceResult, parse_record

ENV_BASE_URL = "ACTNAV_CTGOV_URL"
DEFAULT_BASE_URL = "https://clinicaltrials.gov/api/v2"
USER_AGENT = "actnav (adoptive cell therapy navigator)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGE_SIZE = 1000

OVERALL_STATUSES = (
    "ACTIVE_NOT_RECRUITING",
    "COMPLETED",
    "ENROLLING_BY_INVITATION",
    "NOT_YET_RECRUITING",
    "RECRUITING",
    "SUSPENDED",
    "TERMINATED",
    "WITHDRAWN",
    "AVAILABLE",
    "NO_LONGER_AVAILABLE",
    "TEMPORARILY_NOT_AVAILABLE",
    "APPROVED_FOR_MARKETING",
    "WITHHELD",
    "UNKNOWN",
)
"""API v2 ``overallStatus`` values (``filter.overallStatus`` accepts them, comma-separated)."""

CLOSED_STATUSES = frozenset(
    {
        "COMPLETED",
        "TERMINATED",
        "WITHDRAWN",
        "SUSPENDED",
        "ACTIVE_NOT_RECRUITING",
        "NO_LONGER_AVAILABLE",
        "TEMPORARILY_NOT_AVAILABLE",
        "WITHHELD",
    }
)
"""Statuses in which a trial no longer enrols: a move into one of them is a ``closed`` change."""


class CtgovError(InputError):
    """ClinicalTrials.gov could not be queried (bad query, HTTP error, network down; exit code 2).

    ``where`` names the URL (never more than the query the user typed).
    """


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before retrying a request.

    Attributes:
        max_retries: retries after the first attempt (so at most ``max_retries + 1`` requests).
        base_delay_s: the first backoff, in seconds; doubled at each retry.
        max_delay_s: the longest backoff, in seconds (also caps ``Retry-After``).
        jitter: fraction of the backoff drawn at random (0.5: wait between 50 % and 100 %).
    """

    max_retries: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: float = 0.5

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (0-based), with jitter, in seconds."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2.0**retry))
        return ceiling * (1.0 - self.jitter) + ceiling * self.jitter * rng.random()


def retry_after_s(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None.

    Args:
        value: the header value.
        now: the current time (for HTTP-dates; default: now, UTC).
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


@dataclass(frozen=True)
class SearchQuery:
    """A study search: the options of ``actnav trials sync``.

    Attributes:
        term: free text (``query.term``).
        condition: condition or disease (``query.cond``).
        intervention: intervention or treatment (``query.intr``).
        status: overall statuses to keep (``filter.overallStatus``), upper case.
    """

    term: str | None = None
    condition: str | None = None
    intervention: str | None = None
    status: tuple[str, ...] = ()

    def params(self) -> dict[str, str]:
        """The API query parameters (without paging)."""
        out: dict[str, str] = {}
        if self.term:
            out["query.term"] = self.term
        if self.condition:
            out["query.cond"] = self.condition
        if self.intervention:
            out["query.intr"] = self.intervention
        if self.status:
            out["filter.overallStatus"] = ",".join(self.status)
        return out

    def key(self) -> str:
        """A stable key of the query (SHA-256 of its canonical JSON), to compare sync runs."""
        canonical = {
            "term": self.term or None,
            "condition": self.condition or None,
            "intervention": self.intervention or None,
            "status": sorted(self.status),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """The query as stored in ``sync_run.params``."""
        return {
            "term": self.term,
            "condition": self.condition,
            "intervention": self.intervention,
            "status": list(self.status),
        }


def normalise_statuses(values: Sequence[str]) -> tuple[str, ...]:
    """Statuses from options (``recruiting``, ``"RECRUITING,NOT_YET_RECRUITING"``) in API form.

    Raises:
        InputError: a value is not an API v2 overall status (names ``--status``).
    """
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            status = part.strip().upper().replace("-", "_").replace(" ", "_")
            if not status:
                continue
            if status not in OVERALL_STATUSES:
                raise InputError(
                    f"unknown status {part.strip()!r}",
                    where="--status",
                    hint="one of " + ", ".join(s.lower() for s in OVERALL_STATUSES),
                )
            out.append(status)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class SearchPage:
    """One page of search results.

    Attributes:
        number: 1-based page number.
        studies: the study objects as returned (API v2 shape).
        total_count: the API's ``totalCount`` (first page only; None on later pages).
        next_page_token: the token of the next page, or None on the last page.
    """

    number: int
    studies: list[dict[str, Any]]
    total_count: int | None
    next_page_token: str | None


class CtgovClient:
    """A ClinicalTrials.gov API v2 client.

    Args:
        base_url: the API root; default ``$ACTNAV_CTGOV_URL`` or ``https://clinicaltrials.gov/api/v2``.
        transport: an httpx transport (``httpx.MockTransport`` in tests); default: the network.
        timeout_s: connect/read/write/pool timeout in seconds.
        retry: the retry policy for 429, 5xx and transport errors.
        sleep: how to wait (injected in tests); default :func:`time.sleep`.
        rng: the random source of the jitter (seed it in tests).

    Example:
        >>> with CtgovClient() as client:  # doctest: +SKIP
        ...     for page in client.iter_pages(SearchQuery(condition="multiple myeloma", term="CAR-T")):
        ...         print(page.number, len(page.studies))
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=True,
        )
        self.requests_made = 0
        self.retries_made = 0

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> CtgovClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get_json(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            self.requests_made += 1
            try:
                response = self._client.get(path, params=params)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt >= self.retry.max_retries:
                    raise CtgovError(
                        f"no response after {attempt + 1} attempts ({reason})",
                        where=url,
                        hint="check the network, or set ACTNAV_CTGOV_URL",
                    ) from exc
                self._wait(attempt, None)
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES:
                if attempt >= self.retry.max_retries:
                    raise CtgovError(
                        f"HTTP {response.status_code} after {attempt + 1} attempts",
                        where=url,
                        hint="the registry is busy or down; try again later",
                    )
                self._wait(attempt, retry_after_s(response.headers.get("Retry-After")))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise CtgovError(f"HTTP {response.status_code}: {_api_message(response)}", where=url)
            try:
                data = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CtgovError("the response is not JSON", where=url) from exc
            if not isinstance(data, dict):
                raise CtgovError("the response is not a JSON object", where=url)
            return data

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        self.retries_made += 1
        delay = self.retry.backoff_s(attempt, self._rng)
        if retry_after is not None:
            delay = min(max(retry_after, 0.0), self.retry.max_delay_s)
        self._sleep(delay)

    def iter_pages(
        self, query: SearchQuery, *, page_size: int = 100, max_pages: int | None = None
    ) -> Iterator[SearchPage]:
        """Pages of a study search, from the first to the last (or ``max_pages``).

        Args:
            query: what to search.
            page_size: studies per page (1 to 1000).
            max_pages: stop after this many pages (None: to the end).

        Yields:
            One :class:`SearchPage` per page.

        Raises:
            CtgovError: an HTTP error other than 429/5xx, retries exhausted, a response not in the
                v2 shape, or a page token that repeats (the API would loop).
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InputError(
                f"page size {page_size} is not between 1 and {MAX_PAGE_SIZE}", where="--page-size"
            )
        params = {**query.params(), "pageSize": str(page_size), "countTotal": "true", "format": "json"}
        seen_tokens: set[str] = set()
        number = 0
        while True:
            number += 1
            data = self._get_json("/studies", params)
            studies = data.get("studies", [])
            if not isinstance(studies, list):
                raise CtgovError("'studies' is not a list", where=f"{self.base_url}/studies (page {number})")
            total = data.get("totalCount")
            token = data.get("nextPageToken")
            token = token if isinstance(token, str) and token else None
            yield SearchPage(
                number=number,
                studies=[s for s in studies if isinstance(s, dict)],
                total_count=total if isinstance(total, int) else None,
                next_page_token=token,
            )
            if token is None or (max_pages is not None and number >= max_pages):
                return
            if token in seen_tokens:
                raise CtgovError(f"page token repeated at page {number}", where=f"{self.base_url}/studies")
            seen_tokens.add(token)
            params = {k: v for k, v in params.items() if k != "countTotal"}
            params["pageToken"] = token

    def search_studies(
        self,
        term: str | None = None,
        condition: str | None = None,
        intervention: str | None = None,
        status: Sequence[str] = (),
        page_size: int = 100,
        max_pages: int | None = None,
    ) -> SearchResult:
        """Every study of a search (all pages), with the total the API reports.

        Args:
            term: free text (``query.term``).
            condition: condition or disease (``query.cond``).
            intervention: intervention (``query.intr``).
            status: overall statuses (``recruiting``, ``RECRUITING``...); empty for all.
            page_size: studies per page (1 to 1000).
            max_pages: stop after this many pages.

        Raises:
            CtgovError: see :meth:`iter_pages`.
            InputError: an unknown status.
        """
        query = SearchQuery(term, condition, intervention, normalise_statuses(status))
        result = SearchResult()
        for page in self.iter_pages(query, page_size=page_size, max_pages=max_pages):
            if page.number == 1:
                result.total_count = page.total_count
            result.studies.extend(page.studies)
            result.pages += 1
            result.complete = page.next_page_token is None
        return result


@dataclass
class SearchResult:
    """All studies of a search.

    Attributes:
        total_count: what the API reported (``totalCount``), or None if it did not say.
        studies: the study objects fetched.
        pages: pages fetched.
        complete: the last page was reached (False when stopped by ``max_pages``).
    """

    total_count: int | None = None
    studies: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    complete: bool = False


def _api_message(response: httpx.Response) -> str:
    text = response.text.strip()
    if not text:
        return response.reason_phrase or "error"
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return " ".join(text.split())[:300]
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])[:300]
    return " ".join(text.split())[:300]


# --------------------------------------------------------------------------------------------
# Sync
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialChange:
    """One change recorded by a sync run."""

    nct_id: str
    kind: str
    detail: str | None = None


@dataclass
class SyncReport:
    """The outcome of one sync run.

    Attributes:
        run_id: the ``sync_run`` row.
        total_count: what the registry reported for the query (None if it did not say).
        fetched: studies received.
        pages: pages received.
        complete: every page was fetched (False when stopped by ``max_pages``).
        summary: upsert counts (new / updated / unchanged / skipped-older).
        closed: trials closed (status moved to a closed status, or no longer returned).
        changes: every change recorded, in order.
        problems: malformed studies, skipped (``page N:record M:field``).
    """

    run_id: int
    total_count: int | None = None
    fetched: int = 0
    pages: int = 0
    complete: bool = False
    summary: ImportSummary = field(default_factory=ImportSummary)
    changes: list[TrialChange] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)

    def count(self, kind: str) -> int:
        """Changes of one kind (``new``, ``updated``, ``closed``)."""
        return sum(1 for c in self.changes if c.kind == kind)


def utc_now() -> dt.datetime:
    """The current time, UTC (the default clock of :func:`sync`)."""
    return dt.datetime.now(dt.UTC)


def sync(
    engine: Engine,
    client: CtgovClient,
    query: SearchQuery,
    *,
    page_size: int = 100,
    max_pages: int | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    on_page: Callable[[SearchPage, SyncReport], None] | None = None,
) -> SyncReport:
    """Fetch a search from ClinicalTrials.gov, store it, and record what changed.

    Args:
        engine: the database (schema created).
        client: the API client.
        query: the search.
        page_size: studies per page.
        max_pages: stop after this many pages; a truncated sync does not mark unreturned trials closed.
        clock: returns the current time (timezone-aware); read at the start (also the import time
            of the records) and at the end.
        on_page: called after each page is stored (progress reporting).

    Returns:
        The report (also stored in ``sync_run`` and ``trial_change``).

    Raises:
        CtgovError: the API failed; the run is stored as ``failed`` with the pages received so far.
    """
    started = to_utc(clock())
    with session_scope(engine) as session:
        run = SyncRunRow(started_at=started, params=query.as_dict(), query_key=query.key(), status="running")
        session.add(run)
        session.flush()
        run_id = run.id
    report = SyncReport(run_id=run_id)
    seen: set[str] = set()
    try:
        for page in client.iter_pages(query, page_size=page_size, max_pages=max_pages):
            if page.number == 1:
                report.total_count = page.total_count
            report.pages = page.number
            report.fetched += len(page.studies)
            _store_page(engine, run_id, page, report, seen, started)
            report.complete = page.next_page_token is None
            if on_page is not None:
                on_page(page, report)
        if report.complete:
            _close_unreturned(engine, run_id, query, report, seen)
    except BaseException as exc:
        # The database itself may be what failed: recording the failure must not hide the error.
        with contextlib.suppress(Exception):
            _finish(
                engine,
                report,
                status="failed",
                error=str(exc) or type(exc).__name__,
                finished=to_utc(clock()),
            )
        raise
    _finish(engine, report, status="completed", error=None, finished=to_utc(clock()))
    return report


def _store_page(
    engine: Engine, run_id: int, page: SearchPage, report: SyncReport, seen: set[str], now: dt.datetime
) -> None:
    records = []
    for position, study in enumerate(page.studies, start=1):
        result = _parse(study, page.number, position)
        if result.problem is not None:
            report.problems.append(result.problem)
            continue
        assert result.record is not None
        records.append(result.record)
    with session_scope(engine) as session:
        summary = upsert_trials(session, records, now=now, classifier=classify)
        for res in summary.results:
            if res.nct_id not in seen:
                session.add(SyncSeenRow(sync_run_id=run_id, nct_id=res.nct_id))
                seen.add(res.nct_id)
            change = _change_for(res.outcome, res.previous_status, res.status, res.nct_id)
            if change is not None:
                session.add(
                    TrialChangeRow(
                        sync_run_id=run_id, nct_id=change.nct_id, kind=change.kind, detail=change.detail
                    )
                )
                report.changes.append(change)
    report.summary.merge(summary)


def _parse(study: dict[str, Any], page: int, position: int) -> SourceResult:
    label = f"page {page}"
    try:
        return SourceResult(file=label, position=position, record=parse_record(study))
    except RecordError as exc:
        nct = exc.nct_id or f"record {position}"
        return SourceResult(
            file=label, position=position, problem=RecordProblem(label, nct, exc.field, exc.problem)
        )


def _change_for(
    outcome: UpsertOutcome, previous: str | None, status: str | None, nct_id: str
) -> TrialChange | None:
    if outcome is UpsertOutcome.NEW:
        return TrialChange(nct_id, "new", status)
    if outcome is UpsertOutcome.UPDATED:
        if status in CLOSED_STATUSES and previous not in CLOSED_STATUSES:
            return TrialChange(nct_id, "closed", f"{previous or 'no status'} -> {status}")
        detail = f"{previous} -> {status}" if previous != status else None
        return TrialChange(nct_id, "updated", detail)
    return None


def _close_unreturned(
    engine: Engine, run_id: int, query: SearchQuery, report: SyncReport, seen: set[str]
) -> None:
    """Trials the previous complete run of the same query returned and this one did not."""
    with session_scope(engine) as session:
        previous_id = session.scalar(
            select(SyncRunRow.id)
            .where(
                SyncRunRow.query_key == query.key(),
                SyncRunRow.status == "completed",
                SyncRunRow.complete.is_(True),
                SyncRunRow.id != run_id,
            )
            .order_by(SyncRunRow.id.desc())
            .limit(1)
        )
        if previous_id is None:
            return
        before = set(
            session.scalars(select(SyncSeenRow.nct_id).where(SyncSeenRow.sync_run_id == previous_id))
        )
        already = {c.nct_id for c in report.changes}
        for nct_id in sorted(before - seen - already):
            change = TrialChange(nct_id, "closed", "no longer returned by the query")
            session.add(
                TrialChangeRow(sync_run_id=run_id, nct_id=nct_id, kind=change.kind, detail=change.detail)
            )
            report.changes.append(change)


def _finish(
    engine: Engine, report: SyncReport, *, status: str, error: str | None, finished: dt.datetime
) -> None:
    with session_scope(engine) as session:
        run = session.get(SyncRunRow, report.run_id)
        if run is None:  # pragma: no cover - the row was committed at the start
            return
        run.finished_at = finished
        run.status = status
        run.complete = report.complete
        run.total = report.total_count
        run.fetched = report.fetched
        run.new_count = report.count("new")
        run.updated_count = report.count("updated")
        run.closed_count = report.count("closed")
        run.unchanged_count = report.summary.unchanged
        run.skipped_older_count = report.summary.skipped_older
        run.malformed_count = len(report.problems)
        run.error = error[:2000] if error else None
