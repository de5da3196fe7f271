"""Sign in and sign out (pages), and the API session endpoints."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from actnav.store.accounts import (
    SESSION_HOURS,
    audit,
    authenticate,
    end_session,
    login_key,
    start_session,
    too_many_failed_logins,
)
from actnav.web.deps import CurrentAccount, optional_account, transaction
from actnav.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    clear_session_cookie,
    new_login_csrf,
    set_login_csrf_cookie,
    set_session_cookie,
    tokens_match,
)
from actnav.web.templating import page

router = APIRouter()

THROTTLED = "too many failed sign-ins for this username; wait 15 minutes and try again"


def _safe_next(target: str | None) -> str:
    """Only same-site paths may be a redirect target (no ``//host`` or ``https://``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str | None = None) -> Response:
    token = new_login_csrf()
    response = page(
        request, "login.html.j2", title="Sign in", login_csrf=token, next=_safe_next(next), error=None
    )
    set_login_csrf_cookie(response, token)
    return response


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        raise HTTPException(status_code=403, detail="the sign-in form expired; reload the page and try again")
    with transaction(request) as session:
        if too_many_failed_logins(session, username):
            audit(session, None, "login", "session", login_key(username), outcome="throttled")
            raise HTTPException(status_code=429, detail=THROTTLED)
        user = authenticate(session, username, password)
        if user is None:
            audit(session, None, "login", "session", login_key(username), outcome="failed")
            token = None
        else:
            token = start_session(session, user)
            from actnav.store.accounts import Account, Role

            actor = Account(user.id, user.username, user.display_name, Role(user.role), user.patient_id)
            audit(session, actor, "login", "session")
    if token is None:
        fresh = new_login_csrf()
        response = page(
            request,
            "login.html.j2",
            title="Sign in",
            status_code=401,
            login_csrf=fresh,
            next=_safe_next(next),
            error="Wrong username or password.",
        )
        set_login_csrf_cookie(response, fresh)
        return response
    done = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(done, token, max_age=SESSION_HOURS * 3600)
    done.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return done


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    account = optional_account(request)
    if account is not None and not tokens_match(account.csrf_token, csrf_token):
        raise HTTPException(status_code=403, detail="the page expired; reload it and sign out again")
    with transaction(request) as session:
        end_session(session, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class SessionOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    expires_in_hours: int
    username: str
    role: str


class Me(BaseModel):
    username: str
    display_name: str
    role: str
    patient: str | None = Field(description="Public id of the linked record (patient accounts).")


@router.post(
    "/api/session",
    tags=["session"],
    response_model=SessionOut,
    responses={401: {"description": "wrong credentials"}, 429: {"description": "too many failed sign-ins"}},
)
def api_login(request: Request, body: Credentials) -> SessionOut:
    """Sign in: returns a bearer token (valid 12 hours)."""
    with transaction(request) as session:
        if too_many_failed_logins(session, body.username):
            audit(session, None, "login", "session", login_key(body.username), outcome="throttled")
            raise HTTPException(status_code=429, detail=THROTTLED)
        user = authenticate(session, body.username, body.password)
        if user is None:
            audit(session, None, "login", "session", login_key(body.username), outcome="failed")
        else:
            token = start_session(session, user)
            return SessionOut(
                token=token, expires_in_hours=SESSION_HOURS, username=user.username, role=user.role
            )
    raise HTTPException(status_code=401, detail="wrong username or password")


@router.get("/api/me", tags=["session"], response_model=Me, responses={401: {"description": "not signed in"}})
def api_me(request: Request, account: CurrentAccount) -> Me:
    """Who is signed in."""
    public = None
    if account.patient_id is not None:
        from actnav.store.patients import PatientRow

        with transaction(request) as session:
            row = session.get(PatientRow, account.patient_id)
            public = row.public_id if row else None
    return Me(
        username=account.username, display_name=account.display_name, role=account.role.value, patient=public
    )
