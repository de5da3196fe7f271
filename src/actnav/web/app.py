"""Build the web application: :func:`create_app` (used by ``actnav serve`` and the tests).

Routes: pages for people (``/``, ``/login``, ``/patients/...``, ``/trials/...``, ``/consults``) and
the REST API under ``/api`` (OpenAPI description at ``/api/openapi.json``). Errors of the API are RFC 9457 problem details (:mod:`actnav.web.problems`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from actnav.config import get_settings
from actnav.store.db import create_schema, get_engine
from actnav.web import problems
from actnav.web.security import SecurityHeaders

STATIC = Path(__file__).with_name("static")


def create_app(database_url: str | None = None, *, clock: Callable[[], dt.date] | None = None) -> FastAPI:
    """The actnav web application on a database (migrated to the newest schema first).

    Args:
        database_url: SQLAlchemy URL; default ``ACTNAV_DATABASE_URL``, else the SQLite file in the
            user data folder.
        clock: gives the evaluation date (default: today's date); tests pass a fixed date.

    Raises:
        InputError: the URL is invalid or the database cannot be opened or upgraded.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("actnav")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        number = "0"
    engine = get_engine(get_settings(database_url).database_url)
    create_schema(engine)
    app = FastAPI(
        title="actnav",
        version=number,
        description="Adoptive cell therapy navigator: evaluation, trials, toxicity, patient plans. "
        "Authenticate with the session cookie (plus the X-CSRF-Token header for writes) or with "
        "`Authorization: Bearer <token>` from POST /api/session.",
        openapi_url="/api/openapi.json",
        # The interactive docs load scripts from a CDN: offline and against our CSP they cannot
        # work, so only the OpenAPI description is served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.clock = clock or dt.date.today
    app.add_middleware(SecurityHeaders)
    problems.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    from actnav.web.routes import (
        api,
        audit,
        auth,
        cases,
        consults,
        intake,
        notes,
        patients,
        plan,
        reviews,
        toxicity,
        trials,
    )

    for module in (
        auth,
        patients,
        api,
        trials,
        toxicity,
        reviews,
        consults,
        plan,
        cases,
        audit,
        intake,
        notes,
    ):
        app.include_router(module.router)
    return app
