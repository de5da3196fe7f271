"""The ClinicalTrials.gov API v2 client (actnav.trials.ctgov.CtgovClient): paging, retries, errors.

Responses are replayed from tests/fixtures/trials/ctgov (real records in the v2 search-response
shape, see build_fixtures.py there) through ``httpx.MockTransport``: no test touches the network.
Waits are recorded by an injected ``sleep`` instead of slept.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from actnav.errors import InputError
from actnav.trials.ctgov import (
    DEFAULT_BASE_URL,
    CtgovClient,
    CtgovError,
    RetryPolicy,
    SearchQuery,
    normalise_statuses,
    retry_after_s,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "trials" / "ctgov"
BASE = "https://ctgov.test/api/v2"


def page(number: int) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"studies-page-{number}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


class Replay:
    """Serves the three recorded pages by page token, after optional failures; logs each request."""

    def __init__(self, failures: list[httpx.Response | Exception] | None = None) -> None:
        self.failures = list(failures or [])
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        token = request.url.params.get("pageToken")
        number = {None: 1, "ZVNkVfNWtkRXhMZ3": 2, "NUpHVGZjb2hGbE1y": 3}[token]
        return httpx.Response(200, json=page(number))


def client_for(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]) -> CtgovClient:
    return CtgovClient(
        BASE,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_retries=3, base_delay_s=1.0, max_delay_s=30.0, jitter=0.5),
        sleep=sleeps.append,
        rng=random.Random(7),
    )


def test_three_pages_are_followed_to_the_end_with_the_total() -> None:
    replay, sleeps = Replay(), []
    with client_for(replay, sleeps) as client:
        result = client.search_studies(condition="lymphoma", term="CAR-T", status=["recruiting"], page_size=3)
    assert result.total_count == 9 and result.pages == 3 and result.complete
    assert len(result.studies) == 9
    first, second, third = (r.url.params for r in replay.requests)
    assert first["query.cond"] == "lymphoma" and first["query.term"] == "CAR-T"
    assert first["filter.overallStatus"] == "RECRUITING" and first["pageSize"] == "3"
    assert first["countTotal"] == "true" and "pageToken" not in first
    assert second["pageToken"] == "ZVNkVfNWtkRXhMZ3" and "countTotal" not in second
    assert third["pageToken"] == "NUpHVGZjb2hGbE1y"
    assert sleeps == []


def test_max_pages_stops_early_and_says_so() -> None:
    with client_for(Replay(), []) as client:
        result = client.search_studies(term="CAR-T", max_pages=2)
    assert (result.pages, len(result.studies), result.complete) == (2, 6, False)


def test_429_then_success_honours_retry_after() -> None:
    replay, sleeps = Replay([httpx.Response(429, headers={"Retry-After": "7"})]), []
    with client_for(replay, sleeps) as client:
        result = client.search_studies(term="CAR-T")
    assert sleeps == [7.0]
    assert len(result.studies) == 9 and client.retries_made == 1


def test_503_twice_then_success_backs_off_exponentially_with_jitter() -> None:
    replay, sleeps = Replay([httpx.Response(503), httpx.Response(503)]), []
    with client_for(replay, sleeps) as client:
        result = client.search_studies(term="CAR-T")
    assert len(result.studies) == 9
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0  # base 1 s, half of it jitter
    assert 1.0 <= sleeps[1] <= 2.0  # doubled


def test_a_timeout_is_retried() -> None:
    replay, sleeps = Replay([httpx.ReadTimeout("timed out")]), []
    with client_for(replay, sleeps) as client:
        assert len(client.search_studies(term="CAR-T").studies) == 9
    assert len(sleeps) == 1


def test_retries_are_bounded() -> None:
    replay, sleeps = Replay([httpx.Response(503)] * 10), []
    with client_for(replay, sleeps) as client, pytest.raises(CtgovError) as err:
        client.search_studies(term="CAR-T")
    assert len(replay.requests) == 4 and len(sleeps) == 3  # 1 + max_retries
    assert "HTTP 503 after 4 attempts" in str(err.value) and f"{BASE}/studies" in str(err.value)


def test_a_long_retry_after_is_capped() -> None:
    replay, sleeps = Replay([httpx.Response(429, headers={"Retry-After": "3600"})]), []
    with client_for(replay, sleeps) as client:
        client.search_studies(term="CAR-T")
    assert sleeps == [30.0]


def test_a_bad_request_is_not_retried_and_names_the_api_message() -> None:
    bad = httpx.Response(400, text="filter.overallStatus: unknown value 'OPEN'")
    replay, sleeps = Replay([bad]), []
    with client_for(replay, sleeps) as client, pytest.raises(CtgovError) as err:
        client.search_studies(term="CAR-T")
    assert "HTTP 400: filter.overallStatus: unknown value 'OPEN'" in str(err.value)
    assert sleeps == [] and err.value.exit_code == 2


def test_a_response_that_is_not_json_is_an_error() -> None:
    maintenance = Replay([httpx.Response(200, text="<html>maintenance</html>")])
    with client_for(maintenance, []) as client, pytest.raises(CtgovError, match="not JSON"):
        client.search_studies(term="x")


def test_a_repeated_page_token_stops_the_loop() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"studies": [], "nextPageToken": "same"})

    with client_for(loop, []) as client, pytest.raises(CtgovError, match="page token repeated"):
        client.search_studies(term="x")


def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTNAV_CTGOV_URL", "https://mirror.example/api/v2/")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.copy_with(query=None)))
        return httpx.Response(200, json={"studies": []})

    with CtgovClient(transport=httpx.MockTransport(handler)) as client:
        client.search_studies(term="x")
    assert seen == ["https://mirror.example/api/v2/studies"]
    monkeypatch.delenv("ACTNAV_CTGOV_URL")
    with CtgovClient(transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == DEFAULT_BASE_URL


def test_statuses_are_normalised_and_checked() -> None:
    assert normalise_statuses(["recruiting", "not-yet-recruiting,RECRUITING"]) == (
        "RECRUITING",
        "NOT_YET_RECRUITING",
    )
    with pytest.raises(InputError) as err:
        normalise_statuses(["open"])
    assert "--status" in str(err.value)


def test_query_key_ignores_status_order() -> None:
    a = SearchQuery(term="CAR-T", status=("RECRUITING", "NOT_YET_RECRUITING"))
    b = SearchQuery(term="CAR-T", status=("NOT_YET_RECRUITING", "RECRUITING"))
    assert a.key() == b.key() != SearchQuery(term="TIL").key()


def test_retry_after_as_http_date() -> None:
    import datetime as dt

    now = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_s("Sun, 29 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_s("soon", now) is None
