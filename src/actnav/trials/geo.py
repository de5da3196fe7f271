"""Where the patient is and how far the trial sites are: ``--near POSTCODE|LAT,LON``, great-circle
distance, the nearest recruiting site of a trial.

* ``--near`` takes decimal degrees (``39.74,-104.98``: latitude first, WGS84 as ClinicalTrials.gov
  gives ``geoPoint``) or a US ZIP code (``80218`` or ZIP+4 ``80218-1234``), looked up offline in the
  ``zipcodes`` package (MIT licence; its table is embedded in the package and refreshed monthly by its
  maintainers from public US postal data; no network at run time). The point of a ZIP code is the
  table's centroid, so a distance is good to a few kilometres.
* Distances are haversine great-circle distances on a sphere of mean Earth radius 6,371.0088 km
  (IUGG mean radius R1; Moritz, "Geodetic Reference System 1980", J Geodesy 2000), within about
  0.5 % of the ellipsoidal distance: plenty for ranking sites.
* Site coordinates come from the record (``Site.lat``/``Site.lon``, filled from the API v2
  ``contactsLocationsModule.locations[].geoPoint``); the flattened TrialGPT records carry no sites.

Everything here is pure except :func:`parse_near`, which reads the package's postcode table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from actnav.errors import InputError
from actnav.trials.models import Site, TrialRecord

__all__ = [
    "EARTH_RADIUS_KM",
    "RECRUITING_SITE_STATUSES",
    "GeoPoint",
    "SiteDistance",
    "haversine_km",
    "nearest_site",
    "parse_near",
]

#: Mean Earth radius (IUGG R1 = (2a + b) / 3 of GRS80), kilometres.
EARTH_RADIUS_KM = 6371.0088

#: Site statuses that count as recruiting (API v2 ``locations[].status``).
RECRUITING_SITE_STATUSES = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION"})

_LAT_LON = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*[,;\s]\s*([+-]?\d+(?:\.\d+)?)\s*$")
_ZIP = re.compile(r"^\s*(\d{5})(?:-\d{4})?\s*$")


@dataclass(frozen=True)
class GeoPoint:
    """A point in decimal degrees (WGS84), with how it was given.

    Attributes:
        lat: latitude, -90 to 90 degrees (north positive).
        lon: longitude, -180 to 180 degrees (east positive).
        label: what the user wrote, resolved (``"80218 (Denver, CO)"`` or ``"39.74,-104.98"``).
    """

    lat: float
    lon: float
    label: str


@dataclass(frozen=True)
class SiteDistance:
    """The nearest site of a trial and its distance from the patient.

    Attributes:
        site: the site as the record gives it.
        distance_km: great-circle distance from the patient's point, kilometres.
    """

    site: Site
    distance_km: float


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points, kilometres.

    Args:
        lat1, lon1: first point, decimal degrees.
        lat2, lon2: second point, decimal degrees.

    Returns:
        The haversine distance on a sphere of radius :data:`EARTH_RADIUS_KM`.

    Source:
        R. W. Sinnott, "Virtues of the Haversine", Sky and Telescope 68(2):159, 1984.

    Example:
        >>> round(haversine_km(51.5007, -0.1246, 40.6892, -74.0445))  # Big Ben to the Statue of Liberty
        5575
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def parse_near(value: str) -> GeoPoint:
    """Read ``--near``: ``LAT,LON`` in decimal degrees or a US ZIP code.

    Args:
        value: the option's text.

    Returns:
        The point.

    Raises:
        InputError: not a coordinate pair in range and not a ZIP code the offline table knows
            (names ``--near``; exit code 2).
    """
    text = value.strip()
    m = _LAT_LON.match(text)
    if m:
        lat, lon = float(m.group(1)), float(m.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InputError(
                f"{value!r} is out of range (latitude -90..90, longitude -180..180)",
                where="--near",
                hint="write LAT,LON in decimal degrees, latitude first, or a US ZIP code",
            )
        return GeoPoint(lat, lon, f"{lat:g},{lon:g}")
    z = _ZIP.match(text)
    if z:
        import zipcodes  # the offline table is loaded on first use only

        found = zipcodes.matching(z.group(1))  # type: ignore[no-untyped-call]
        if found:
            row = found[0]
            label = f"{row['zip_code']} ({row['city']}, {row['state']})"
            return GeoPoint(float(row["lat"]), float(row["long"]), label)
        raise InputError(
            f"unknown US ZIP code {z.group(1)!r}",
            where="--near",
            hint="give a US ZIP code or LAT,LON in decimal degrees",
        )
    raise InputError(
        f"{value!r} is neither a US ZIP code nor LAT,LON",
        where="--near",
        hint="e.g. --near 80218 or --near 39.74,-104.98 (only US postcodes are in the offline table)",
    )


def recruiting_sites(record: TrialRecord) -> list[Site]:
    """The sites with coordinates that recruit: those whose status is recruiting, or, when the
    record gives no site statuses, every site of a trial whose overall status is recruiting."""
    located = [s for s in record.sites if s.lat is not None and s.lon is not None]
    if any(s.status for s in located):
        return [s for s in located if (s.status or "").upper() in RECRUITING_SITE_STATUSES]
    if (record.overall_status or "").upper() in RECRUITING_SITE_STATUSES:
        return located
    return []


def nearest_site(point: GeoPoint, sites: Iterable[Site]) -> SiteDistance | None:
    """The nearest of ``sites`` (those without coordinates are skipped), or None when none has any.

    Args:
        point: the patient's point.
        sites: candidate sites (e.g. :func:`recruiting_sites`).
    """
    best: SiteDistance | None = None
    for site in sites:
        if site.lat is None or site.lon is None:
            continue
        d = haversine_km(point.lat, point.lon, site.lat, site.lon)
        if best is None or d < best.distance_km:
            best = SiteDistance(site, d)
    return best
