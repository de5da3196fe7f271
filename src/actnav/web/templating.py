"""The Jinja2 environment of the web pages and the helpers every page uses.

Templates live in ``actnav/web/templates``; every page extends ``base.html.j2``, which shows the
signed-in account, the navigation for its role and the safety notice. Context every page gets:
``account`` (or None), ``csrf_token`` (for forms), ``title``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from actnav.store.accounts import Account

TEMPLATES = Path(__file__).with_name("templates")
DISCLAIMER = (
    "actnav supports the care team; it does not replace clinical judgement. "
    "Every result shows its sources and what could not be decided."
)


@cache
def templates() -> Jinja2Templates:
    """The shared template set (autoescaped HTML)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["DISCLAIMER"] = DISCLAIMER
    return Jinja2Templates(env=env)


def page(
    request: Request,
    template: str,
    *,
    title: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render a page with the common context (account, CSRF token, title)."""
    account: Account | None = getattr(request.state, "account", None)
    ctx: dict[str, Any] = {
        "account": account,
        "csrf_token": account.csrf_token if account else "",
        "title": title,
        **context,
    }
    return templates().TemplateResponse(request, template, ctx, status_code=status_code, headers=headers)


def error_page(
    request: Request, status: int, detail: str, *, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The error page (status, a plain explanation, a way back)."""
    from actnav.web.problems import TITLES

    if status == 401:
        from urllib.parse import quote

        target = quote(request.url.path, safe="/")
        return HTMLResponse(
            "", status_code=303, headers={"Location": f"/login?next={target}", **(headers or {})}
        )
    return page(
        request,
        "error.html.j2",
        title=TITLES.get(status, "Error"),
        status_code=status,
        headers=headers,
        status=status,
        detail=detail,
    )
