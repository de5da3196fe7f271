"""Multidisciplinary review records: who may sign what, required fields, immutability, the therapy menu."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

from sqlalchemy import select
from tests.unit.web.conftest import AS_OF, WebWorld

from actnav.store.accounts import AuditEventRow
from actnav.store.db import session_scope

# Tecartus (brexucabtagene autoleucel) US label, section 1: adult patients with relapsed or refractory
# B-cell precursor acute lymphoblastic leukaemia; the ALL example (34-year-old, second relapse) meets it.
TECARTUS = "Tecartus (brexucabtagene autoleucel)"
# Amtagvi (lifileucel) US label, section 1: melanoma previously treated with a PD-1 blocking antibody
# and, if BRAF V600 positive, with a BRAF inhibitor; the melanoma example has BRAF V600E and no
# BRAF inhibitor, so lifileucel is not a therapy the team can choose from the label menu.
AMTAGVI = "Amtagvi (lifileucel)"


def _review(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "meeting_date": (AS_OF - dt.timedelta(days=1)).isoformat(),
        "decision": "more_workup",
        "reasons": "Bone marrow MRD and CD19 expression to confirm before apheresis.",
        "attendees": [{"name": "Dr A Haematologist", "role": "haematologist"}],
    }
    body.update(changes)
    return body


def _options(text: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r'<option value="([^"]+)"', text)]


def test_physician_signs_a_proceed_decision_shown_with_signer_role_and_time(web: WebWorld) -> None:
    client = web.client("doc")
    pid = web.patients["all"]
    form = client.get(f"/patients/{pid}/reviews")
    assert form.status_code == 200
    tecartus = next(o for o in _options(form.text) if o.startswith(TECARTUS))
    before = dt.datetime.now(dt.UTC)
    done = client.post(
        f"/patients/{pid}/reviews",
        data={
            "csrf_token": client.csrf,
            "meeting_date": AS_OF.isoformat(),
            "decision": "proceed",
            "therapy": tecartus,
            "reasons": "Second relapse; CD19-positive; fit for lymphodepletion.",
            "attendee_name": ["Dr A Haematologist", "B Nurse", ""],
            "attendee_role": ["haematologist", "cell therapy nurse", ""],
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = client.get(done.headers["location"])
    record = re.search(r'<article class="card review" id="review-\d+">.*?</article>', shown.text, re.S)
    assert record, "the signed record is listed"
    text = html.unescape(record[0])
    assert "Proceed with an approved therapy" in text and TECARTUS in text
    assert "Dr Pat Physician" in text and '(<span class="signed-role">physician</span>)' in text
    assert "B Nurse — cell therapy nurse" in text
    api = client.get(f"/api/patients/{pid}/reviews").json()
    newest = api[0]
    assert newest["decision"] == "proceed" and newest["therapy"] == tecartus
    assert (newest["signed_by_name"], newest["signed_role"]) == ("Dr Pat Physician", "physician")
    signed_at = dt.datetime.fromisoformat(newest["signed_at"].replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= signed_at <= dt.datetime.now(dt.UTC)
    assert newest["signed_at"][:16].replace("T", " ") in text  # the time on the page, in UTC
    assert newest["attendees"] == [
        {"name": "Dr A Haematologist", "role": "haematologist"},
        {"name": "B Nurse", "role": "cell therapy nurse"},
    ]
    assert newest["evaluation_id"] is not None


def test_coordinator_cannot_sign_a_treatment_decision_but_can_record_more_workup(web: WebWorld) -> None:
    client = web.client("coord")
    pid = web.patients["all"]
    headers = {"X-CSRF-Token": client.csrf}
    for decision in ("proceed", "proceed_trial", "not_candidate"):
        refused = client.post(
            f"/api/patients/{pid}/reviews", json=_review(decision=decision, therapy="x"), headers=headers
        )
        assert refused.status_code == 403, decision
        assert "only a physician" in refused.json()["detail"]
    page = client.post(
        f"/patients/{pid}/reviews",
        data={
            "csrf_token": client.csrf,
            "meeting_date": AS_OF.isoformat(),
            "decision": "not_candidate",
            "reasons": "x",
            "attendee_name": "C",
            "attendee_role": "coordinator",
        },
    )
    assert page.status_code == 403 and "only a physician" in html.unescape(page.text)
    for decision in ("more_workup", "defer"):
        done = client.post(f"/api/patients/{pid}/reviews", json=_review(decision=decision), headers=headers)
        assert done.status_code == 201, done.text
        assert done.json()["signed_role"] == "coordinator"
        assert done.json()["signed_by_name"] == "Casey Coordinator"
    denied = client.get("/api/audit", params={"action": "sign", "user": "coord", "per_page": 100}).json()
    assert [e["outcome"] for e in denied["events"]].count("denied") == 4


def test_reasons_are_required(web: WebWorld) -> None:
    client = web.client("doc")
    pid = web.patients["all"]
    headers = {"X-CSRF-Token": client.csrf}
    for body in (_review(reasons="   "), {k: v for k, v in _review().items() if k != "reasons"}):
        done = client.post(f"/api/patients/{pid}/reviews", json=body, headers=headers)
        assert done.status_code == 422
        assert [e["field"] for e in done.json()["errors"]] == ["reasons"]
    page = client.post(
        f"/patients/{pid}/reviews",
        data={
            "csrf_token": client.csrf,
            "meeting_date": AS_OF.isoformat(),
            "decision": "defer",
            "reasons": "",
            "attendee_name": "Dr A",
            "attendee_role": "haematologist",
        },
    )
    assert page.status_code == 422
    error = re.search(r'id="form-error">.*?</div>', page.text, re.S)
    assert error and "<strong>reasons</strong>" in error[0]
    assert 'value="Dr A"' in page.text  # what was typed is kept


def test_attendees_with_their_roles_are_required(web: WebWorld) -> None:
    client = web.client("doc")
    pid = web.patients["all"]
    headers = {"X-CSRF-Token": client.csrf}
    for attendees in ([], [{"name": "Dr A", "role": ""}]):
        done = client.post(f"/api/patients/{pid}/reviews", json=_review(attendees=attendees), headers=headers)
        assert done.status_code == 422
        assert done.json()["errors"][0]["field"].startswith("attendees")


def test_proceed_names_the_therapy_and_the_meeting_is_not_in_the_future(web: WebWorld) -> None:
    client = web.client("doc")
    pid = web.patients["all"]
    headers = {"X-CSRF-Token": client.csrf}
    no_therapy = client.post(
        f"/api/patients/{pid}/reviews", json=_review(decision="proceed"), headers=headers
    )
    assert no_therapy.status_code == 422 and no_therapy.json()["errors"][0]["field"] == "therapy"
    tomorrow = (AS_OF + dt.timedelta(days=1)).isoformat()
    future = client.post(f"/api/patients/{pid}/reviews", json=_review(meeting_date=tomorrow), headers=headers)
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "meeting_date"


def test_the_evaluation_must_be_the_same_patients(web: WebWorld) -> None:
    client = web.client("doc")
    other = client.get(f"/api/patients/{web.patients['melanoma']}/reviews")
    assert other.status_code == 200
    done = client.post(
        f"/api/patients/{web.patients['melanoma']}/reviews",
        json=_review(decision="defer"),
        headers={"X-CSRF-Token": client.csrf},
    )
    mel_evaluation = done.json()["evaluation_id"]
    wrong = client.post(
        f"/api/patients/{web.patients['all']}/reviews",
        json=_review(evaluation_id=mel_evaluation),
        headers={"X-CSRF-Token": client.csrf},
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "evaluation_id"


def test_the_menu_offers_what_the_evaluation_did_not_rule_out(web: WebWorld) -> None:
    client = web.client("doc")
    all_options = _options(client.get(f"/patients/{web.patients['all']}/reviews").text)
    assert any(o.startswith(TECARTUS) for o in all_options)
    assert any(re.match(r"NCT\d{8} — ", o) for o in all_options), "matched trials are offered"
    assert len(all_options) == len(set(all_options))
    mel_options = _options(client.get(f"/patients/{web.patients['melanoma']}/reviews").text)
    assert not any(o.startswith(AMTAGVI) for o in mel_options)
    refused = client.post(
        f"/patients/{web.patients['melanoma']}/reviews",
        data={
            "csrf_token": client.csrf,
            "meeting_date": AS_OF.isoformat(),
            "decision": "proceed",
            "therapy": f"{AMTAGVI} — Melanoma",
            "reasons": "x",
            "attendee_name": "Dr A",
            "attendee_role": "oncologist",
        },
    )
    assert refused.status_code == 422 and "<strong>therapy</strong>" in refused.text
    free_text = client.post(
        f"/patients/{web.patients['melanoma']}/reviews",
        data={
            "csrf_token": client.csrf,
            "meeting_date": AS_OF.isoformat(),
            "decision": "proceed_trial",
            "therapy": "",
            "therapy_other": "TIL trial at the partner centre",
            "reasons": "Not eligible on label before a BRAF inhibitor; trial accepts this line.",
            "attendee_name": "Dr A",
            "attendee_role": "oncologist",
        },
        follow_redirects=False,
    )
    assert free_text.status_code == 303


def test_signed_records_cannot_be_changed(web: WebWorld) -> None:
    client = web.client("doc")
    pid = web.patients["all"]
    headers = {"X-CSRF-Token": client.csrf}
    made = client.post(f"/api/patients/{pid}/reviews", json=_review(decision="defer"), headers=headers)
    rid = made.json()["id"]
    assert client.put(f"/api/patients/{pid}/reviews", json=_review(), headers=headers).status_code == 405
    assert client.delete(f"/api/patients/{pid}/reviews", headers=headers).status_code == 405
    assert client.patch(f"/api/patients/{pid}/reviews/{rid}", json={}, headers=headers).status_code == 404


def test_reviews_are_for_the_care_team_only(web: WebWorld) -> None:
    client = web.client("pat-all")
    pid = web.patients["all"]
    assert client.get(f"/patients/{pid}/reviews").status_code == 403
    assert client.get(f"/api/patients/{pid}/reviews").status_code == 403
    done = client.post(f"/api/patients/{pid}/reviews", json=_review(), headers={"X-CSRF-Token": client.csrf})
    assert done.status_code == 403


def test_signing_needs_the_csrf_token(web: WebWorld) -> None:
    client = web.client("doc")
    done = client.post(f"/api/patients/{web.patients['all']}/reviews", json=_review())
    assert done.status_code == 403


# --- QA: implausible dates, the therapy menu, signing against the evaluation's verdict ------------


def test_a_meeting_date_before_2000_is_refused(web: WebWorld) -> None:
    client = web.client("doc")
    pid = web.patients["all"]
    headers = {"X-CSRF-Token": client.csrf}
    year_one = client.post(
        f"/api/patients/{pid}/reviews", json=_review(meeting_date="0001-01-01"), headers=headers
    )
    assert year_one.status_code == 422
    assert [e["field"] for e in year_one.json()["errors"]] == ["meeting_date"]
    page = client.post(
        f"/patients/{pid}/reviews",
        data={
            "csrf_token": client.csrf,
            "meeting_date": "1999-12-31",
            "decision": "defer",
            "reasons": "x",
            "attendee_name": "Dr A",
            "attendee_role": "oncologist",
        },
    )
    assert page.status_code == 422 and "<strong>meeting_date</strong>" in page.text
    ok = client.post(f"/api/patients/{pid}/reviews", json=_review(meeting_date="2000-01-01"), headers=headers)
    assert ok.status_code == 201


def test_the_melanoma_menu_offers_no_study_of_another_cancer(web: WebWorld) -> None:
    # The melanoma example (BRAF V600E, no BRAF inhibitor) is not eligible for Amtagvi (label
    # section 1) and has no approved option; studies for lymphoma, HER2 brain tumours or
    # neuroblastoma share only the modality and are not offered from the menu.
    client = web.client("doc")
    text = client.get(f"/patients/{web.patients['melanoma']}/reviews").text
    options = _options(text)
    for other in ("lymphoma", "neuroblastoma", "HER2", "glioma", "leukemia", "myeloma"):
        assert not any(other.lower() in o.lower() for o in options), (other, options)
    assert not any(o.startswith(AMTAGVI) for o in options)


def _sign_amtagvi(client: Any, pid: str, **extra: str) -> Any:
    return client.post(
        f"/patients/{pid}/reviews",
        data={
            "csrf_token": client.csrf,
            "meeting_date": AS_OF.isoformat(),
            "decision": "proceed",
            "therapy": "",
            "therapy_other": f"{AMTAGVI} after team discussion",
            "reasons": "Progressing on anti-PD-1; BRAF inhibitor declined by the patient.",
            "attendee_name": "Dr A",
            "attendee_role": "oncologist",
            **extra,
        },
        follow_redirects=False,
    )


def test_proceeding_against_a_not_eligible_verdict_needs_confirmation_and_a_reason(web: WebWorld) -> None:
    client = web.client("doc")
    pid = web.patients["melanoma"]
    form = client.get(f"/patients/{pid}/reviews").text
    assert 'id="override-warning"' in form and AMTAGVI in html.unescape(form)
    unconfirmed = _sign_amtagvi(client, pid)
    assert unconfirmed.status_code == 422
    assert "<strong>override_confirmed</strong>" in unconfirmed.text
    no_reason = _sign_amtagvi(client, pid, override_confirmed="yes")
    assert no_reason.status_code == 422 and "<strong>override_reason</strong>" in no_reason.text
    done = _sign_amtagvi(
        client, pid, override_confirmed="yes", override_reason="Patient declines BRAF-targeted therapy."
    )
    assert done.status_code == 303, done.text
    shown = html.unescape(client.get(done.headers["location"]).text)
    assert "signed against the evaluation's verdict: not eligible" in shown
    assert "Patient declines BRAF-targeted therapy." in shown
    records = client.get(f"/api/patients/{pid}/reviews").json()
    assert records[0]["against_verdict"] == [AMTAGVI]
    with session_scope(web.app.state.engine) as session:
        events = session.scalars(
            select(AuditEventRow).where(
                AuditEventRow.resource_type == "review", AuditEventRow.action == "override"
            )
        ).all()
        details = [e.detail or "" for e in events]
    assert details and all("lifileucel" in d for d in details)
    assert not any("declines" in d for d in details)  # free text never reaches the audit log
