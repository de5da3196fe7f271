"""Trial search and trial detail pages and API, on the trial records bundled with actnav.

Expected values are read from the bundled record file itself
(``src/actnav/data/trials/bundled/act-trials.ndjson.gz``: real ClinicalTrials.gov records), not
from actnav's output.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import select
from tests.unit.web.conftest import PASSWORD, ROOT, WebWorld

from actnav.store.accounts import AuditEventRow, Role, create_user
from actnav.store.db import session_scope

BUNDLED = ROOT / "src" / "actnav" / "data" / "trials" / "bundled" / "act-trials.ndjson.gz"
ZUMA7 = "NCT03391466"  # axicabtagene ciloleucel vs standard of care in second-line LBCL (ZUMA-7)
CD22 = "NCT02315612"  # anti-CD22 CAR-T cells in children and young adults with B-cell malignancies


@cache
def raw_record(nct_id: str) -> dict[str, Any]:
    """The bundled record as stored (the flattened ClinicalTrials.gov shape), read directly."""
    with gzip.open(BUNDLED, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("nctid") == nct_id:
                return record  # type: ignore[no-any-return]
    raise AssertionError(f"{nct_id} is not in {BUNDLED}")


def _first_criterion_line(record: dict[str, Any]) -> str:
    lines = [line.strip() for line in record["raw_criteria"].splitlines()]
    return next(line for line in lines if len(line) > 40 and not line.lower().startswith("inclusion"))


def test_detail_page_shows_the_record_its_original_text_and_parsed_criteria(web: WebWorld) -> None:
    record = raw_record(ZUMA7)
    client = web.client("doc")
    page = client.get(f"/trials/{ZUMA7}")
    assert page.status_code == 200
    html = page.text
    assert f'<span id="trial-nct-id">{ZUMA7}</span>' in html
    assert f'<span id="trial-title">{escape(record["title"])}</span>' in html
    assert "Axicabtagene Ciloleucel" in record["title"]
    assert f'<dd id="trial-status">{record["overall_status"]}</dd>' in html
    assert f"https://clinicaltrials.gov/study/{ZUMA7}" in html
    # The original eligibility text, as the record gives it, beside the parsed criteria.
    assert str(escape(_first_criterion_line(record))) in html
    assert 'id="original-eligibility"' in html and 'id="parsed-criteria"' in html
    assert html.count('class="criterion"') >= 5
    assert 'class="leaf"' in html  # at least one typed leaf: fact, operator, value
    assert "needs review" in html


def test_unknown_or_malformed_nct_ids_answer_404_saying_why(web: WebWorld) -> None:
    client = web.client("doc")
    missing = client.get("/trials/NCT99999999")
    assert missing.status_code == 404
    assert "NCT99999999 is not in the trial records bundled with actnav" in missing.text
    malformed = client.get("/trials/NCT123")
    assert malformed.status_code == 404
    assert "is not a ClinicalTrials.gov id" in malformed.text
    api = client.get("/api/trials/NCT99999999")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"


def test_search_finds_trials_by_title_words_and_filters(web: WebWorld) -> None:
    client = web.client("coord")
    record = raw_record(ZUMA7)
    words = " ".join(record["title"].split()[3:6])  # "Axicabtagene Ciloleucel Compared"
    found = client.get("/trials", params={"q": words.lower()})
    assert found.status_code == 200
    assert f'href="/trials/{ZUMA7}"' in found.text
    api = client.get("/api/trials", params={"q": words, "status": record["overall_status"]}).json()
    assert api["source"] == "bundled"
    assert ZUMA7 in [t["nct_id"] for t in api["items"]]
    other = "RECRUITING" if record["overall_status"] != "RECRUITING" else "COMPLETED"
    none = client.get("/api/trials", params={"q": words, "status": other}).json()
    assert ZUMA7 not in [t["nct_id"] for t in none["items"]]


def test_search_pages_through_every_bundled_record(web: WebWorld) -> None:
    with gzip.open(BUNDLED, "rt", encoding="utf-8") as fh:
        count = sum(1 for line in fh if line.strip())
    client = web.client("coord")
    seen: list[str] = []
    offset = 0
    while True:
        body = client.get("/api/trials", params={"limit": 25, "offset": offset}).json()
        assert body["total"] == count
        seen += [t["nct_id"] for t in body["items"]]
        offset += 25
        if offset >= body["total"]:
            break
    assert len(seen) == len(set(seen)) == count
    page2 = client.get("/trials", params={"page": 2})
    assert page2.status_code == 200 and "page 2 of" in page2.text


def test_api_detail_has_the_parsed_criteria_and_the_classification(web: WebWorld) -> None:
    record = raw_record(ZUMA7)
    client = web.client("coord")
    body = client.get(f"/api/trials/{ZUMA7}").json()
    assert body["nct_id"] == ZUMA7
    assert body["title"] == record["title"]
    assert body["overall_status"] == record["overall_status"]
    assert body["phases"] == record["phases"]
    assert _first_criterion_line(record) in body["eligibility_text"]
    assert body["criteria"] and sum(body["counts"].values()) == len(body["criteria"])
    leaves = [leaf for c in body["criteria"] for leaf in c["leaves"] if not leaf["needs_review"]]
    assert leaves and all(leaf["fact"] and leaf["op"] for leaf in leaves)
    assert body["classification"]["is_act"] is True  # a CAR-T trial


@pytest.mark.parametrize("bad", ["NCT123", "abc", "NCT0339146X"])
def test_api_detail_refuses_ids_that_are_not_nct_ids(web: WebWorld, bad: str) -> None:
    assert web.client("coord").get(f"/api/trials/{bad}").status_code == 404


def test_a_patient_may_read_trials_but_not_a_trial_evaluated_for_a_patient(web: WebWorld) -> None:
    patient = web.client("pat-all")
    assert patient.get("/trials").status_code == 200
    assert patient.get(f"/trials/{ZUMA7}").status_code == 200
    assert patient.get(f"/patients/{web.patients['all']}/trials/{CD22}").status_code == 403


def test_a_trial_evaluated_for_a_patient(web: WebWorld) -> None:
    client = web.client("doc")
    public_id = web.patients["all"]
    page = client.get(f"/patients/{public_id}/trials/{CD22}")
    assert page.status_code == 200
    assert 'id="trial-verdict"' in page.text and 'id="patient-criteria"' in page.text
    assert str(escape(raw_record(CD22)["title"])) in page.text
    with session_scope(web.app.state.engine) as session:
        event = session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.resource_type == "trial_match")
            .order_by(AuditEventRow.id.desc())
        ).first()
        assert event is not None and event.resource_id == CD22 and event.patient_id is not None
    assert client.get(f"/patients/{public_id}/trials/NCT99999999").status_code == 404


def test_the_trial_store_is_used_when_it_holds_trials(tmp_path: Path) -> None:
    from actnav.store.trials import import_records
    from actnav.trials.sources import iter_bundled_records
    from actnav.web.app import create_app

    app = create_app(f"sqlite:///{tmp_path / 'store.db'}")
    one = next(r.record for r in iter_bundled_records() if r.record is not None and r.record.nct_id == ZUMA7)
    import_records(app.state.engine, [one])
    with session_scope(app.state.engine) as session:
        create_user(session, username="coord", password=PASSWORD, role=Role.COORDINATOR, display_name="C")
    world = WebWorld(app=app)
    try:
        client = world.client("coord")
        body = client.get("/api/trials").json()
        assert body["source"] == "database"
        assert [t["nct_id"] for t in body["items"]] == [ZUMA7]
        assert client.get(f"/trials/{ZUMA7}").status_code == 200
        absent = client.get(f"/trials/{CD22}")  # bundled, but not in the store
        assert absent.status_code == 404 and "not in the trial database" in absent.text
    finally:
        for c in world.clients:
            c.close()
