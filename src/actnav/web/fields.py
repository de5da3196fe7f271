"""Text and time field types shared by the forms and JSON bodies of the web application.

* :data:`OneLine`: a single line (names, roles, a preferred time): surrounding blanks removed, no
  control characters.
* :data:`Paragraphs`: free text that may span lines (reasons, a topic, a reply): surrounding blanks
  removed, no NUL character (PostgreSQL text cannot hold it).
* :func:`utc_time`: a datetime from a form or body as aware UTC; a value without an offset (what an
  HTML ``datetime-local`` input sends) is read as UTC, the time zone every page shows.
* :func:`form_errors`: pydantic validation errors as ``{field: problem}`` for re-rendering a form.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import StringConstraints, ValidationError

OneLine = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]*$")]
Paragraphs = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^\x00]*$")]


def utc_time(when: dt.datetime) -> dt.datetime:
    """``when`` as aware UTC; naive values are taken to be UTC already."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def show_time(when: dt.datetime | None, *, seconds: bool = False) -> str:
    """``2026-12-03 14:00 UTC`` (``14:00:05`` with ``seconds``; empty text for None). Naive values are UTC."""
    if when is None:
        return ""
    return utc_time(when).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def form_errors(error: ValidationError) -> dict[str, str]:
    """``{field: problem}`` of a validation error, the field named by its top-level name."""
    found: dict[str, str] = {}
    for item in error.errors():
        loc = item.get("loc") or ("request",)
        found.setdefault(str(loc[0]), str(item.get("msg", "invalid")))
    return found
