"""Errors as RFC 9457 problem details (``application/problem+json``) for the API, pages for people.

Every error body of ``/api`` has ``type``, ``title``, ``status`` and ``detail``; validation errors add
``errors``: a list of ``{"field": ..., "problem": ...}``. Nothing internal (tracebacks, SQL) is ever
returned; an unexpected error is a 500 with a reference to quote, logged without patient data.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from actnav.errors import ActnavError

log = logging.getLogger("actnav.web")

PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
}


def problem(
    status: int, detail: str, *, errors: list[dict[str, str]] | None = None, **extra: Any
) -> JSONResponse:
    """A problem-details response (RFC 9457) with status, title and detail."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def wants_page(request: Request) -> bool:
    """True for a browser page (not ``/api``): errors are shown as a page, not JSON."""
    return not request.url.path.startswith("/api")


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form", "header", "cookie")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        if wants_page(request):
            from actnav.web.templating import error_page

            return error_page(request, exc.status_code, detail, headers=getattr(exc, "headers", None))
        response = problem(exc.status_code, detail)
        for key, value in (getattr(exc, "headers", None) or {}).items():
            response.headers[key] = value
        return response

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _field(e.get("loc", ())), "problem": str(e.get("msg", "invalid"))} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
        if wants_page(request):
            from actnav.web.templating import error_page

            return error_page(request, 422, detail)
        return problem(422, detail, errors=errors)

    async def actnav_error(request: Request, exc: ActnavError) -> Response:
        status = 422 if exc.exit_code == 2 else 500
        detail = str(exc) if status == 422 else "a packaged data file is invalid; please report"
        if wants_page(request):
            from actnav.web.templating import error_page

            return error_page(request, status, detail)
        errors = [{"field": exc.where or "request", "problem": exc.message}] if status == 422 else None
        return problem(status, detail, errors=errors)

    async def unexpected(request: Request, exc: Exception) -> Response:
        ref = secrets.token_hex(4)
        # The exception type and reference only: messages can carry patient data.
        log.error("internal error %s: %s on %s %s", ref, type(exc).__name__, request.method, request.url.path)
        detail = f"an internal error occurred (reference {ref}); please report it"
        if wants_page(request):
            from actnav.web.templating import error_page

            return error_page(request, 500, detail)
        return problem(500, detail, reference=ref)

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ActnavError, actnav_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
