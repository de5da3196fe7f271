"""The key-facts intake: the form on /patients/new and POST /api/patients/keyfacts.

The verdicts checked are the labels' own words: Tecartus (brexucabtagene autoleucel) for adults
with relapsed or refractory B-cell precursor ALL; Kymriah (tisagenlecleucel) only up to 25 years.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.unit.web.conftest import SignedIn, WebWorld

# A 34-year-old woman with B-ALL in second relapse after two lines, as a care team enters it.
ALL_FORM = {
    "label": "key facts ALL",
    "birth_date": "1992-06-14",
    "sex": "female",
    "diagnosis": "b_all",
    "diagnosis_date": "2023-02-06",
    "status_1": "relapse",
    "status_1_date": "2025-03-03",
    "status_2": "complete_remission",
    "status_2_date": "2025-04-22",
    "status_3": "relapse",
    "status_3_date": "2026-10-26",
    "therapy_1_name": "hyper-CVAD",
    "therapy_1_start": "2023-02-13",
    "therapy_1_end": "2023-09-18",
    "therapy_1_line": "1",
    "therapy_2_name": "blinatumomab",
    "therapy_2_start": "2025-03-17",
    "therapy_2_end": "2025-07-25",
    "therapy_2_line": "2",
    "ecog": "1",
    "ecog_date": "2026-11-20",
    "labs_date": "2026-11-20",
    "platelets_value": "58",
    "platelets_unit": "10*9/L",
    "anc_value": "800",
    "anc_unit": "/uL",
    "alt_value": "31",
    "alt_unit": "U/L",
    "alt_uln": "40",
    "cns_involvement": "no",
    "cns_date": "2026-10-26",
}


def _patient_count(client: SignedIn) -> int:
    listed = client.get("/api/patients")
    assert listed.status_code == 200
    return len(listed.json())


def _post_form(client: SignedIn, fields: dict[str, str]) -> Any:
    return client.post("/patients/form", data={"csrf_token": client.csrf, **fields}, follow_redirects=False)


def test_new_patient_page_offers_the_upload_and_the_key_facts_form(web: WebWorld) -> None:
    page = web.client("coord").get("/patients/new")
    assert page.status_code == 200
    assert 'action="/patients"' in page.text and 'action="/patients/form"' in page.text
    for legend in ("Person", "Diagnosis and disease status", "Prior therapies", "Stem cell transplant",
                   "Performance status", "Labs and measurements", "Biomarkers", "Other"):  # fmt: skip
        assert f"<legend>{legend}</legend>" in page.text
    for name in ("birth_date", "diagnosis", "therapy_6_name", "platelets_value", "hla_a_1", "braf_v600"):
        assert re.search(rf'<label for="f-{name}">', page.text), name
    assert '<option value="b_all" >B-cell acute lymphoblastic leukaemia</option>' in page.text


def test_the_form_creates_a_patient_and_shows_the_evaluation(web: WebWorld) -> None:
    client = web.client("coord")
    done = _post_form(client, ALL_FORM)
    assert done.status_code == 303, done.text
    location = done.headers["location"]
    assert re.fullmatch(r"/patients/[A-Za-z0-9_-]+", location)

    page = client.get(location)
    assert page.status_code == 200
    assert "key facts ALL" in page.text and "Tecartus" in page.text

    public_id = location.rsplit("/", 1)[1]
    assert client.get(f"/api/patients/{public_id}").json()["source"] == "form"
    evaluation = client.get(f"/api/patients/{public_id}/evaluation").json()
    verdicts = {(p["id"], i["id"]): i["verdict"] for p in evaluation["products"] for i in p["indications"]}
    assert verdicts[("brexucabtagene_autoleucel", "b-all-adult")] == "eligible"
    assert verdicts[("tisagenlecleucel", "b-all-up-to-25")] == "not_eligible"


@pytest.mark.parametrize("birth_date", ["2027-03-01", "1800-01-01"])
def test_a_bad_birth_date_and_negative_platelets_answer_422_and_store_nothing(
    web: WebWorld, birth_date: str
) -> None:
    client = web.client("coord")
    before = _patient_count(client)
    refused = _post_form(client, {**ALL_FORM, "birth_date": birth_date, "platelets_value": "-5"})
    assert refused.status_code == 422
    summary = refused.text.split('id="keyfacts-errors"', 1)[1].split("</div>", 1)[0]
    assert '<a href="#f-birth_date">Date of birth</a>' in summary
    assert '<a href="#f-platelets_value">Platelet count</a>' in summary
    assert "plausible range for platelets" in summary
    # The entered values come back, marked invalid.
    assert re.search(rf'name="birth_date" type="date" value="{birth_date}" aria-invalid="true"', refused.text)
    assert re.search(r'name="platelets_value" type="text" value="-5" aria-invalid="true"', refused.text)
    assert 'value="hyper-CVAD"' in refused.text
    assert _patient_count(client) == before


def test_the_form_needs_the_csrf_token_and_a_care_team_account(web: WebWorld) -> None:
    coord = web.client("coord")
    assert coord.post("/patients/form", data=ALL_FORM, follow_redirects=False).status_code == 403
    patient = web.client("pat-all")
    refused = patient.post(
        "/patients/form", data={"csrf_token": patient.csrf, **ALL_FORM}, follow_redirects=False
    )
    assert refused.status_code == 403


def test_the_api_registers_key_facts_and_names_bad_fields(web: WebWorld) -> None:
    client = web.client("doc")
    headers = {"X-CSRF-Token": client.csrf}
    body = {
        "birth_date": "1992-06-14",
        "sex": "female",
        "diagnosis": "b_all",
        "disease_course": [{"status": "refractory", "date": "2026-10-01"}],
    }
    made = client.post(
        "/api/patients/keyfacts", json=body, headers=headers, params={"label": "api key facts"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["source"] == "form" and made.json()["label"] == "api key facts"

    before = _patient_count(client)
    platelets = client.post(
        "/api/patients/keyfacts",
        json={**body, "labs": {"platelets": {"value": -5, "date": "2026-11-20"}}},
        headers=headers,
    )
    assert platelets.status_code == 422
    assert platelets.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in platelets.json()["errors"]] == ["labs.platelets"]
    for birth_date in ("2027-03-01", "1800-01-01"):
        refused = client.post(
            "/api/patients/keyfacts", json={**body, "birth_date": birth_date}, headers=headers
        )
        assert refused.status_code == 422
        assert [e["field"] for e in refused.json()["errors"]] == ["birth_date"]
    assert _patient_count(client) == before
