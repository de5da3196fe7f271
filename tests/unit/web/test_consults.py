"""Consultation requests: the patient asks, a coordinator schedules or declines, the patient sees it."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

from tests.conftest import require_shared
from tests.unit.web.conftest import SignedIn, WebWorld


def _future(days: int = 3) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).replace(second=0, microsecond=0)


def _ask(client: SignedIn, public_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "topic": "Questions about apheresis",
        "channel": "phone",
        "preferred_time": "mornings",
    }
    body.update(changes)
    done = client.post(
        f"/api/patients/{public_id}/consults", json=body, headers={"X-CSRF-Token": client.csrf}
    )
    assert done.status_code == 201, done.text
    return dict(done.json())


def _act(client: SignedIn, consult_id: int, **body: Any) -> Any:
    return client.patch(f"/api/consults/{consult_id}", json=body, headers={"X-CSRF-Token": client.csrf})


def test_patient_asks_coordinator_schedules_patient_sees_time_and_who_answers(web: WebWorld) -> None:
    patient, coord = web.client("pat-mel"), web.client("coord")
    mel = web.patients["melanoma"]
    sent = patient.post(
        f"/patients/{mel}/consults",
        data={
            "csrf_token": patient.csrf,
            "topic": "What happens on the day of the biopsy for TIL?",
            "channel": "video",
            "preferred_time": "weekday mornings",
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303
    mine = patient.get(f"/api/patients/{mel}/consults").json()
    asked = next(c for c in mine if c["topic"].startswith("What happens on the day"))
    assert asked["status"] == "requested" and asked["patient_label"] is None

    queue = coord.get("/consults")
    row = re.search(rf'<tr id="consult-{asked["id"]}">.*?</tr>', queue.text, re.S)
    assert row, "the request is in the coordinators' queue"
    text = html.unescape(row[0])
    for shown in ("melanoma example", "Video call", "weekday mornings", "What happens on the day"):
        assert shown in text

    when = _future()
    doc_id = _user_id(web, "doc")
    done = coord.post(
        f"/consults/{asked['id']}/schedule",
        data={
            "csrf_token": coord.csrf,
            "scheduled_for": when.strftime("%Y-%m-%dT%H:%M"),
            "responder_id": str(doc_id),
            "reply": "Dr Physician will call you by video.",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303

    page = patient.get(f"/patients/{mel}/consults")
    card = re.search(
        rf'<article class="card consult" id="consult-{asked["id"]}">.*?</article>', page.text, re.S
    )
    assert card
    assert 'data-status="scheduled"' in card[0] and ">scheduled<" in card[0]
    assert when.strftime("%Y-%m-%d %H:%M UTC") in card[0]
    assert "Dr Pat Physician" in card[0]
    assert "Dr Physician will call you by video." in card[0]
    api = next(c for c in patient.get(f"/api/patients/{mel}/consults").json() if c["id"] == asked["id"])
    assert api["status"] == "scheduled" and api["responder_name"] == "Dr Pat Physician"
    assert dt.datetime.fromisoformat(api["scheduled_for"].replace("Z", "+00:00")) == when


def _user_id(web: WebWorld, username: str) -> int:
    from actnav.store.accounts import user_by_username
    from actnav.store.db import session_scope

    with session_scope(web.app.state.engine) as session:
        found = user_by_username(session, username)
        assert found is not None
        return found.id


def test_urgent_symptoms_notice_comes_before_the_form(web: WebWorld) -> None:
    # patient-support.md section 3: urgent symptoms go to the centre's emergency numbers, never to a
    # consultation queue.
    source = require_shared("reference", "patient-support.md").read_text()
    assert "never to a consultation queue" in source
    page = web.client("pat-mel").get(f"/patients/{web.patients['melanoma']}/consults").text
    notice = re.search(r'<div class="urgent" role="note" id="urgent-notice">(.*?)</div>', page, re.S)
    assert notice
    words = " ".join(html.unescape(notice[1]).split())
    assert "do not use this form" in words
    assert "call the emergency number your treatment centre gave you, or 911, now" in words
    for sign in ("fever", "trouble breathing", "confusion", "seizure"):  # patient-support.md 1.4
        assert sign in words
    assert page.index('id="urgent-notice"') < page.index('id="consult-form"')


def test_patient_cannot_see_or_ask_for_another_record(web: WebWorld) -> None:
    client = web.client("pat-mel")
    other = web.patients["all"]
    headers = {"X-CSRF-Token": client.csrf}
    assert client.get(f"/patients/{other}/consults").status_code == 404
    assert client.get(f"/api/patients/{other}/consults").status_code == 404
    body = {"topic": "x", "channel": "phone", "preferred_time": "any"}
    assert client.post(f"/api/patients/{other}/consults", json=body, headers=headers).status_code == 404
    page = client.post(f"/patients/{other}/consults", data={"csrf_token": client.csrf, **body})
    assert page.status_code == 404


def test_patients_cannot_open_the_queue_or_act_on_it(web: WebWorld) -> None:
    client = web.client("pat-mel")
    made = _ask(client, web.patients["melanoma"])
    assert client.get("/consults").status_code == 403
    assert client.get("/api/consults").status_code == 403
    assert _act(client, made["id"], action="decline", reply="no").status_code == 403
    page = client.post(f"/consults/{made['id']}/decline", data={"csrf_token": client.csrf, "reply": "no"})
    assert page.status_code == 403


def test_physicians_view_the_queue_but_only_coordinators_act(web: WebWorld) -> None:
    doc = web.client("doc")
    made = _ask(web.client("pat-mel"), web.patients["melanoma"])
    queue = doc.get("/consults")
    assert queue.status_code == 200 and f'id="consult-{made["id"]}"' in queue.text
    assert "schedule-form" not in queue.text
    when = _future().isoformat()
    assert _act(doc, made["id"], action="schedule", scheduled_for=when).status_code == 403


def test_illegal_moves_answer_409(web: WebWorld) -> None:
    coord = web.client("coord")
    made = _ask(web.client("pat-mel"), web.patients["melanoma"])
    cid = made["id"]
    assert _act(coord, cid, action="complete").status_code == 409  # not scheduled yet
    first = _act(coord, cid, action="schedule", scheduled_for=_future().isoformat())
    assert first.status_code == 200 and first.json()["status"] == "scheduled"
    assert first.json()["responder_name"] == "Casey Coordinator"  # default: who scheduled it
    again = _act(coord, cid, action="schedule", scheduled_for=_future(4).isoformat())
    assert again.status_code == 409 and "already scheduled" in again.json()["detail"]
    declined = _act(coord, cid, action="decline", reply="The clinic is closed that week; please ask again.")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert _act(coord, cid, action="decline", reply="again").status_code == 409
    page = coord.post(
        f"/consults/{cid}/schedule",
        data={"csrf_token": coord.csrf, "scheduled_for": _future().strftime("%Y-%m-%dT%H:%M")},
    )
    assert page.status_code == 409 and "declined" in page.text


def test_completing_a_scheduled_consultation(web: WebWorld) -> None:
    coord = web.client("coord")
    made = _ask(web.client("pat-mel"), web.patients["melanoma"], channel="in_person")
    _act(coord, made["id"], action="schedule", scheduled_for=_future().isoformat())
    done = coord.post(
        f"/consults/{made['id']}/complete", data={"csrf_token": coord.csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    assert _act(coord, made["id"], action="complete").status_code == 409


def test_schedule_needs_a_future_time_and_decline_a_reason(web: WebWorld) -> None:
    coord = web.client("coord")
    made = _ask(web.client("pat-mel"), web.patients["melanoma"])
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    for body in ({"action": "schedule"}, {"action": "schedule", "scheduled_for": past}):
        done = _act(coord, made["id"], **body)
        assert done.status_code == 422 and done.json()["errors"][0]["field"] == "scheduled_for"
    no_reason = _act(coord, made["id"], action="decline")
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reply"
    for responder in (_user_id(web, "pat-mel"), 2**31 - 1):  # a patient account; no account
        wrong = _act(
            coord, made["id"], action="schedule", scheduled_for=_future().isoformat(), responder_id=responder
        )
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "responder_id"
    assert _act(coord, 2**31 - 1, action="complete").status_code == 404


def test_request_fields_are_checked(web: WebWorld) -> None:
    client = web.client("pat-mel")
    mel = web.patients["melanoma"]
    headers = {"X-CSRF-Token": client.csrf}
    cases = [
        ({"channel": "phone", "preferred_time": "any", "topic": "  "}, "topic"),
        ({"channel": "fax", "preferred_time": "any", "topic": "x"}, "channel"),
        ({"channel": "phone", "topic": "x"}, "preferred_time"),
        ({"channel": "phone", "preferred_time": "x" * 201, "topic": "x"}, "preferred_time"),
        ({"channel": "phone", "preferred_time": "any", "topic": "x" * 2001}, "topic"),
        ({"channel": "phone", "preferred_at": "2020-01-01T10:00:00Z", "topic": "x"}, "preferred_at"),
    ]
    for body, field in cases:
        done = client.post(f"/api/patients/{mel}/consults", json=body, headers=headers)
        assert done.status_code == 422, body
        assert done.json()["errors"][0]["field"] == field
    page = client.post(
        f"/patients/{mel}/consults", data={"csrf_token": client.csrf, "channel": "phone", "topic": "kept"}
    )
    assert (
        page.status_code == 422
        and "<strong>preferred_time</strong>" in page.text
        and ">kept</textarea>" in page.text
    )
    at = _future(2)
    made = _ask(client, mel, preferred_time="", preferred_at=at.isoformat())
    assert made["preferred_time"] == at.strftime("%Y-%m-%d %H:%M UTC")


def test_care_team_asks_on_behalf_of_a_patient(web: WebWorld) -> None:
    made = _ask(web.client("coord"), web.patients["all"], channel="message")
    assert made["requested_by_name"] == "Casey Coordinator" and made["patient_label"] == "all example"
    seen = web.client("pat-all").get(f"/api/patients/{web.patients['all']}/consults").json()
    assert made["id"] in [c["id"] for c in seen]


def test_queue_puts_open_requests_first_oldest_first(web: WebWorld) -> None:
    coord = web.client("coord")
    first = _ask(web.client("pat-all"), web.patients["all"], topic="first")
    second = _ask(web.client("pat-all"), web.patients["all"], topic="second")
    everything = coord.get("/api/consults").json()
    statuses = [c["status"] for c in everything]
    assert statuses == sorted(statuses, key=lambda s: 0 if s == "requested" else 1 if s == "scheduled" else 2)
    requested = coord.get("/api/consults", params={"status": "requested"}).json()
    assert {c["status"] for c in requested} == {"requested"}
    times = [c["requested_at"] for c in requested]
    assert times == sorted(times)
    ids = [c["id"] for c in requested]
    assert ids.index(first["id"]) < ids.index(second["id"])
    assert coord.get("/api/consults", params={"status": "lost"}).status_code == 422
    assert coord.get("/consults", params={"status": "requested"}).status_code == 200


def test_asking_needs_the_csrf_token(web: WebWorld) -> None:
    client = web.client("pat-mel")
    body = {"topic": "x", "channel": "phone", "preferred_time": "any"}
    assert client.post(f"/api/patients/{web.patients['melanoma']}/consults", json=body).status_code == 403
