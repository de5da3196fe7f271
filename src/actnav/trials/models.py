"""The trial record as actnav keeps it, whatever shape it arrived in.

Sources (API v2 study JSON, paged responses, NDJSON, zips, and the flattened TrialGPT record
shape) are all normalised to :class:`TrialRecord` by :mod:`actnav.trials.sources`; the original
record is kept verbatim in ``raw`` so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SourceFormat = Literal["ctgov_v2", "trialgpt_flat"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(_Model):
    """A trial site (``contactsLocationsModule.locations``); coordinates in decimal degrees."""

    facility: str | None = None
    city: str | None = None
    state: str | None = None
    postcode: str | None = None
    country: str | None = None
    status: str | None = Field(default=None, description="Site recruitment status, e.g. RECRUITING.")
    lat: float | None = None
    lon: float | None = None


class Intervention(_Model):
    type: str | None = Field(default=None, description="API v2 intervention type, e.g. BIOLOGICAL.")
    name: str
    description: str | None = None
    other_names: tuple[str, ...] = ()


class TrialRecord(_Model):
    """One trial, normalised.

    Attributes:
        nct_id: ``NCT`` followed by 8 digits.
        eligibility_text: the eligibility criteria as the registry gives them (API v2 markdown,
            with escapes such as ``\\>=`` left as they are; parsing unescapes).
        minimum_age_years / maximum_age_years: from the structured age fields, in years
            (months and weeks converted); None when absent.
        sex: ALL, FEMALE or MALE.
        last_update: the registry's last update posted date (None when the source has none);
            an older version never overwrites a newer one.
        raw: the source record, unchanged.
    """

    nct_id: str = Field(pattern=r"^NCT\d{8}$")
    title: str
    official_title: str | None = None
    brief_summary: str = ""
    conditions: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    interventions: tuple[Intervention, ...] = ()
    phases: tuple[str, ...] = ()
    study_type: str | None = None
    overall_status: str | None = None
    eligibility_text: str = ""
    minimum_age_years: float | None = None
    maximum_age_years: float | None = None
    sex: Literal["ALL", "FEMALE", "MALE"] = "ALL"
    sponsor: str | None = None
    sites: tuple[Site, ...] = ()
    last_update: dt.date | None = None
    source_format: SourceFormat
    raw: dict[str, Any] = Field(repr=False)
