"""The access rule, on every route the application has: a patient sees only its own record.

Routes are found in ``create_app()`` (pages and API), not listed by hand, so a new page is checked as
soon as it exists. For each route whose path names a record, every method is called:

* as ``pat-mel`` (the melanoma patient, with its CSRF token on writes) with the ALL patient's ids:
  the answer must be 403 or 404, never 2xx, 3xx or 5xx, and the same as for an id that does not
  exist (so a patient cannot learn whether a record exists);
* as ``pat-mel`` with its own patient id but another patient's object (a consultation of the ALL
  patient): 403 or 404 again;
* without signing in: 401 for ``/api``, a redirect to ``/login`` for pages.

Path parameters are sorted into patient ids (``public_id``, ``patient_id``), public ids (a trial's
NCT id) and the ids of objects that belong to a patient (``consult_id``, ...), for which
:data:`OBJECT_FACTORIES` creates one for the ALL patient as the coordinator first; :data:`SEEDS`
gives the ALL patient the records its pages show (a case). A route with a parameter of none of
these kinds fails :func:`test_every_record_parameter_is_known`: add it here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.unit.web.conftest import SignedIn, WebWorld

from actnav.web.security import CSRF_HEADER

PATIENT_PARAMETERS = frozenset({"public_id", "patient_id"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MISSING = "no-such-record-0"
MISSING_OBJECT = "2147483646"

# Bodies that pass validation, for writes a patient may send (otherwise validation could answer 422
# before the access check is reached). Key: (method, path template).
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/patients/{patient_id}/consults"): {
        "channel": "phone",
        "topic": "Question about the next steps",
        "preferred_time": "weekday mornings",
    },
    ("POST", "/patients/{public_id}/consults"): {
        "channel": "phone",
        "topic": "Question about the next steps",
        "preferred_time": "weekday mornings",
    },
}


def _first_nct(world: WebWorld) -> str:
    # Any trial the app holds: the path is public, the patient id is what is checked.
    found = re.search(r"NCT\d{8}", world.client("coord").get("/api/trials").text)
    return found[0] if found else "NCT00000000"


def _consult_of_all(world: WebWorld) -> str:
    coord = world.client("coord")
    done = coord.post(
        f"/api/patients/{world.patients['all']}/consults",
        json=VALID_BODIES[("POST", "/api/patients/{patient_id}/consults")],
        headers={CSRF_HEADER: coord.csrf},
    )
    assert done.status_code == 201, done.text
    return str(done.json()["id"])


def _open_case_of_all(world: WebWorld) -> None:
    # Tisagenlecleucel (Kymriah) is the CAR-T product of the ALL example.
    coord = world.client("coord")
    done = coord.post(
        f"/api/patients/{world.patients['all']}/case",
        json={"product": "tisagenlecleucel"},
        headers={CSRF_HEADER: coord.csrf},
    )
    assert done.status_code == 201, done.text


# Parameters that are public (no patient data behind them): a value the app knows.
PUBLIC_PARAMETERS: dict[str, Callable[[WebWorld], str]] = {"nct_id": _first_nct}
# Parameters naming an object of one patient: make one for the ALL patient (as the coordinator).
OBJECT_FACTORIES: dict[str, Callable[[WebWorld], str]] = {"consult_id": _consult_of_all}
# Records the ALL patient's pages show to a patient account (its own): made first, so that a 404
# for pat-mel means "not yours" and not "nothing there". Staff-only pages answer 403 either way.
SEEDS: dict[str, Callable[[WebWorld], None]] = {"/case": _open_case_of_all}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # template, e.g. /patients/{public_id}/plan

    @property
    def parameters(self) -> list[str]:
        return [p.split(":")[0] for p in re.findall(r"{([^}]+)}", self.path)]

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) of the app's pages and API (HEAD and mounts left out)."""
    try:  # FastAPI >= 0.16x keeps included routers as one entry; this walks into them.
        from fastapi.routing import iter_route_contexts

        routes: Iterator[Any] = iter(iter_route_contexts(app.routes))
    except ImportError:  # pragma: no cover - older FastAPI lists every route
        routes = iter(app.routes)
    found = []
    for route in routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method not in ("HEAD", "OPTIONS"):
                found.append(Endpoint(method, route.path))
    return found


def _with_records(world: WebWorld) -> list[Endpoint]:
    return [e for e in endpoints(world.app) if e.parameters]


def _of_a_patient(world: WebWorld) -> list[Endpoint]:
    """Routes naming a patient or one of its objects (public-only paths such as a trial left out)."""
    private = PATIENT_PARAMETERS | set(OBJECT_FACTORIES)
    return [e for e in _with_records(world) if private & set(e.parameters)]


def _fill(endpoint: Endpoint, values: dict[str, str]) -> str:
    path = endpoint.path
    for raw in re.findall(r"{([^}]+)}", endpoint.path):
        path = path.replace("{" + raw + "}", values[raw.split(":")[0]])
    return path


def _send(client: TestClient, endpoint: Endpoint, url: str, csrf: str | None) -> int:
    headers = {CSRF_HEADER: csrf} if csrf else {}
    if endpoint.method not in WRITE_METHODS:
        return client.request(endpoint.method, url, headers=headers, follow_redirects=False).status_code
    body = dict(VALID_BODIES.get((endpoint.method, endpoint.path), {}))
    if endpoint.is_api:
        response = client.request(endpoint.method, url, json=body, headers=headers, follow_redirects=False)
    else:
        form = {**body, "csrf_token": csrf} if csrf else body
        response = client.request(endpoint.method, url, data=form, headers=headers, follow_redirects=False)
    return response.status_code


@pytest.fixture(scope="module")
def values(web: WebWorld) -> dict[str, dict[str, str]]:
    """Path values: ``all`` (the ALL patient and its objects), ``own`` (pat-mel's record), ``missing``."""
    params = {p for e in _with_records(web) for p in e.parameters}
    for fragment, seed in SEEDS.items():
        if any(fragment in e.path for e in _with_records(web)):
            seed(web)
    public = {name: make(web) for name, make in PUBLIC_PARAMETERS.items() if name in params}
    objects = {name: make(web) for name, make in OBJECT_FACTORIES.items() if name in params}
    patients = {name: web.patients["all"] for name in PATIENT_PARAMETERS}
    own = {name: web.patients["melanoma"] for name in PATIENT_PARAMETERS}
    missing = {name: MISSING for name in PATIENT_PARAMETERS} | dict.fromkeys(objects, MISSING_OBJECT)
    return {
        "all": {**public, **objects, **patients},
        "own": {**public, **objects, **own},
        "missing": {**public, **missing},
    }


@pytest.fixture(scope="module")
def pat_mel(web: WebWorld) -> SignedIn:
    return web.client("pat-mel")


def test_every_record_parameter_is_known(web: WebWorld) -> None:
    known = PATIENT_PARAMETERS | set(PUBLIC_PARAMETERS) | set(OBJECT_FACTORIES)
    unknown = sorted(f"{e} ({p})" for e in _with_records(web) for p in e.parameters if p not in known)
    assert not unknown, (
        "routes with a path parameter this test does not know; add it to PUBLIC_PARAMETERS or "
        f"OBJECT_FACTORIES in tests/unit/web/test_access.py: {unknown}"
    )


def test_the_routes_are_found(web: WebWorld) -> None:
    # Guards the discovery itself: the foundation's pages and API must be among the routes found.
    found = {str(e) for e in endpoints(web.app)}
    assert {
        "GET /patients/{public_id}",
        "POST /patients/{public_id}/evaluate",
        "GET /api/patients/{patient_id}",
        "GET /api/patients/{patient_id}/evaluation",
        "POST /api/patients/{patient_id}/evaluation",
    } <= found


def test_a_patient_gets_403_or_404_for_every_route_of_another_patient(
    web: WebWorld, values: dict[str, dict[str, str]], pat_mel: SignedIn
) -> None:
    wrong: list[str] = []
    for endpoint in _of_a_patient(web):
        other = _send(pat_mel, endpoint, _fill(endpoint, values["all"]), pat_mel.csrf)
        again = _send(pat_mel, endpoint, _fill(endpoint, values["all"]), pat_mel.csrf)
        missing = _send(pat_mel, endpoint, _fill(endpoint, values["missing"]), pat_mel.csrf)
        if other not in (403, 404) or again != other:
            wrong.append(f"{endpoint}: {other}, then {again}")
        elif missing != other:
            wrong.append(f"{endpoint}: {other} for the ALL patient but {missing} for an unknown id")
    assert not wrong, "pat-mel reached the ALL patient's record:\n" + "\n".join(wrong)


def test_a_patient_cannot_reach_another_patients_objects_through_its_own_record(
    web: WebWorld, values: dict[str, dict[str, str]], pat_mel: SignedIn
) -> None:
    mixed = [
        e
        for e in _with_records(web)
        if PATIENT_PARAMETERS & set(e.parameters) and set(OBJECT_FACTORIES) & set(e.parameters)
    ]
    wrong = []
    for endpoint in mixed:
        status = _send(pat_mel, endpoint, _fill(endpoint, values["own"]), pat_mel.csrf)
        if status not in (403, 404):
            wrong.append(f"{endpoint}: {status}")
    assert not wrong, "pat-mel reached the ALL patient's objects under its own record:\n" + "\n".join(wrong)


def test_without_signing_in_the_api_answers_401_and_pages_go_to_login(
    web: WebWorld, values: dict[str, dict[str, str]]
) -> None:
    anonymous = web.anonymous()
    wrong = []
    for endpoint in _with_records(web):
        url = _fill(endpoint, values["all"])
        headers = {CSRF_HEADER: "forged"} if endpoint.method in WRITE_METHODS else {}
        response = anonymous.request(endpoint.method, url, headers=headers, follow_redirects=False)
        if endpoint.is_api:
            ok = response.status_code == 401
        else:
            location = response.headers.get("location", "")
            ok = response.status_code in (302, 303) and location.startswith("/login")
        if not ok:
            wrong.append(f"{endpoint}: {response.status_code} {response.headers.get('location', '')}")
    assert not wrong, "reached without signing in:\n" + "\n".join(wrong)


def test_what_a_patient_can_open_never_shows_another_patient(
    web: WebWorld, values: dict[str, dict[str, str]], pat_mel: SignedIn
) -> None:
    # Lists and own pages: nothing of the ALL patient (its id or label) in any answer pat-mel gets.
    skip = {"/api/openapi.json", "/api/docs", "/docs/oauth2-redirect"}
    leaks = []
    for endpoint in endpoints(web.app):
        if endpoint.method != "GET" or endpoint.path in skip:
            continue
        url = _fill(endpoint, values["own"]) if endpoint.parameters else endpoint.path
        response = pat_mel.get(url, follow_redirects=False)
        assert response.status_code < 500, f"{endpoint}: {response.status_code}"
        if web.patients["all"] in response.text or "all example" in response.text:
            leaks.append(str(endpoint))
    assert not leaks, f"pat-mel saw the ALL patient in: {leaks}"


def test_the_patient_list_of_a_patient_holds_only_its_own_record(web: WebWorld, pat_mel: SignedIn) -> None:
    listed = pat_mel.get("/api/patients")
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()] == [web.patients["melanoma"]]
    assert pat_mel.get("/patients", follow_redirects=False).status_code == 403
