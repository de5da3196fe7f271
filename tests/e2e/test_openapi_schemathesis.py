"""Property-based tests of the REST API from its own OpenAPI description (schemathesis, in-process).

Schemathesis reads ``/api/openapi.json`` of the application (ASGI, no server) and sends generated
requests — valid and invalid — to every operation. Checks on every response:

* ``not_a_server_error``: random input must get a 4xx answer, never a 5xx (acceptance of issue 5);
* ``response_schema_conformance``: a JSON body matches the response model in the description.

Two accounts: the coordinator signed in with the session cookie (writes carry ``X-CSRF-Token``),
and the melanoma patient with a bearer token. Generated patient ids are random (404); each case
that names a patient is also sent with a real one: the coordinator's with the ALL patient, the
patient's with its own record (any answer but 5xx) and with the ALL patient: a valid request must
get 403 or 404 (or 422 when the app's own input checks come first), the same as for an unknown id.
Runtime: at most 25 generated examples per operation (plus the description's own examples; the
coverage phase is off), derandomized: the same cases every run.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from tests.unit.web.conftest import WebWorld, build_world

from actnav.store.accounts import session_account, start_session, user_by_username
from actnav.store.db import session_scope

# Path parameters that name a patient record (a patient account may use only its own).
PATIENT_PARAMETERS = ("patient_id", "public_id")
CHECKS = [not_a_server_error, response_schema_conformance]
BOUNDED = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _sign_in(world: WebWorld, username: str) -> tuple[str, str]:
    """A new session for ``username``: (token for the cookie or bearer header, its CSRF token)."""
    with session_scope(world.app.state.engine) as session:
        user = user_by_username(session, username)
        assert user is not None
        token = start_session(session, user)
    with session_scope(world.app.state.engine) as session:
        account = session_account(session, token)
        assert account is not None
        return token, account.csrf_token


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WebWorld:
    return build_world(tmp_path_factory.mktemp("schemathesis"))


@pytest.fixture(scope="module")
def coordinator_headers(world: WebWorld) -> dict[str, str]:
    from actnav.web.security import CSRF_HEADER, SESSION_COOKIE

    token, csrf = _sign_in(world, "coord")
    return {"Cookie": f"{SESSION_COOKIE}={token}", CSRF_HEADER: csrf}


@pytest.fixture(scope="module")
def patient_headers(world: WebWorld) -> dict[str, str]:
    token, _ = _sign_in(world, "pat-mel")
    return {"Authorization": f"Bearer {token}"}


def _description_app() -> Any:
    # The description is read when the module is collected, from an app on an empty in-memory
    # database (the routes do not depend on the data); requests go to the ``world`` app.
    from actnav.web.app import create_app

    return create_app("sqlite://")


schema = schemathesis.openapi.from_asgi("/api/openapi.json", _description_app())
# The coverage phase adds every boundary case as an explicit example, beyond max_examples (minutes
# for the toxicity assessment body); the schema's examples and 25 generated cases stay bounded.
schema.config.phases.update(phases=["examples", "fuzzing"])


def _with_patient(case: Any, public_id: str) -> bool:
    """Put a real patient id into the case's path; False when the operation names no patient."""
    params = case.path_parameters or {}
    named = [name for name in PATIENT_PARAMETERS if name in params]
    for name in named:
        params[name] = public_id
    return bool(named)


def _is_valid_request(case: Any) -> bool:
    """A schema-valid request with the operation's own method (not a negative or coverage probe)."""
    return (
        bool(case.meta.generation.mode.is_positive) and case.method.upper() == case.operation.method.upper()
    )


@schema.parametrize()
@BOUNDED
def test_api_as_coordinator(case: Any, world: WebWorld, coordinator_headers: dict[str, str]) -> None:
    # Copies: schemathesis adds its own headers to the dict it is given.
    case.call_and_validate(app=world.app, headers=dict(coordinator_headers), checks=CHECKS)
    if _with_patient(case, world.patients["all"]):
        case.call_and_validate(app=world.app, headers=dict(coordinator_headers), checks=CHECKS)


# Signing in is the same operation for everyone (and slow on purpose: Argon2id); run it once.
@schema.exclude(path="/api/session").parametrize()
@BOUNDED
def test_api_as_patient(case: Any, world: WebWorld, patient_headers: dict[str, str]) -> None:
    case.call_and_validate(app=world.app, headers=dict(patient_headers), checks=CHECKS)
    if not _with_patient(case, world.patients["melanoma"]):
        return
    case.call_and_validate(app=world.app, headers=dict(patient_headers), checks=CHECKS)
    _with_patient(case, world.patients["all"])
    other = case.call(app=world.app, headers=dict(patient_headers)).status_code
    if not _is_valid_request(case):
        assert other < 500
        return
    # A valid request for another patient's record: refused, and answered exactly as for a record
    # that does not exist (no way to learn whether it does).
    _with_patient(case, "no-such-patient-x")
    missing = case.call(app=world.app, headers=dict(patient_headers)).status_code
    where = f"{case.method} {case.operation.path} as pat-mel with the ALL patient's id"
    # Input the description allows may still be refused by the app's own checks (422) before any
    # record is looked up; then it must be refused for an unknown id alike.
    assert other in (403, 404, 422), f"{where} answered {other}"
    assert other == missing, f"{where} answered {other}, but {missing} for an unknown id"


def test_the_description_lists_the_patient_operations() -> None:
    # Guards against an empty run: the description must hold the patient API of the foundation.
    paths = set(schema.raw_schema["paths"])
    assert {"/api/patients", "/api/patients/{patient_id}", "/api/patients/{patient_id}/evaluation"} <= paths
