"""The vein-to-vein calendar of a case: planned from product durations, recomputed when a date slips.

Milestones, each planned from the one before it::

    collection
      + shipment to manufacturing (programme default)       -> shipped_to_manufacturing
      + manufacturing turnaround (sourced or default)       -> release   (from the collection)
      release (shipped the same day)                        -> shipped_back
      + shipment back (programme default)                   -> received
      + start after receipt (programme default)             -> lymphodepletion_start
      + regimen length - 1 (label, duration_days)           -> lymphodepletion_end
      + shortest label window (infuse_days_after_min)       -> infusion (day 0)
      + label's period near the centre (weeks)              -> monitoring_end
      + label's period without driving (weeks)              -> no_driving_end
      + follow-up visit days (programme default)            -> follow_up_<day>

A milestone's date is, in this order: the recorded (actual) date, an expected date someone set
(a slip), or the computed one. Everything after a slipped or recorded date moves with it. A step
that happened is ``done``; the steps of the chain before the latest recorded one happened too
(``done``, undated when their date is not recorded): only the steps after it are planned.

Conflicts flagged: lymphodepletion ending outside the label's window before infusion, a regimen
whose recorded length differs from the label's, lymphodepletion starting before the product
arrived, milestones out of order. Steps whose date is past and not recorded are ``overdue``; those
within the notification horizon are ``due``.

Sources: product files (``lymphodepletion`` rows, monitoring statements through
:func:`actnav.toxicity.guidance.monitoring_plan`) and ``data/logistics/vein-to-vein.yaml``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actnav.eligibility.engine import SourceInfo, source_info
from actnav.errors import InputError
from actnav.knowledge.models import Lymphodepletion, Product
from actnav.logistics.data import Duration, VeinToVeinFile, load_vein_to_vein
from actnav.logistics.lifecycle import window_text

Status = Literal["done", "overdue", "due", "planned", "unknown"]

CHAIN: tuple[str, ...] = (
    "collection",
    "shipped_to_manufacturing",
    "release",
    "shipped_back",
    "received",
    "lymphodepletion_start",
    "lymphodepletion_end",
    "infusion",
)
"""The milestones in order up to infusion (the ones that can be recorded or slipped)."""

TITLES: dict[str, str] = {
    "collection": "Collection",
    "shipped_to_manufacturing": "Shipment to manufacturing",
    "release": "Product release (end of release testing)",
    "shipped_back": "Shipment back to the centre",
    "received": "Product received at the centre",
    "lymphodepletion_start": "Lymphodepletion starts",
    "lymphodepletion_end": "Lymphodepletion ends",
    "infusion": "Infusion (day 0)",
    "monitoring_end": "End of the period near the centre",
    "no_driving_end": "End of the period without driving",
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Milestone(_Out):
    key: str
    title: str
    date: dt.date | None
    day: int | None = Field(description="Days from infusion (day 0); negative before it.")
    status: Status
    basis: str = Field(description="recorded, expected (slip), or how it was computed.")
    programme_default: bool = False
    source: SourceInfo | None = None


class Conflict(_Out):
    kind: Literal[
        "lymphodepletion_window",
        "lymphodepletion_length",
        "lymphodepletion_before_receipt",
        "order",
    ]
    severity: Literal["conflict", "warning"]
    milestone: str
    text: str
    source: SourceInfo | None = None


class Schedule(_Out):
    """The calendar of one case (or a plan for a product) as of a date."""

    product_id: str
    brand: str
    indication_id: str | None
    as_of: dt.date
    milestones: tuple[Milestone, ...]
    conflicts: tuple[Conflict, ...]
    notes: tuple[str, ...]
    unconfirmed: bool = Field(description="Some duration rests on an R/U source or a programme default.")

    def milestone(self, key: str) -> Milestone:
        for item in self.milestones:
            if item.key == key:
                return item
        raise KeyError(key)


def lymphodepletion_row(product: Product, indication_id: str | None) -> Lymphodepletion | None:
    """The product's lymphodepletion row for the indication (the only row when none is named)."""
    rows = [
        row for row in product.lymphodepletion if indication_id is None or indication_id in row.applies_to
    ]
    if indication_id is None and len(rows) > 1:
        return None
    return rows[0] if rows else None


def _add(day: dt.date | None, days: int) -> dt.date | None:
    return None if day is None else day + dt.timedelta(days=days)


def build_schedule(
    product_id: str,
    indication_id: str | None,
    *,
    as_of: dt.date,
    actual: Mapping[str, dt.date] | None = None,
    expected: Mapping[str, dt.date] | None = None,
    planned_collection: dt.date | None = None,
) -> Schedule:
    """Plan (or re-plan) the calendar of a case.

    Args:
        product_id: product id, INN, brand or short name.
        indication_id: the product's indication id (picks the lymphodepletion row); may be None when
            the product has one row.
        as_of: today, for ``done``/``overdue``/``due``.
        actual: recorded dates by milestone key (:data:`CHAIN`): they are facts and are not moved;
            the milestones of the chain before the latest of them are done (undated if absent).
        expected: expected dates set by a user (a slip), by milestone key.
        planned_collection: the planned collection date when none is recorded or expected.

    Returns:
        :class:`Schedule` with the milestones in date order of the chain, conflicts and notes.

    Raises:
        InputError: unknown product, or a milestone key that is not in :data:`CHAIN`.
        DataFileError: a data file is invalid.
    """
    from actnav.toxicity.guidance import monitoring_plan, resolve_product

    product = resolve_product(product_id, where="product")
    data = load_vein_to_vein()
    actual = dict(actual or {})
    expected = dict(expected or {})
    for name, given in (("actual", actual), ("expected", expected)):
        for key in given:
            if key not in CHAIN:
                raise InputError(f"unknown milestone {key!r}", where=name, hint="one of " + ", ".join(CHAIN))
    notes: list[str] = []
    defaults = data.defaults
    manufacturing = data.manufacturing(product.id)
    ld = lymphodepletion_row(product, indication_id)
    if ld is None:
        notes.append(
            "no lymphodepletion row fits (choose the indication): lymphodepletion and infusion are not planned"
        )
    ld_source = source_info(ld.source, product.references) if ld is not None else None

    latest = max((CHAIN.index(key) for key in actual), default=-1)
    passed = {key for key in CHAIN[: max(latest, 0)] if key not in actual}
    dated: dict[str, Milestone] = {}
    used_defaults: list[tuple[str, Duration]] = []

    def place(
        key: str,
        computed: dt.date | None,
        how: str,
        *,
        duration: Duration | None = None,
        source: SourceInfo | None = None,
    ) -> dt.date | None:
        day: dt.date | None
        if key in actual:
            day, basis, is_default = actual[key], "recorded", False
        elif key in passed:
            day, basis, is_default = None, "done (date not recorded)", False
        elif key in expected:
            day, basis, is_default = expected[key], "expected (set by a user)", False
        else:
            day, basis = computed, how
            is_default = bool(duration and duration.programme_default)
            if duration is not None:
                used_defaults.append((key, duration))
        if source is None and duration is not None and basis == how:
            source = data.cite(duration.source)
        dated[key] = Milestone(
            key=key,
            title=TITLES[key],
            date=day,
            day=None,
            status="unknown",
            basis=basis,
            programme_default=is_default,
            source=source,
        )
        return day

    collection = place(
        "collection", planned_collection, "planned collection date" if planned_collection else "not set"
    )
    if collection is None:
        notes.append("the collection date is not set: give a planned date to compute the calendar")
    ship_out = defaults.shipment_to_manufacturing
    shipped = place(
        "shipped_to_manufacturing",
        _add(collection, ship_out.days),
        f"collection + {ship_out.days} d",
        duration=ship_out,
    )
    release_computed = _add(collection, manufacturing.days)
    if release_computed is not None and shipped is not None:
        release_computed = max(release_computed, shipped)
    release = place(
        "release",
        release_computed,
        f"collection + {manufacturing.days} d manufacturing",
        duration=manufacturing,
    )
    shipped_back = place("shipped_back", release, "shipped on the release day")
    ship_back = defaults.shipment_back
    received = place(
        "received", _add(shipped_back, ship_back.days), f"shipped + {ship_back.days} d", duration=ship_back
    )
    start_after = defaults.lymphodepletion_start_after_receipt
    ld_start = place(
        "lymphodepletion_start",
        _add(received, start_after.days) if ld is not None else None,
        f"received + {start_after.days} d",
        duration=start_after,
    )
    if ld is not None and ld.duration_days is None:
        notes.append("the label's lymphodepletion day schedule is not encoded: record its end date")
    length = ld.duration_days if ld is not None and ld.duration_days is not None else None
    ld_end = place(
        "lymphodepletion_end",
        _add(ld_start, length - 1) if length is not None else None,
        f"start + {length} days of regimen (label)" if length else "not known",
        source=ld_source,
    )
    gap_min = ld.infuse_days_after_min if ld is not None else None
    if ld is not None and gap_min is None:
        notes.append(
            "the label's window from lymphodepletion to infusion is not encoded: set the infusion date"
        )
    infusion = place(
        "infusion",
        _add(ld_end, int(gap_min)) if gap_min is not None else None,
        f"lymphodepletion end + {gap_min:g} d (label)" if gap_min is not None else "not known",
        source=ld_source,
    )

    after: list[Milestone] = []
    plan = monitoring_plan(product.id, infusion or as_of)
    plan_source = plan.monitoring[0].source if plan.monitoring else None
    for key, weeks in (("monitoring_end", plan.proximity_weeks), ("no_driving_end", plan.no_driving_weeks)):
        if weeks is None:
            notes.append(f"{TITLES[key].lower()}: the product file gives no period")
            continue
        after.append(
            Milestone(
                key=key,
                title=TITLES[key],
                date=_add(infusion, 7 * weeks),
                day=7 * weeks,
                status="unknown",
                basis=f"infusion + {weeks} weeks (label in force)",
                source=plan_source,
            )
        )
    follow_source = data.cite(defaults.follow_up_source)
    for day_n in defaults.follow_up_days_after_infusion:
        after.append(
            Milestone(
                key=f"follow_up_{day_n}",
                title=f"Follow-up visit, day {day_n}",
                date=_add(infusion, day_n),
                day=day_n,
                status="unknown",
                basis=f"infusion + {day_n} d",
                programme_default=True,
                source=follow_source,
            )
        )

    conflicts = _conflicts(product, ld, ld_source, dated, data)
    horizon = defaults.notify_horizon_days
    milestones = [
        _finish(m, infusion, as_of, horizon, done=m.key in actual or m.key in passed)
        for m in (*dated.values(), *after)
    ]
    # The chain keeps its order (a slip may put a date out of order: flagged, not hidden); the
    # milestones after infusion are listed by date.
    milestones[len(dated) :] = sorted(milestones[len(dated) :], key=lambda m: (m.date or dt.date.max, m.key))
    for key, duration in used_defaults:
        if duration.programme_default and key not in actual and key not in passed and key not in expected:
            notes.append(f"{TITLES[key]}: {duration.days} d is a programme default ({duration.basis})")
    unconfirmed = any(m.programme_default for m in milestones) or any(
        m.source is not None and not m.source.confirmed for m in milestones
    )
    return Schedule(
        product_id=product.id,
        brand=product.brand,
        indication_id=indication_id,
        as_of=as_of,
        milestones=tuple(milestones),
        conflicts=tuple(conflicts),
        notes=tuple(dict.fromkeys(notes)),
        unconfirmed=unconfirmed,
    )


def _finish(m: Milestone, infusion: dt.date | None, as_of: dt.date, horizon: int, *, done: bool) -> Milestone:
    day = (m.date - infusion).days if m.date is not None and infusion is not None else m.day
    if done:
        status: Status = "done"
    elif m.date is None:
        status = "unknown"
    elif m.date < as_of:
        status = "overdue"
    elif m.date <= as_of + dt.timedelta(days=horizon):
        status = "due"
    else:
        status = "planned"
    return m.model_copy(update={"day": day, "status": status})


def _conflicts(
    product: Product,
    ld: Lymphodepletion | None,
    ld_source: SourceInfo | None,
    dated: dict[str, Milestone],
    data: VeinToVeinFile,
) -> list[Conflict]:
    found: list[Conflict] = []
    previous: Milestone | None = None
    for key in CHAIN:
        current = dated[key]
        if current.date is None:
            continue
        if previous is not None and previous.date is not None and current.date < previous.date:
            found.append(
                Conflict(
                    kind="order",
                    severity="conflict",
                    milestone=key,
                    text=f"{current.title} ({current.date}) is before {previous.title.lower()} ({previous.date})",
                )
            )
        previous = current
    start, end, infusion = (
        dated[k].date for k in ("lymphodepletion_start", "lymphodepletion_end", "infusion")
    )
    received = dated["received"].date
    if ld is not None and end is not None and infusion is not None:
        gap = (infusion - end).days
        low, high = ld.infuse_days_after_min, ld.infuse_days_after_max
        if (low is not None and gap < low) or (high is not None and gap > high):
            window = window_text(low, high)
            found.append(
                Conflict(
                    kind="lymphodepletion_window",
                    severity="conflict",
                    milestone="infusion",
                    text=(
                        f"infusion on {infusion} is {gap} days after lymphodepletion ends ({end}); "
                        f"{product.brand}'s label allows {window}. Label: {ld.text}"
                    ),
                    source=ld_source,
                )
            )
    if ld is not None and ld.duration_days is not None and start is not None and end is not None:
        length = (end - start).days + 1
        if length != ld.duration_days:
            found.append(
                Conflict(
                    kind="lymphodepletion_length",
                    severity="warning",
                    milestone="lymphodepletion_end",
                    text=f"lymphodepletion over {length} days; the label's regimen takes {ld.duration_days} ({ld.regimen})",
                    source=ld_source,
                )
            )
    if start is not None and received is not None and start < received:
        text = data.lymphodepletion_before_receipt
        found.append(
            Conflict(
                kind="lymphodepletion_before_receipt",
                severity="warning",
                milestone="lymphodepletion_start",
                text=f"lymphodepletion starts on {start}, before the product is received ({received}). {text.text}",
                source=data.cite(text.source),
            )
        )
    return found
