"""Sign-in cookies, CSRF protection and security headers.

* The session cookie (``actnav_session``) is ``Secure``, ``HttpOnly`` and ``SameSite=Lax``; it holds a
  random token whose SHA-256 is looked up in ``login_session`` (:mod:`actnav.store.accounts`).
  Browsers send ``Secure`` cookies to ``http://localhost`` and ``127.0.0.1`` too (a secure context),
  so a local server works without TLS; anywhere else, serve it behind HTTPS.
* CSRF: every form carries the session's CSRF token in a hidden field ``csrf_token``; API writes
  sent with the cookie carry it in the ``X-CSRF-Token`` header. Requests authenticated with
  ``Authorization: Bearer <token>`` need no CSRF token (browsers never add that header on their own).
  The sign-in form, before a session exists, uses a double-submit cookie (``actnav_login_csrf``).
* Every response gets a strict Content-Security-Policy (no scripts from anywhere but the app),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``, ``X-Frame-Options: DENY``,
  and patient pages ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

SESSION_COOKIE = "actnav_session"
LOGIN_CSRF_COOKIE = "actnav_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def set_session_cookie(response: Response, token: str, *, max_age: int) -> None:
    """Attach the session cookie (Secure, HttpOnly, SameSite=Lax, path /)."""
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, secure=True, httponly=True, samesite="lax", path="/"
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_login_csrf_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, value, max_age=3600, secure=True, httponly=True, samesite="strict", path="/"
    )


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two CSRF tokens; False when either is missing."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds the security headers to every response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
