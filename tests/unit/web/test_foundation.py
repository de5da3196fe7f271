"""Sign-in, cookies, CSRF, problem details and the patient pages of the web application."""

from __future__ import annotations

import json
import re

from tests.unit.web.conftest import MELANOMA_BUNDLE, PASSWORD, WebWorld

from actnav.web.security import SESSION_COOKIE


def test_session_cookie_is_secure_httponly_samesite(web: WebWorld) -> None:
    client = web.anonymous()
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    done = client.post(
        "/login",
        data={"username": "coord", "password": PASSWORD, "csrf_token": token[1]},
        follow_redirects=False,
    )
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_wrong_password_is_refused_without_saying_which_part(web: WebWorld) -> None:
    client = web.anonymous()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    done = client.post(
        "/login", data={"username": "coord", "password": "wrong password!", "csrf_token": token[1]}
    )
    assert done.status_code == 401
    assert "Wrong username or password" in done.text
    assert SESSION_COOKIE not in client.cookies


def test_login_form_without_its_csrf_token_is_refused(web: WebWorld) -> None:
    client = web.anonymous()
    done = client.post("/login", data={"username": "coord", "password": PASSWORD, "csrf_token": "forged"})
    assert done.status_code == 403


def test_pages_need_sign_in_and_api_answers_problem_details(web: WebWorld) -> None:
    client = web.anonymous()
    page = client.get("/patients", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    api = client.get("/api/patients")
    assert api.status_code == 401
    assert api.headers["content-type"] == "application/problem+json"
    body = api.json()
    assert body["status"] == 401 and body["title"] and body["detail"]


def test_upload_needs_the_csrf_token(web: WebWorld) -> None:
    client = web.client("coord")
    with MELANOMA_BUNDLE.open("rb") as fh:
        refused = client.post("/patients", files={"bundle": ("b.json", fh, "application/json")})
    assert refused.status_code == 403


def test_upload_then_read_the_evaluation(web: WebWorld) -> None:
    client = web.client("coord")
    with MELANOMA_BUNDLE.open("rb") as fh:
        done = client.post(
            "/patients",
            data={"csrf_token": client.csrf, "label": "upload test"},
            files={"bundle": ("b.json", fh, "application/json")},
            follow_redirects=False,
        )
    assert done.status_code == 303
    page = client.get(done.headers["location"])
    assert page.status_code == 200
    # Lifileucel (Amtagvi) label: unresectable or metastatic melanoma previously treated with a
    # PD-1 blocking antibody (and a BRAF inhibitor if BRAF V600 positive).
    assert "lifileucel" in page.text.lower()
    assert "upload test" in page.text


def test_bad_bundle_upload_names_the_problem_and_stores_nothing(web: WebWorld) -> None:
    client = web.client("coord")
    before = len(client.get("/api/patients").json())
    done = client.post(
        "/patients",
        data={"csrf_token": client.csrf},
        files={"bundle": ("b.json", b'{"resourceType": "Bundle", "entry": [', "application/json")},
    )
    assert done.status_code == 422
    assert "invalid JSON at line 1" in done.text
    assert len(client.get("/api/patients").json()) == before


def test_api_create_rejects_a_bundle_without_patient_naming_the_field(web: WebWorld) -> None:
    client = web.client("coord")
    done = client.post(
        "/api/patients", json={"resourceType": "Bundle"}, headers={"X-CSRF-Token": client.csrf}
    )
    assert done.status_code == 422
    assert done.headers["content-type"] == "application/problem+json"
    assert done.json()["errors"][0]["field"] == "Bundle.entry"


def test_bearer_token_from_api_session(web: WebWorld) -> None:
    client = web.anonymous()
    done = client.post("/api/session", json={"username": "doc", "password": PASSWORD})
    assert done.status_code == 200
    token = done.json()["token"]
    me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "physician"


def test_security_headers(web: WebWorld) -> None:
    page = web.anonymous().get("/login")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"


def test_sign_out_needs_the_session_csrf_token(web: WebWorld) -> None:
    client = web.client("doc")
    forged = client.post("/logout", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert client.get("/api/me").status_code == 200
    done = client.post("/logout", data={"csrf_token": client.csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert client.get("/api/me").status_code == 401


def test_failed_sign_ins_are_throttled_per_username(web: WebWorld) -> None:
    # NIST SP 800-63B-4 3.2.2: limit consecutive failed attempts on one account.
    from actnav.store.accounts import FAILED_LOGIN_LIMIT

    client = web.anonymous()
    for _ in range(FAILED_LOGIN_LIMIT):
        assert (
            client.post(
                "/api/session", json={"username": "pat-all", "password": "not the password"}
            ).status_code
            == 401
        )
    blocked = client.post("/api/session", json={"username": "pat-all", "password": PASSWORD})
    assert blocked.status_code == 429
    assert "wait 15 minutes" in blocked.json()["detail"]
    # Another account is not affected.
    assert client.post("/api/session", json={"username": "doc", "password": PASSWORD}).status_code == 200


def test_a_gzip_bomb_upload_is_refused_without_unpacking_it(web: WebWorld) -> None:
    import gzip

    bomb = gzip.compress(b" " * (101 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    client = web.client("coord")
    done = client.post(
        "/patients",
        data={"csrf_token": client.csrf},
        files={"bundle": ("b.json.gz", bomb, "application/gzip")},
    )
    assert done.status_code == 422
    assert "unpacks to more than 100 MB" in done.text


def test_interactive_api_docs_are_not_served_only_the_description(web: WebWorld) -> None:
    client = web.anonymous()
    assert client.get("/api/docs").status_code == 404
    assert client.get("/api/openapi.json").json()["info"]["title"] == "actnav"


def test_a_nul_character_in_input_is_refused_or_matches_nothing_on_every_database(web: WebWorld) -> None:
    # PostgreSQL text cannot hold U+0000 (SQLite can): lookups find nothing, writes are a 422.
    client = web.client("coord")
    assert client.get("/patients/abc%00def").status_code == 404
    assert client.get("/api/patients/abc%00def").status_code == 404
    audit = client.get("/api/audit", params={"user": "co\x00ord", "action": "vi\x00ew"})
    assert (audit.status_code, audit.json()["total"]) == (200, 0)
    signed = web.anonymous().post("/api/session", json={"username": "co\x00ord", "password": PASSWORD})
    assert signed.status_code == 401
    bundle = json.loads(MELANOMA_BUNDLE.read_text())
    stored = client.post(
        "/api/patients", params={"label": "a\x00b"}, json=bundle, headers={"X-CSRF-Token": client.csrf}
    )
    # A label is one line of text: control characters (NUL included) are refused on every database.
    assert stored.status_code == 422
    assert stored.json()["errors"][0]["field"] == "label"
