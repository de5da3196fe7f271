"""Vein-to-vein pages and API: the melanoma example's lifileucel case from referral to infusion.

Values from the sources:

* Amtagvi (lifileucel), US label (clinical-reference 1.7): a TIL product (cells grown from a resected
  tumour); dose 7.5 x 10^9 to 72 x 10^9 viable cells, not weight-based; lymphodepletion
  cyclophosphamide x 2 days then fludarabine x 5 days (7 days); infuse at least 24 hours after the
  last fludarabine dose and no later than 4 days after it.
* Manufacturing turnaround of lifileucel: 22 days from collection to release (ex vivo TIL expansion
  [S], docs/vein-to-vein.md section 4, data/logistics/vein-to-vein.yaml).
* Lifecycle (docs/vein-to-vein.md section 2): an infusion needs the release and the lymphodepletion
  recorded, and is refused otherwise with every reason.

The tests of this module share one world and run in file order: the case is opened and walked to
release testing once (fixture ``walked``), the later tests continue it. Identifiers are invented.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from tests.unit.web.conftest import SignedIn, WebWorld

from actnav.store.accounts import audit_events
from actnav.store.db import session_scope
from actnav.store.patients import patient_by_public_id
from actnav.web.security import CSRF_HEADER

PERSON = {
    "family_name": "Testperson",
    "given_name": "Alex",
    "birth_date": "1984-03-09",
    "mrn": "MEL-TEST-0042",
}
FACILITY = "G1234"


def _post(client: SignedIn, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data={"csrf_token": client.csrf, **data}, follow_redirects=False)


def _move(client: SignedIn, pid: str, to: str, at: str, **extra: str) -> Any:
    done = _post(
        client,
        f"/patients/{pid}/case/transitions",
        {"to_stage": to, "reason": f"test: {to}", "at": at, **extra},
    )
    assert done.status_code == 303, html.unescape(done.text)[-3000:]
    return done


def _custody(client: SignedIn, pid: str, din: str, event: str, at: str, location: str = "") -> None:
    done = _post(
        client, f"/patients/{pid}/case/custody", {"din": din, "event": event, "at": at, "location": location}
    )
    assert done.status_code == 303, html.unescape(done.text)[-3000:]


def _identifiers(prefix: str, values: dict[str, str], din: str | None = None) -> dict[str, str]:
    found = {f"{prefix}{k}": v for k, v in values.items()}
    if din is not None:
        found[f"{prefix}din"] = din
    return found


def _section(text: str, element_id: str) -> str:
    found = re.search(
        rf'<(section|article|div|p|ul|tr)[^>]*id="{re.escape(element_id)}"[^>]*>.*?</\1>', text, re.S
    )
    assert found, f"no element #{element_id}"
    return html.unescape(found[0])


def _plain(text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


@pytest.fixture(scope="module")
def coord(web: WebWorld) -> SignedIn:
    return web.client("coord")


@pytest.fixture(scope="module")
def walked(web: WebWorld, coord: SignedIn) -> str:
    """The melanoma patient's lifileucel case walked to release testing; returns its DIN."""
    pid = web.patients["melanoma"]
    opened = _post(coord, f"/patients/{pid}/case", {"therapy": "lifileucel", "at": "2026-11-02T09:00"})
    assert opened.status_code == 303, html.unescape(opened.text)[-3000:]
    assert opened.headers["location"] == f"/patients/{pid}/case#case-stage"
    api = coord.post(
        f"/api/patients/{pid}/case/transitions",
        json={"to_stage": "evaluation", "reason": "work-up started", "at": "2026-11-03T09:00:00Z"},
        headers={CSRF_HEADER: coord.csrf},
    )
    assert api.status_code == 201, api.text
    assert (api.json()["from_step"], api.json()["to_step"], api.json()["actor"]) == (
        "referral",
        "evaluation",
        "coord",
    )
    assert _post(coord, f"/patients/{pid}/case/report", {}).status_code == 303
    _move(coord, pid, "review", "2026-11-05T14:00")
    _move(
        coord,
        pid,
        "authorisation",
        "2026-11-06T10:00",
        decision="proceed",
        indication="melanoma-after-anti-pd1",
    )
    _move(coord, pid, "collection", "2026-11-09T10:00")
    collected = _post(
        coord,
        f"/patients/{pid}/case/collections",
        {"facility": FACILITY, "at": "2026-11-10T08:00", "location": "Theatre 3"},
    )
    assert collected.status_code == 303, html.unescape(collected.text)[-3000:]
    case = coord.get(f"/api/patients/{pid}/case").json()
    din = case["collections"][0]["din"]
    _custody(coord, pid, din, "labelled", "2026-11-10T09:00")
    _custody(coord, pid, din, "shipped", "2026-11-10T10:00", "Courier")
    _move(coord, pid, "shipped_to_manufacturing", "2026-11-10T11:00")
    _custody(coord, pid, din, "received", "2026-11-11T09:00", "Manufacturing site")
    _move(coord, pid, "manufacturing", "2026-11-11T10:00")
    _move(coord, pid, "release_testing", "2026-11-25T10:00")
    return str(din)


def test_the_open_form_offers_the_evaluations_eligible_products_and_every_product_by_path(
    web: WebWorld, coord: SignedIn
) -> None:
    page = coord.get(f"/patients/{web.patients['all']}/case")
    assert page.status_code == 200
    assert 'id="open-case-form"' in page.text and 'id="no-case"' in page.text
    text = html.unescape(page.text)
    suggested = re.search(
        r'<optgroup label="Eligible or needing information[^"]*">(.*?)</optgroup>', text, re.S
    )
    assert suggested, "the evaluation's products come first"
    # Tecartus (brexucabtagene autoleucel), US label section 1: adult relapsed or refractory B-ALL;
    # the ALL example (34 years, second relapse) meets it (see test_reviews).
    assert 'value="brexucabtagene_autoleucel:b-all-adult"' in suggested[1]
    til = re.search(
        r'<optgroup label="Any product — tumour resection \(TIL[^"]*">(.*?)</optgroup>', text, re.S
    )
    assert til and 'value="lifileucel:melanoma-after-anti-pd1"' in til[1]
    assert 'value="lifileucel"' in til[1]  # indication chosen at the review


def test_the_melanoma_case_walks_to_release_testing_with_who_when_why(
    web: WebWorld, coord: SignedIn, walked: str
) -> None:
    pid = web.patients["melanoma"]
    case = coord.get(f"/api/patients/{pid}/case").json()
    assert case["case_ref"] == f"web:{pid}"
    assert (case["step"], case["product_id"], case["indication_id"]) == (
        "release_testing",
        "lifileucel",
        "melanoma-after-anti-pd1",
    )
    assert [t["to_step"] for t in case["transitions"]] == [
        "referral",
        "evaluation",
        "review",
        "authorisation",
        "collection",
        "shipped_to_manufacturing",
        "manufacturing",
        "release_testing",
    ]
    assert all(t["actor"] == "coord" and t["reason"] for t in case["transitions"])
    assert case["transitions"][3]["details"] == {
        "decision": "proceed",
        "product": "lifileucel",
        "indication": "melanoma-after-anti-pd1",
    }
    # A TIL product is collected by tumour resection (label: cells grown from a resected tumour).
    assert case["collections"][0]["kind"] == "tumour_resection"
    assert case["collections"][0]["custody"] == ["collected", "labelled", "shipped", "received"]
    report = next(r for r in case["records"] if r["kind"] == "report")
    assert re.fullmatch(r"[0-9a-f]{64}", report["payload"]["sha256"])
    page = coord.get(f"/patients/{pid}/case")
    assert page.status_code == 200
    assert 'id="current-step" data-step="release_testing"' in page.text
    assert "tumour resection" in _section(page.text, "case-stage")
    assert re.search(r'id="days-in-step">4<', page.text)  # entered 2026-11-25, today 2026-11-29
    assert 'id="move-manufacturing"' in page.text and 'id="move-collection"' in page.text  # the way back
    assert 'id="move-shipped_back"' in page.text


def test_an_infusion_without_release_and_lymphodepletion_is_refused_with_the_reasons(
    web: WebWorld, coord: SignedIn, walked: str
) -> None:
    pid = web.patients["melanoma"]
    body = {
        "to_stage": "infused",
        "reason": "attempt",
        "at": "2026-11-28T10:00:00Z",
        "bag": {**PERSON, "din": walked},
        "wristband": PERSON,
    }
    api = coord.post(f"/api/patients/{pid}/case/transitions", json=body, headers={CSRF_HEADER: coord.csrf})
    assert api.status_code == 409
    assert api.headers["content-type"].startswith("application/problem+json")
    reasons = api.json()["reasons"]
    assert any("release is not recorded" in r for r in reasons)
    assert any("lymphodepletion is not recorded" in r for r in reasons)
    form = {
        "to_stage": "infused",
        "reason": "attempt",
        "at": "2026-11-28T10:00",
        **_identifiers("wristband_", PERSON),
        **_identifiers("bag_", PERSON, walked),
    }
    page = _post(coord, f"/patients/{pid}/case/transitions", form)
    assert page.status_code == 409
    refusal = _plain(_section(page.text, "refusal"))
    assert "Refused: cannot move from Release testing to Infusion (day 0)" in refusal
    assert "the product release is not recorded" in refusal and "lymphodepletion is not recorded" in refusal
    for value in PERSON.values():
        assert value not in page.text, "identifiers are never echoed"
    assert coord.get(f"/api/patients/{pid}/case").json()["step"] == "release_testing"


def test_the_board_shows_the_case_under_its_step_with_days_and_the_next_date(
    web: WebWorld, coord: SignedIn, walked: str
) -> None:
    pid = web.patients["melanoma"]
    board = coord.get("/cases")
    assert board.status_code == 200
    column = _section(board.text, "stage-release_testing")
    card = re.search(rf'<article[^>]*id="case-{pid}".*?</article>', column, re.S)
    assert card, "the case is in the release-testing column"
    text = _plain(card[0])
    assert "melanoma example" in text and "Amtagvi" in text and "TIL" in text
    assert "4 days in this step" in text
    # Collection on 2026-11-10 + 22 days of lifileucel manufacturing = release on 2026-12-02.
    assert "Next: Product release (end of release testing), 2026-12-02 planned" in text
    assert f'id="case-{pid}"' not in _section(board.text, "stage-referral")
    cards = coord.get("/api/cases").json()
    mine = next(c for c in cards if c["patient_id"] == pid)
    assert (mine["step"], mine["days_in_step"], mine["patient_label"]) == (
        "release_testing",
        4,
        "melanoma example",
    )
    assert mine["next_milestone"]["key"] == "release" and mine["next_milestone"]["date"] == "2026-12-02"


def test_the_labelled_dose_and_the_certificate_check(web: WebWorld, coord: SignedIn, walked: str) -> None:
    pid = web.patients["melanoma"]
    page = coord.get(f"/patients/{pid}/case", params={"weight_kg": "70"})
    dose = _plain(_section(page.text, "dose-result"))
    # Label: 7.5 x 10^9 to 72 x 10^9 viable cells, not weight-based.
    assert "7.5 x 10^9 to 7.2 x 10^10 viable cells" in dose and "flat dose" in dose
    below = _post(coord, f"/patients/{pid}/case/certificate", {"weight_kg": "70", "cells": "5e9"})
    assert below.status_code == 200
    result = _plain(_section(below.text, "certificate-result"))
    assert "OUT OF SPECIFICATION" in result and "below" in result
    inside = _post(coord, f"/patients/{pid}/case/certificate", {"weight_kg": "70", "cells": "3.2e10"})
    assert "WITHIN LABEL" in _plain(_section(inside.text, "certificate-result"))
    assert coord.get(f"/api/patients/{pid}/case").json()["step"] == "release_testing"  # nothing recorded
    bad = _post(coord, f"/patients/{pid}/case/certificate", {"weight_kg": "heavy", "cells": "3e10"})
    assert bad.status_code == 422 and 'data-field="weight_kg"' in bad.text


def test_a_slip_outside_the_label_window_is_flagged_as_a_conflict(
    web: WebWorld, coord: SignedIn, walked: str
) -> None:
    pid = web.patients["melanoma"]
    done = _post(
        coord,
        f"/patients/{pid}/case/lymphodepletion",
        {
            "start": "2026-12-05",
            "end": "2026-12-11",
            "regimen": "Cy 60 mg/kg x2, Flu 25 mg/m2 x5",
            "reason": "planned",
        },
    )
    assert done.status_code == 303
    slip = _post(
        coord,
        f"/patients/{pid}/case/schedule",
        {"milestone": "infusion", "date": "2026-12-17", "reason": "bed not available"},
    )
    assert slip.status_code == 303
    page = coord.get(f"/patients/{pid}/case")
    # 2026-12-17 is 6 days after lymphodepletion ends; the label allows 1 to 4 days.
    conflicts = _plain(_section(page.text, "conflicts"))
    assert "CONFLICT" in conflicts and "6 days after lymphodepletion ends" in conflicts
    assert 'id="milestone-infusion" class="conflict"' in page.text
    schedule = coord.get(f"/api/patients/{pid}/case/schedule").json()
    assert [c["kind"] for c in schedule["conflicts"]] == ["lymphodepletion_window"]
    lengths = {m["key"]: m for m in schedule["milestones"]}
    assert (lengths["lymphodepletion_start"]["date"], lengths["lymphodepletion_end"]["date"]) == (
        "2026-12-05",
        "2026-12-11",
    )
    back = _post(
        coord,
        f"/patients/{pid}/case/schedule",
        {"milestone": "infusion", "date": "2026-12-13", "reason": "bed found"},
    )
    assert back.status_code == 303
    assert coord.get(f"/api/patients/{pid}/case/schedule").json()["conflicts"] == []


def test_a_bag_for_someone_else_is_refused_at_the_bedside_without_echoing_identifiers(
    web: WebWorld, coord: SignedIn, walked: str
) -> None:
    pid = web.patients["melanoma"]
    registered = _post(coord, f"/patients/{pid}/case/identity", {**PERSON, "reason": "from the wristband"})
    assert registered.status_code == 303
    other = {**PERSON, "family_name": "Otherperson"}
    checked = _post(
        coord,
        f"/patients/{pid}/case/bedside",
        {**_identifiers("wristband_", PERSON), **_identifiers("bag_", other, walked)},
    )
    assert checked.status_code == 303 and checked.headers["location"].endswith("#bedside")
    page = coord.get(checked.headers["location"])
    result = _section(page.text, "bedside-result")
    assert 'data-passed="false"' in result and "REFUSED" in result
    assert "the family name on the bag label does not match the wristband" in result
    for value in (*PERSON.values(), "Otherperson"):
        assert value not in page.text
    record = [
        r for r in coord.get(f"/api/patients/{pid}/case").json()["records"] if r["kind"] == "bedside_check"
    ][-1]
    assert record["payload"]["mismatched"] == ["family_name"] and record["payload"]["passed"] is False
    missing = _post(coord, f"/patients/{pid}/case/bedside", _identifiers("wristband_", PERSON))
    assert missing.status_code == 422 and 'data-field="bag_family_name"' in missing.text


def test_bridging_therapy_is_recorded_and_a_form_with_a_problem_keeps_its_values(
    web: WebWorld, coord: SignedIn, walked: str
) -> None:
    pid = web.patients["melanoma"]
    wrong = _post(
        coord,
        f"/patients/{pid}/case/bridging",
        {
            "regimen": "Dabrafenib and trametinib",
            "start": "2026-11-20",
            "end": "2026-11-10",
            "reason": "disease control",
        },
    )
    assert wrong.status_code == 422
    assert 'id="err-bridging-end"' in wrong.text and "bridging ends before it starts" in html.unescape(
        wrong.text
    )
    assert 'value="Dabrafenib and trametinib"' in wrong.text  # kept for correction
    done = _post(
        coord,
        f"/patients/{pid}/case/bridging",
        {"regimen": "Dabrafenib and trametinib", "start": "2026-11-10", "reason": "disease control"},
    )
    assert done.status_code == 303 and done.headers["location"].endswith("#bridging")
    table = _plain(_section(coord.get(f"/patients/{pid}/case").text, "bridging"))
    assert "Dabrafenib and trametinib 2026-11-10 ongoing" in table


def test_the_custody_log_and_its_hash_chain(web: WebWorld, coord: SignedIn, walked: str) -> None:
    pid = web.patients["melanoma"]
    custody = coord.get(f"/api/patients/{pid}/case/custody").json()
    events = [e["event"] for e in custody["entries"]]
    assert events == ["collected", "labelled", "shipped", "received"]
    assert custody["entries"][0]["prev_hash"] == "0" * 64
    for before, after in zip(custody["entries"], custody["entries"][1:], strict=False):
        assert after["prev_hash"] == before["entry_hash"]
    assert (
        custody["chain"]["status"] == "intact"
        and custody["chain"]["head_hash"] == custody["entries"][-1]["entry_hash"]
    )
    page = coord.get(f"/patients/{pid}/case")
    assert 'id="chain-status" class="okbox" data-status="intact"' in page.text
    assert 'class="event">received<' in _section(page.text, "custody-log")


def test_the_patient_reads_the_journey_in_plain_words_and_nothing_of_another_patient(
    web: WebWorld, walked: str
) -> None:
    patient = web.client("pat-mel")
    mine = patient.get(f"/patients/{web.patients['melanoma']}/custody")
    assert mine.status_code == 200
    text = _plain(mine.text)
    assert "Your cells were collected on 10 November 2026" in text
    assert "They were sent to the manufacturing site on 10 November 2026" in text
    assert "They arrived at the manufacturing site on 11 November 2026" in text
    assert "something on the bag did not match your wristband, so the bag was not given" in text
    assert "2 December 2026 : Your treatment finishes its safety and quality tests" in text
    assert "13 December 2026 : Your infusion" in text
    assert walked not in mine.text and FACILITY not in mine.text  # no donation numbers
    assert not re.search(r"[0-9a-f]{64}", mine.text)  # no hashes
    assert "coord" not in text  # no staff ids
    assert re.search(r'href="/patients/[^"]+/custody" aria-current="page">My cells&#39; journey<', mine.text)
    assert patient.get(f"/patients/{web.patients['all']}/custody").status_code == 404
    assert patient.get(f"/api/patients/{web.patients['all']}/case/journey").status_code == 404
    api = patient.get(f"/api/patients/{web.patients['melanoma']}/case/journey").json()
    assert api["started"] and api["events"][0]["date"] == "2026-11-10"


def test_a_step_running_late_stays_on_the_patients_list_as_late(web: WebWorld, walked: str) -> None:
    from actnav.logistics import service
    from actnav.web.routes.cases import case_ref_of, journey

    engine = web.app.state.engine
    ref = case_ref_of(web.patients["melanoma"])
    later = dt.date(2026, 12, 5)  # the release planned for 2026-12-02 is not recorded by then
    found = journey(
        service.read_case(engine, ref),
        service.read_custody_log(engine, case_ref=ref),
        service.case_schedule(engine, ref, as_of=later),
        "TIL",
        later,
    )
    release = next(s for s in found.ahead if s.text.startswith("Your treatment finishes"))
    assert (release.date, release.late) == (dt.date(2026, 12, 2), True)
    assert not any(s.late for s in found.ahead if s.date >= later)


def test_a_patient_is_kept_out_of_the_board_and_the_case_pages(web: WebWorld, walked: str) -> None:
    patient = web.client("pat-mel")
    pid = web.patients["melanoma"]
    assert patient.get("/cases", follow_redirects=False).status_code == 403
    assert patient.get("/api/cases").status_code == 403
    assert patient.get(f"/patients/{pid}/case", follow_redirects=False).status_code == 403
    assert patient.get(f"/api/patients/{pid}/case").status_code == 403
    assert patient.get(f"/api/patients/{pid}/case/custody").status_code == 403
    refused = patient.post(
        f"/api/patients/{pid}/case/transitions",
        json={"to_stage": "withdrawn", "reason": "mine"},
        headers={CSRF_HEADER: patient.csrf},
    )
    assert refused.status_code == 403
    assert (
        _post(
            patient, f"/patients/{pid}/case/transitions", {"to_stage": "withdrawn", "reason": "x"}
        ).status_code
        == 403
    )


def test_every_view_and_write_is_audited_without_identifiers(web: WebWorld, walked: str) -> None:
    with session_scope(web.app.state.engine) as session:
        row = patient_by_public_id(session, web.patients["melanoma"])
        assert row is not None
        events, _ = audit_events(session, patient_id=row.id, limit=500)
        found = {(e.action, e.resource_type, e.outcome) for e in events}
        details = " ".join(e.detail or "" for e in events)
    assert ("create", "case", "ok") in found
    assert ("update", "case", "refused") in found
    assert ("view", "case", "ok") in found and ("view", "custody_journey", "ok") in found
    assert "transition release_testing -> infused" not in details
    assert "transition manufacturing -> release_testing" in details
    for value in (*PERSON.values(), "Otherperson"):
        assert value not in details


def test_the_full_path_to_infusion_with_a_passed_bedside_check(web: WebWorld, coord: SignedIn) -> None:
    # The ALL example and Tecartus (brexucabtagene autoleucel) for adult B-ALL, US label
    # (clinical-reference 1.3): 1 x 10^6 CAR-positive viable T cells/kg, at most 1 x 10^8;
    # lymphodepletion on days -4, -3 and -2, infusion on day 0 (2 days after the last dose).
    # Every step is dated in the past: a step is recorded once it has happened.
    pid = web.patients["all"]
    opened = _post(
        coord,
        f"/patients/{pid}/case",
        {"therapy": "brexucabtagene_autoleucel:b-all-adult", "at": "2026-08-03T09:00"},
    )
    assert opened.status_code == 303, html.unescape(opened.text)[-2000:]
    _move(coord, pid, "evaluation", "2026-08-04T09:00")
    assert _post(coord, f"/patients/{pid}/case/report", {}).status_code == 303
    _move(coord, pid, "review", "2026-08-06T09:00")
    _move(coord, pid, "authorisation", "2026-08-07T09:00", decision="proceed", indication="b-all-adult")
    _move(coord, pid, "collection", "2026-08-10T09:00")
    collected = _post(
        coord, f"/patients/{pid}/case/collections", {"facility": FACILITY, "at": "2026-08-11T08:00"}
    )
    assert collected.status_code == 303
    din = coord.get(f"/api/patients/{pid}/case").json()["collections"][0]["din"]
    assert coord.get(f"/api/patients/{pid}/case").json()["collections"][0]["kind"] == "apheresis"
    _custody(coord, pid, din, "labelled", "2026-08-11T09:00")
    _custody(coord, pid, din, "shipped", "2026-08-11T10:00")
    _move(coord, pid, "shipped_to_manufacturing", "2026-08-11T11:00")
    _custody(coord, pid, din, "received", "2026-08-12T09:00")
    _move(coord, pid, "manufacturing", "2026-08-12T10:00")
    _move(coord, pid, "release_testing", "2026-08-30T10:00")
    release = _post(
        coord,
        f"/patients/{pid}/case/certificate",
        {
            "weight_kg": "60",
            "cells": "6e7",
            "lot": "LOT-7",
            "record": "yes",
            "din": din,
            "at": "2026-08-31T08:00",
        },
    )
    assert release.status_code == 303, html.unescape(release.text)[-2000:]
    recorded = [r for r in coord.get(f"/api/patients/{pid}/case").json()["records"] if r["kind"] == "release"]
    assert recorded[-1]["payload"]["status"] == "within_label"
    assert (recorded[-1]["payload"]["min_cells"], recorded[-1]["payload"]["max_cells"]) == (
        6e7,
        6e7,
    )  # 1e6/kg x 60
    _custody(coord, pid, din, "shipped", "2026-08-31T10:00", "Courier")
    _move(coord, pid, "shipped_back", "2026-08-31T11:00")
    _custody(coord, pid, din, "received", "2026-09-02T09:00", "Cell therapy unit")
    _custody(coord, pid, din, "stored", "2026-09-02T10:00", "Cell therapy unit")
    _move(coord, pid, "received", "2026-09-02T11:00")
    registered = _post(coord, f"/patients/{pid}/case/identity", {**PERSON, "reason": "from the wristband"})
    assert registered.status_code == 303
    _move(coord, pid, "lymphodepletion", "2026-09-03T08:00", ld_start="2026-09-03", ld_end="2026-09-05")
    _custody(coord, pid, din, "thawed", "2026-09-07T09:00", "Ward 5")
    form = {**_identifiers("wristband_", PERSON), **_identifiers("bag_", PERSON, din)}
    _move(coord, pid, "infused", "2026-09-07T10:00", **form)  # day 0, 2 days after the last dose
    case = coord.get(f"/api/patients/{pid}/case").json()
    assert case["step"] == "infused"
    assert case["transitions"][-1]["details"] == {"din": din, "bedside_check": "passed"}
    assert coord.get(f"/api/patients/{pid}/case/custody").json()["chain"]["status"] == "intact"
    assert coord.get(f"/api/patients/{pid}/case/schedule").json()["conflicts"] == []
    text = _plain(web.client("pat-all").get(f"/patients/{pid}/custody").text)
    assert "Your cells were collected on 11 August 2026: a machine took white blood cells" in text
    assert "Your treatment arrived at your treatment centre on 2 September 2026" in text
    assert "Before the infusion on 7 September 2026, your cells were checked against your wristband" in text
    assert "You received your treatment on 7 September 2026" in text
    page = coord.get(f"/patients/{pid}/case")
    assert 'id="infusion-form"' not in page.text  # nothing to infuse any more
    assert 'data-passed="true"' in _section(page.text, "bedside-result")
    board = coord.get("/cases")
    assert f'id="case-{pid}"' in _section(board.text, "stage-infused")
