"""The audit log: every view or change of patient data is recorded (who, what, when), without names."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from tests.unit.web.conftest import ALL_BUNDLE, AS_OF, MELANOMA_BUNDLE, WebWorld

from actnav.store.accounts import AuditEventRow
from actnav.store.db import session_scope


def _events(web: WebWorld) -> list[AuditEventRow]:
    with session_scope(web.app.state.engine) as session:
        rows = list(session.scalars(select(AuditEventRow).order_by(AuditEventRow.id)))
        session.expunge_all()
    return rows


def test_every_view_of_a_patient_page_creates_an_event(web: WebWorld) -> None:
    coord = web.client("coord")
    all_id, mel_id = web.patients["all"], web.patients["melanoma"]
    pages = [
        ("pat-mel", f"/patients/{mel_id}/consults", mel_id, "consults"),
        ("doc", f"/patients/{all_id}/reviews", all_id, "reviews"),
        ("doc", f"/patients/{all_id}", all_id, "evaluation"),
        ("coord", f"/api/patients/{mel_id}/consults", mel_id, "consults"),
        ("doc", f"/api/patients/{all_id}/reviews", all_id, "reviews"),
    ]
    for username, url, public_id, resource in pages:
        client = web.client(username)
        before = dt.datetime.now(dt.UTC)
        assert client.get(url).status_code == 200, url
        found = coord.get("/api/audit", params={"patient": public_id, "user": username, "action": "view"})
        newest = found.json()["events"][0]
        assert newest["username"] == username and newest["action"] == "view", url
        assert newest["resource_type"] == resource and newest["patient"] == public_id
        at = dt.datetime.fromisoformat(newest["at"].replace("Z", "+00:00"))
        assert before - dt.timedelta(seconds=1) <= at <= dt.datetime.now(dt.UTC)


def test_changes_are_audited_with_the_action(web: WebWorld) -> None:
    patient, coord = web.client("pat-mel"), web.client("coord")
    mel_id = web.patients["melanoma"]
    made = patient.post(
        f"/api/patients/{mel_id}/consults",
        json={"topic": "audit me", "channel": "message", "preferred_time": "any"},
        headers={"X-CSRF-Token": patient.csrf},
    ).json()
    coord.patch(
        f"/api/consults/{made['id']}",
        json={"action": "decline", "reply": "Please call the clinic."},
        headers={"X-CSRF-Token": coord.csrf},
    )
    events = coord.get("/api/audit", params={"patient": mel_id, "per_page": 10}).json()["events"]
    mine = [(e["username"], e["action"]) for e in events if e["resource_id"] == str(made["id"])]
    assert ("pat-mel", "create") in mine and ("coord", "decline") in mine


def test_events_hold_no_patient_label_name_or_free_text(web: WebWorld) -> None:
    doc, patient = web.client("doc"), web.client("pat-all")
    all_id = web.patients["all"]
    secret_reason, secret_topic = "Reason-text-7Q2 must stay out of logs", "Topic-text-9Z4 private"
    doc.post(
        f"/api/patients/{all_id}/reviews",
        json={
            "meeting_date": AS_OF.isoformat(),
            "decision": "defer",
            "reasons": secret_reason,
            "attendees": [{"name": "Dr Attendee-5K1", "role": "haematologist"}],
        },
        headers={"X-CSRF-Token": doc.csrf},
    )
    patient.post(
        f"/patients/{all_id}/consults",
        data={
            "csrf_token": patient.csrf,
            "topic": secret_topic,
            "channel": "phone",
            "preferred_time": "noon",
        },
    )
    web.client("coord").get("/audit")
    birth_dates = [
        next(
            e["resource"]["birthDate"]
            for e in json.loads(p.read_text())["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
        for p in (ALL_BUNDLE, MELANOMA_BUNDLE)
    ]
    forbidden = ["all example", "melanoma example", secret_reason, secret_topic, "Attendee-5K1", *birth_dates]
    events = _events(web)
    assert events
    for event in events:
        stored = " ".join(
            str(v) for v in (event.detail, event.resource_id, event.resource_type, event.action)
        )
        for text in forbidden:
            assert text not in stored, (event.id, text)


def test_only_coordinators_read_the_audit_log(web: WebWorld) -> None:
    for username in ("pat-mel", "doc"):
        client = web.client(username)
        assert client.get("/audit").status_code == 403
        assert client.get("/api/audit").status_code == 403
    page = web.client("coord").get("/audit")
    assert page.status_code == 200 and 'id="audit-events"' in page.text


def test_page_shows_who_what_when_and_the_record_label(web: WebWorld) -> None:
    web.client("pat-mel").get(f"/patients/{web.patients['melanoma']}/consults")
    page = web.client("coord").get("/audit", params={"patient": web.patients["melanoma"], "user": "pat-mel"})
    assert page.status_code == 200
    assert '<td class="who">pat-mel</td>' in page.text and '<td class="action">view</td>' in page.text
    assert "melanoma example" in page.text and "all example" not in page.text
    assert " UTC</time>" in page.text


def test_filters_and_pages(web: WebWorld) -> None:
    coord = web.client("coord")
    for _ in range(3):
        web.client("pat-mel").get(f"/patients/{web.patients['melanoma']}/consults")
    first = coord.get("/api/audit", params={"user": "pat-mel", "action": "view", "per_page": 2}).json()
    second = coord.get(
        "/api/audit", params={"user": "pat-mel", "action": "view", "per_page": 2, "page": 2}
    ).json()
    assert first["total"] >= 3 and len(first["events"]) == 2
    assert {e["id"] for e in first["events"]}.isdisjoint(e["id"] for e in second["events"])
    assert all(
        e["username"] == "pat-mel" and e["action"] == "view" for e in first["events"] + second["events"]
    )
    assert [e["at"] for e in first["events"]] == sorted((e["at"] for e in first["events"]), reverse=True)
    nobody = coord.get("/api/audit", params={"user": "nobody-here"}).json()
    assert nobody["total"] == 0 and nobody["events"] == []
    assert coord.get("/api/audit", params={"page": 0}).status_code == 422
    assert coord.get("/api/audit", params={"patient": "x" * 25}).status_code == 422
