"""Bedside toxicity pages and API: enter a time point, read the ASTCT grade, bad input, access.

Expected grades come from the ASTCT 2019 consensus (Lee DW et al., Biol Blood Marrow Transplant
2019;25:625-638), Table 6 (CRS) and Table 8 (ICANS), as given in the actnav clinical reference
sections 2.1 and 2.3 (../shared/reference/clinical-reference.md);
:func:`test_expected_grades_are_those_of_the_reference_tables` reads them from there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import require_shared
from tests.unit.web.conftest import SignedIn, WebWorld

from actnav.store.accounts import AuditEventRow
from actnav.store.db import session_scope

# ASTCT CRS grade 3: fever with hypotension requiring one vasopressor, with or without vasopressin
# (and/or high-flow oxygen, facemask, non-rebreather or Venturi mask).
CRS_GRADE_FEVER_ONE_VASOPRESSOR = 3
# ASTCT ICANS grade 2: ICE score 3-6.
ICANS_GRADE_ICE_3_TO_6 = 2

HEADER = {"weight_kg": "72", "product": "tisagenlecleucel", "infusion_date": "2026-11-20", "age_years": "34"}
ICE_6 = {
    "ice_orientation": "3",
    "ice_naming": "2",
    "ice_commands": "1",
    "ice_writing": "0",
    "ice_attention": "0",
}


def _page(client: SignedIn, public_id: str) -> str:
    page = client.get(f"/patients/{public_id}/toxicity")
    assert page.status_code == 200, page.text
    return page.text


def _based_on(html: str) -> str:
    found = re.search(r'name="based_on" value="([^"]*)"', html)
    assert found, "the entry form has no based_on field"
    return found[1]


def _post(client: SignedIn, public_id: str, fields: dict[str, Any], *, based_on: str | None = None) -> Any:
    if based_on is None:
        based_on = _based_on(_page(client, public_id))
    data = {"csrf_token": client.csrf, "based_on": based_on, **fields}
    return client.post(f"/patients/{public_id}/toxicity/assessments", data=data, follow_redirects=False)


def _grade_on_page(html: str, syndrome: str) -> str:
    found = re.search(rf'id="current-{syndrome}-grade"[^>]*>([^<]*)<', html)
    assert found, f"no current {syndrome} grade on the page"
    return found[1]


def _stored_time_points(client: SignedIn, public_id: str) -> int:
    body = client.get(f"/api/patients/{public_id}/toxicity").json()
    return 0 if body["course"] is None else len(body["course"]["assessments"])


def test_fever_39_with_one_vasopressor_and_no_oxygen_is_crs_grade_3(web: WebWorld) -> None:
    client = web.client("doc")
    public_id = web.patients["all"]
    done = _post(
        client,
        public_id,
        {
            **HEADER,
            "time": "2026-11-22T08:00",
            "temp_c": "39.0",
            "hypotension": "yes",
            "vasopressors": ["norepinephrine"],
            "oxygen_device": "none",
        },
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(f"/patients/{public_id}/toxicity")
    html = _page(client, public_id)
    assert _grade_on_page(html, "crs") == f"Grade {CRS_GRADE_FEVER_ONE_VASOPRESSOR}"
    assert "one vasopressor" in html  # the reason names the finding that set the grade
    assert 'id="guidance-crs"' in html  # the management for the grade is shown
    # The product's monitoring plan (Kymriah label: stay near the centre).
    assert "Kymriah" in html and "Stay near the treatment centre" in html


def test_ice_6_with_no_other_finding_is_icans_grade_2(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["all"]
    done = _post(client, public_id, {"time": "2026-11-23T08:00", "temp_c": "37.2", **ICE_6})
    assert done.status_code == 303, done.text
    html = _page(client, public_id)
    assert _grade_on_page(html, "icans") == f"Grade {ICANS_GRADE_ICE_3_TO_6}"
    # The course table keeps the earlier time point.
    assert html.count('<th scope="row">2026-11-2') >= 2
    api = client.get(f"/api/patients/{public_id}/toxicity").json()
    assert api["current"]["icans_grade"] == ICANS_GRADE_ICE_3_TO_6
    assert api["report"]["max_grades"]["crs"] == CRS_GRADE_FEVER_ONE_VASOPRESSOR


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"temp_c": "60"}, "temp_c", "not a plausible body temperature"),
        (
            {"oxygen_device": "low_flow_nasal_cannula", "oxygen_flow_l_min": "-2"},
            "oxygen_flow_l_min",
            "oxygen flow",
        ),
        ({"temp_c": "hot"}, "temp_c", "not a number"),
        ({"ice_orientation": "4"}, "ice_naming", "required"),
        ({"vasopressors": ["adrenalin-ish"]}, "vasopressors", "unknown vasopressor"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    web: WebWorld, fields: dict[str, Any], field: str, words: str
) -> None:
    client = web.client("coord")
    public_id = web.patients["melanoma"]
    before = _stored_time_points(client, public_id)
    done = _post(client, public_id, {**HEADER, "time": "2026-11-24T08:00", **fields})
    assert done.status_code == 422
    problem = re.search(rf'<span class="field-error" id="e-{field}">([^<]*)<', done.text)
    assert problem, f"no error shown beside {field}"
    assert words in problem[1]
    assert f'aria-describedby="e-{field}"' in done.text or f'id="f-{field}"' in done.text
    assert _stored_time_points(client, public_id) == before


def test_every_problem_of_a_form_is_shown_at_once(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["melanoma"]
    fields = {"temp_c": "60", "oxygen_device": "facemask", "oxygen_flow_l_min": "-1", "capd_score": "x"}
    done = _post(client, public_id, {**HEADER, "time": "2026-11-24T09:00", **fields})
    assert done.status_code == 422
    for field in ("temp_c", "oxygen_flow_l_min", "capd_score"):
        assert f'id="e-{field}"' in done.text
    assert 'value="60"' in done.text  # the form keeps what was typed


def test_the_first_time_point_needs_the_weight(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["melanoma"]
    if _stored_time_points(client, public_id):
        pytest.skip("a course was already recorded for this patient")
    done = _post(client, public_id, {"weight_kg": "", "time": "2026-11-24T08:00", "temp_c": "38.4"})
    assert done.status_code == 422
    assert 'id="e-weight_kg"' in done.text
    assert _stored_time_points(client, public_id) == 0


def test_unable_to_do_the_ice_because_unarousable_is_icans_grade_4(web: WebWorld) -> None:
    # ASTCT ICANS: ICE 0 "patient unarousable and unable to perform ICE" is grade 4.
    client = web.client("coord")
    public_id = web.patients["all"]
    fields = {
        "time": "2026-11-24T20:00",
        "temp_c": "37.5",
        "ice_unable": "yes",
        "consciousness": "unarousable",
    }
    assert _post(client, public_id, fields).status_code == 303
    assert _grade_on_page(_page(client, public_id), "icans") == "Grade 4"


def test_a_form_opened_before_another_entry_is_refused(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["all"]
    stale = _based_on(_page(client, public_id))
    assert (
        _post(client, public_id, {"time": "2026-11-25T08:00", "temp_c": "37.0"}, based_on=stale).status_code
        == 303
    )
    before = _stored_time_points(client, public_id)
    again = _post(client, public_id, {"time": "2026-11-25T08:00", "temp_c": "37.0"}, based_on=stale)
    assert again.status_code == 422
    assert 'id="e-based_on"' in again.text
    assert _stored_time_points(client, public_id) == before


def test_the_form_needs_its_csrf_token(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["all"]
    refused = client.post(
        f"/patients/{public_id}/toxicity/assessments", data={"time": "2026-11-26T08:00", "temp_c": "37.0"}
    )
    assert refused.status_code == 403


def test_the_chart_is_an_svg_of_the_course(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["all"]
    assert _stored_time_points(client, public_id) >= 1
    chart = client.get(f"/patients/{public_id}/toxicity/chart.svg")
    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in chart.content and b"CRS grade" in chart.content
    assert f'src="/patients/{public_id}/toxicity/chart.svg"' in _page(client, public_id)


def test_a_patient_account_cannot_open_the_toxicity_pages(web: WebWorld) -> None:
    patient = web.client("pat-all")
    own = web.patients["all"]
    assert patient.get(f"/patients/{own}/toxicity").status_code == 403
    assert patient.get(f"/patients/{own}/toxicity/chart.svg").status_code == 403
    assert patient.get(f"/api/patients/{own}/toxicity").status_code == 403
    posted = patient.post(
        f"/patients/{own}/toxicity/assessments",
        data={"csrf_token": patient.csrf, "time": "2026-11-26T08:00", "temp_c": "39.5"},
    )
    assert posted.status_code == 403
    api = patient.post(
        f"/api/patients/{own}/toxicity/assessments",
        json={"assessment": {"time": "2026-11-26T08:00:00", "temp_c": 39.5}},
        headers={"X-CSRF-Token": patient.csrf},
    )
    assert api.status_code == 403


def test_api_adds_a_time_point_and_grades_it(web: WebWorld) -> None:
    client = web.client("doc")
    public_id = web.patients["melanoma"]
    headers = {"X-CSRF-Token": client.csrf}
    body = {
        "assessment": {"time": "2026-11-27T08:00:00", "temp_c": 38.6, "oxygen_device": "facemask"},
        "course": {"weight_kg": 80, "product": "Amtagvi", "infusion_date": "2026-11-25"},
    }
    done = client.post(f"/api/patients/{public_id}/toxicity/assessments", json=body, headers=headers)
    assert done.status_code == 201, done.text
    out = done.json()
    # ASTCT CRS grade 3: fever with hypoxia needing a facemask.
    assert out["current"]["crs_grade"] == 3
    assert out["course"]["product"] == "lifileucel"  # Amtagvi is lifileucel's brand
    assert out["report"]["assessments"][-1]["day"] == 2


def test_api_bad_input_names_the_field_and_stores_nothing(web: WebWorld) -> None:
    client = web.client("doc")
    public_id = web.patients["melanoma"]
    headers = {"X-CSRF-Token": client.csrf}
    before = _stored_time_points(client, public_id)
    hot = client.post(
        f"/api/patients/{public_id}/toxicity/assessments",
        json={"assessment": {"time": "2026-11-28T08:00:00", "temp_c": 60}, "course": {"weight_kg": 80}},
        headers=headers,
    )
    assert hot.status_code == 422
    assert hot.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in hot.json()["errors"]] == ["assessment.temp_c"]
    ancient = client.post(
        f"/api/patients/{public_id}/toxicity/assessments",
        json={"assessment": {"time": "1850-01-01T08:00:00", "temp_c": 37.0}, "course": {"weight_kg": 80}},
        headers=headers,
    )
    assert ancient.status_code == 422
    assert ancient.json()["errors"][0]["field"] == "assessment.time"
    assert _stored_time_points(client, public_id) == before


def test_views_and_entries_are_audited_without_names(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["all"]
    _page(client, public_id)
    with session_scope(web.app.state.engine) as session:
        events = session.scalars(
            select(AuditEventRow).where(
                AuditEventRow.resource_type.in_(["toxicity_course", "toxicity_assessment"])
            )
        ).all()
        actions = {(e.action, e.resource_type) for e in events}
        details = " ".join(e.detail or "" for e in events)
        assert all(e.patient_id is not None for e in events)
    assert ("view", "toxicity_course") in actions and ("create", "toxicity_assessment") in actions
    assert "example" not in details  # the patients' labels never reach the audit log


def test_expected_grades_are_those_of_the_reference_tables() -> None:
    text = require_shared("reference", "clinical-reference.md").read_text(encoding="utf-8")
    crs = _table_after(text, "### 2.1 CRS grade")
    hypotension = next(row for row in crs if "hypotension" in row[0])
    assert "**one** vasopressor" in hypotension[CRS_GRADE_FEVER_ONE_VASOPRESSOR]
    icans = _table_after(text, "### 2.3 ICANS grade")
    ice = next(row for row in icans if row[0].startswith("ICE score"))
    assert ice[ICANS_GRADE_ICE_3_TO_6].replace("\u2013", "-") == "3-6"


def _table_after(text: str, heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after ``heading`` (cells stripped, header row included)."""
    rows: list[list[str]] = []
    for line in text.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows


# --- dates against the app's clock, and ICE items named in the errors (QA) ------------------------


def test_an_ice_item_out_of_range_is_named_with_its_range(web: WebWorld) -> None:
    # ASTCT ICE: orientation is scored 0-4 (year, month, city, hospital: 1 point each).
    client = web.client("coord")
    public_id = web.patients["melanoma"]
    before = _stored_time_points(client, public_id)
    done = _post(client, public_id, {**HEADER, "time": "2026-11-24T10:00", "ice_orientation": "99"})
    assert done.status_code == 422
    summary = re.search(r'<div class="error" role="alert" id="form-errors">(.*?)</div>', done.text, re.S)
    assert summary
    items = re.findall(r"<li>(.*?)</li>", summary[1], re.S)
    texts = [re.sub(r"<[^>]+>", "", item).strip() for item in items]
    assert any(t.startswith("ICE orientation") and "0 to 4" in t for t in texts), texts
    for item in ("naming", "commands", "writing", "attention"):
        assert any(t.startswith(f"ICE {item}") for t in texts), texts
    assert not any(t.lower().startswith("this field is required") for t in texts)
    assert len(set(texts)) == len(texts), "a problem is listed twice"
    assert _stored_time_points(client, public_id) == before


# The app's clock in these tests is 2026-11-29 (tests/unit/web/conftest.py AS_OF).


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"time": "2026-11-30T00:00"}, "time"),
        ({"time": "2031-01-01T08:00"}, "time"),
        ({"infusion_date": "2026-12-01", "time": "2026-11-29T08:00"}, "infusion_date"),
    ],
)
def test_a_date_in_the_future_is_refused(web: WebWorld, fields: dict[str, Any], field: str) -> None:
    client = web.client("coord")
    public_id = web.patients["melanoma"]
    before = _stored_time_points(client, public_id)
    done = _post(client, public_id, {**HEADER, "temp_c": "37.0", **fields})
    assert done.status_code == 422
    problem = re.search(rf'<span class="field-error" id="e-{field}">([^<]*)<', done.text)
    assert problem, f"no error beside {field}"
    assert "in the future" in problem[1]
    assert _stored_time_points(client, public_id) == before


def test_the_rest_of_today_is_allowed(web: WebWorld) -> None:
    client = web.client("coord")
    public_id = web.patients["melanoma"]
    done = _post(client, public_id, {**HEADER, "time": "2026-11-29T23:30", "temp_c": "37.0"})
    assert done.status_code == 303, done.text


def test_api_refuses_a_future_time_and_infusion_date(web: WebWorld) -> None:
    client = web.client("doc")
    public_id = web.patients["melanoma"]
    headers = {"X-CSRF-Token": client.csrf}
    url = f"/api/patients/{public_id}/toxicity/assessments"
    late = client.post(
        url,
        json={"assessment": {"time": "2026-12-02T08:00:00", "temp_c": 37.0}, "course": {"weight_kg": 80}},
        headers=headers,
    )
    assert late.status_code == 422
    assert [e["field"] for e in late.json()["errors"]] == ["assessment.time"]
    infused = client.post(
        url,
        json={
            "assessment": {"time": "2026-11-28T08:00:00", "temp_c": 37.0},
            "course": {"weight_kg": 80, "infusion_date": "2026-12-05"},
        },
        headers=headers,
    )
    assert infused.status_code == 422
    assert [e["field"] for e in infused.json()["errors"]] == ["course.infusion_date"]


def test_a_time_point_before_the_infusion_is_shown_as_baseline(web: WebWorld) -> None:
    # A fever 19 days before the infusion: accepted, and the page does not date a CRS onset on
    # "day -19" (ASTCT grades CRS after immune effector cell therapy, from day 0).
    client = web.client("coord")
    public_id = web.patients["all"]
    done = _post(client, public_id, {**HEADER, "time": "2026-11-01T08:00", "temp_c": "38.5"})
    assert done.status_code == 303, done.text
    html = _page(client, public_id)
    assert "before infusion (baseline)" in html
    assert not re.search(r"onset day -\d+", html)
    assert not re.search(r"on day -\d+", html)
