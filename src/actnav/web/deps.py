"""Request dependencies: the database, the signed-in account, role and patient-access checks.

Access rule (tested in tests/unit/web/test_access.py): the care team (coordinator, physician) sees
every patient; a patient account sees only the record it is linked to. Asking for any other
patient's page or API resource answers 404 (not 403), so a patient cannot even learn whether a
record exists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actnav.store.accounts import Account, Role, session_account
from actnav.store.db import session_scope
from actnav.store.patients import PatientRow, patient_by_public_id
from actnav.web.security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, bearer_token, tokens_match


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def today(request: Request) -> dt.date:
    """The evaluation date: the app's clock (a fixed date in tests, else today)."""
    clock: Callable[[], dt.date] = request.app.state.clock
    return clock()


@contextmanager
def transaction(request: Request) -> Iterator[Session]:
    """A database transaction for one step of a request: commits at the end, rolls back on error."""
    with session_scope(engine_of(request)) as session:
        yield session


def optional_account(request: Request) -> Account | None:
    """The signed-in account (cookie or bearer token), or None."""
    cached = getattr(request.state, "account", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = bearer_token(request)
    request.state.via_bearer = token is not None
    token = token or request.cookies.get(SESSION_COOKIE)
    with transaction(request) as session:
        account = session_account(session, token)
    request.state.account = account
    return account


def current_account(account: Annotated[Account | None, Depends(optional_account)]) -> Account:
    """The signed-in account; 401 when nobody is signed in."""
    if account is None:
        raise HTTPException(status_code=401, detail="sign in first")
    return account


def staff_account(account: Annotated[Account, Depends(current_account)]) -> Account:
    """A care-team account (coordinator or physician); 403 for patients."""
    if not account.is_staff:
        raise HTTPException(status_code=403, detail="only the care team can do this")
    return account


def coordinator_account(account: Annotated[Account, Depends(current_account)]) -> Account:
    """A coordinator account; 403 otherwise."""
    if account.role is not Role.COORDINATOR:
        raise HTTPException(status_code=403, detail="only coordinators can do this")
    return account


def patient_for(session: Session, account: Account, public_id: str) -> PatientRow:
    """The patient ``public_id`` if ``account`` may see it; 404 otherwise (also when it does not exist).

    Raises:
        HTTPException: 404 for an unknown id or a patient account asking for another record.
    """
    row = patient_by_public_id(session, public_id)
    if row is None or (not account.is_staff and account.patient_id != row.id):
        raise HTTPException(status_code=404, detail="no such patient")
    return row


async def check_csrf(request: Request, account: Annotated[Account, Depends(current_account)]) -> Account:
    """For writes: the CSRF token (form field or ``X-CSRF-Token`` header) must match the session's.

    Bearer-token requests are exempt. 403 when it is missing or wrong.
    """
    if getattr(request.state, "via_bearer", False):
        return account
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not tokens_match(account.csrf_token, given):
        raise HTTPException(
            status_code=403, detail="missing or invalid CSRF token; reload the page and try again"
        )
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]
StaffAccount = Annotated[Account, Depends(staff_account)]
CoordinatorAccount = Annotated[Account, Depends(coordinator_account)]
WritingAccount = Annotated[Account, Depends(check_csrf)]


def staff_writer(account: Annotated[Account, Depends(check_csrf)]) -> Account:
    """A care-team account sending a write with a valid CSRF token; 403 otherwise."""
    if not account.is_staff:
        raise HTTPException(status_code=403, detail="only the care team can do this")
    return account


StaffWriter = Annotated[Account, Depends(staff_writer)]
