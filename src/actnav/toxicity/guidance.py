"""Guidance that goes with a grade: CRS and ICANS management, tocilizumab dosing, monitoring plan.

* :func:`tocilizumab_dose`: 8 mg/kg IV over 1 hour (12 mg/kg below 30 kg), at most 800 mg a dose,
  repeated no sooner than every 8 hours, at most 3 doses in any 24 hours and 4 in total. A dose
  beyond a limit is refused with the reason and, when there is one, the earliest time it becomes
  possible.
* :func:`crs_management` / :func:`icans_management`: the lines of the product labels and guidelines
  for a grade, with doses computed for the patient's weight and each line sourced.
* :func:`monitoring_plan`: the product's monitoring statements in force on a date (proximity to
  the centre, driving, daily monitoring) read from the product files, the boxed warnings in force,
  plus what to watch for and when to call.
* :func:`resolve_product`: a product by its id (the INN with underscores, ``lifileucel``), its
  INN written with spaces or hyphens, its brand name (``Amtagvi``, any case) or a common short
  name (``axi-cel``).

Limits and lines live in ``actnav/data/toxicity/management.yaml``; monitoring facts come from
``actnav/data/products/*.yaml`` (``Product.monitoring``, ``LabeledText.in_force``). This is
decision support for clinicians; it does not replace the product label or local protocols.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.eligibility.engine import SourceInfo, source_info
from actnav.errors import InputError
from actnav.knowledge.loader import load_knowledge
from actnav.knowledge.models import LabeledText, Product, SourceRef
from actnav.toxicity.risk import ToxFile, ToxModel, check_number, cite, dedupe_sources, load_data_file

Drug = Literal["tocilizumab", "dexamethasone", "methylprednisolone", "none"]
Context = Literal["any", "with_crs", "without_crs"]

_MAX_WEIGHT_KG = 400.0  # the same bound as the input models (PLAUSIBLE_RANGES["weight_kg"])


class LowWeight(ToxModel):
    below_kg: float
    mg_per_kg: float
    source: SourceRef


class TocilizumabSpec(ToxModel):
    mg_per_kg: float
    max_mg_per_dose: float
    infusion_minutes: int
    route: str
    source: SourceRef
    low_weight: LowWeight | None = None
    min_interval_hours: float
    interval_source: SourceRef
    max_doses_24h: int
    max_doses_total: int
    limits_source: SourceRef


class Line(ToxModel):
    """One management line of the data file."""

    id: str
    grades: tuple[int, ...]
    drug: Drug
    context: Context = "any"
    text: str | None = None
    dose_mg: float | None = None
    dose_mg_per_kg: float | None = None
    route: str | None = None
    frequency: str | None = None
    duration: str | None = None
    when: str | None = None
    alternative_to: str | None = None
    products: tuple[str, ...] = ()
    source: SourceRef

    @model_validator(mode="after")
    def _dose_shape(self) -> Line:
        if self.dose_mg is not None and self.dose_mg_per_kg is not None:
            raise ValueError(f"line {self.id!r}: give dose_mg or dose_mg_per_kg, not both")
        if self.drug in ("dexamethasone", "methylprednisolone") and (
            self.dose_mg is None and self.dose_mg_per_kg is None
        ):
            raise ValueError(f"line {self.id!r}: a corticosteroid line needs a dose")
        if self.drug == "none" and not self.text:
            raise ValueError(f"line {self.id!r}: a line without a drug needs text")
        return self


class PatientLine(ToxModel):
    id: str
    text: str
    source: SourceRef


class ManagementFile(ToxFile):
    tocilizumab: TocilizumabSpec
    crs: tuple[Line, ...]
    icans: tuple[Line, ...]
    patient_watch_for: tuple[PatientLine, ...]
    when_to_call: tuple[PatientLine, ...]

    @model_validator(mode="after")
    def _ids(self) -> ManagementFile:
        for name, lines in (("crs", self.crs), ("icans", self.icans)):
            ids = [line.id for line in lines]
            if len(ids) != len(set(ids)):
                raise ValueError(f"{name}: line ids must be unique")
            for line in lines:
                if line.alternative_to is not None and line.alternative_to not in ids:
                    raise ValueError(
                        f"{name}: line {line.id!r} is an alternative to unknown {line.alternative_to!r}"
                    )
        return self


@cache
def load_management() -> ManagementFile:
    """``management.yaml``, validated once per process.

    Raises:
        DataFileError: the file is invalid.
    """
    return load_data_file(ManagementFile, "management.yaml")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Tocilizumab
# ---------------------------------------------------------------------------------------------


class DoseAdvice(_Out):
    """Whether a tocilizumab dose may be given now, and how much."""

    allowed: bool
    dose_mg: float | None = Field(description="The dose to give, or null when refused.")
    calculated_mg: float = Field(description="Weight x mg/kg, capped at the maximum per dose.")
    weight_kg: float
    mg_per_kg: float
    capped: bool = Field(description="True when weight x mg/kg exceeded the maximum per dose.")
    max_mg_per_dose: float
    route: str
    infusion_minutes: int
    at: dt.datetime
    doses_in_last_24h: int
    doses_total: int
    next_allowed_at: dt.datetime | None = Field(
        description="Earliest time a further dose is allowed; null when the total limit is reached."
    )
    refusal_reasons: list[str]
    text: str
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


def check_weight(weight_kg: float, *, where: str = "weight_kg") -> float:
    """A body weight in kg, checked: a number above 0 and at most 400.

    Raises:
        InputError: not a number, not above 0, or above 400 kg (``where`` names the field).
    """
    return check_number(weight_kg, where, allow_low=False, high=_MAX_WEIGHT_KG, unit="kg")


def _weight(weight_kg: float) -> float:
    return check_weight(weight_kg)


def _tocilizumab_mg(spec: TocilizumabSpec, weight: float) -> tuple[float, float, bool, list[SourceRef]]:
    """(dose mg, mg/kg, capped, sources) for a weight."""
    used = [spec.source]
    per_kg = spec.mg_per_kg
    if spec.low_weight is not None and weight < spec.low_weight.below_kg:
        per_kg = spec.low_weight.mg_per_kg
        used.append(spec.low_weight.source)
    raw = round(weight * per_kg, 1)
    capped = raw > spec.max_mg_per_dose
    return (spec.max_mg_per_dose if capped else raw), per_kg, capped, used


def _fmt(moment: dt.datetime) -> str:
    return moment.isoformat(sep=" ", timespec="minutes")


def tocilizumab_dose(
    weight_kg: float,
    doses_given: Sequence[tuple[dt.datetime, float | None]] = (),
    at: dt.datetime | None = None,
) -> DoseAdvice:
    """The next tocilizumab dose for CRS, or its refusal with the reason.

    Args:
        weight_kg: body weight, kg (> 0 and at most 400).
        doses_given: earlier doses as ``(time, mg)``; ``mg`` may be ``None`` when the amount was
            not recorded (the dose still counts towards the limits). Times must not be after
            ``at`` and must all be naive or all timezone-aware, like ``at``.
        at: when the dose would be given (default: now, in the time zone of ``doses_given``).

    Returns:
        :class:`DoseAdvice`. ``allowed`` is False, ``dose_mg`` null and ``refusal_reasons`` say
        why when the dose would be the 5th in total, the 4th within 24 hours (a dose exactly 24 h
        earlier no longer counts) or less than 8 hours after the previous dose.

    Raises:
        InputError: an implausible weight (``weight_kg``), a dose of 0 mg or less or one given
            after ``at`` (``doses_given[i]``), or naive and aware times mixed (``at``).

    Source:
        Yescarta/Tecartus label CRS tables and NCCN via clinical-reference.md 6.1 [V]; 12 mg/kg
        below 30 kg from secondary copies of the Actemra label [S].
    """
    data = load_management()
    spec = data.tocilizumab
    weight = _weight(weight_kg)
    doses: list[tuple[dt.datetime, float | None]] = []
    for i, item in enumerate(doses_given):
        try:
            when, mg = item
        except (TypeError, ValueError) as exc:
            raise InputError("must be a (time, mg) pair", where=f"doses_given[{i}]") from exc
        if not isinstance(when, dt.datetime):
            raise InputError(f"time must be a datetime, got {when!r}", where=f"doses_given[{i}]")
        amount = (
            None
            if mg is None
            else check_number(mg, f"doses_given[{i}]", allow_low=False, high=10_000.0, unit="mg")
        )
        doses.append((when, amount))
    if at is None:
        tz = doses[0][0].tzinfo if doses else None
        at = dt.datetime.now(tz)
    aware = at.tzinfo is not None
    for i, (when, _) in enumerate(doses):
        if (when.tzinfo is not None) != aware:
            raise InputError("dose times and 'at' must all be naive or all timezone-aware", where="at")
        if when > at:
            raise InputError(f"dose time {_fmt(when)} is after {_fmt(at)}", where=f"doses_given[{i}]")
    doses.sort(key=lambda d: d[0])

    mg, per_kg, capped, used = _tocilizumab_mg(spec, weight)
    used = [*used, spec.limits_source, spec.interval_source]
    window_start = at - dt.timedelta(hours=24)
    in_window = [when for when, _ in doses if when > window_start]
    reasons: list[str] = []
    notes: list[str] = []
    candidates: list[dt.datetime] = []
    never = False
    if len(doses) >= spec.max_doses_total:
        never = True
        reasons.append(
            f"{len(doses)} doses already given; the limit is {spec.max_doses_total} doses in total."
        )
    if len(in_window) >= spec.max_doses_24h:
        free_at = in_window[len(in_window) - spec.max_doses_24h] + dt.timedelta(hours=24)
        candidates.append(free_at)
        times = ", ".join(_fmt(t) for t in in_window)
        reasons.append(
            f"{len(in_window)} doses in the 24 hours before {_fmt(at)} ({times}); "
            f"the limit is {spec.max_doses_24h} doses in 24 hours; a further dose is "
            f"possible from {_fmt(free_at)}."
        )
    if doses:
        last = doses[-1][0]
        gap = at - last
        if gap < dt.timedelta(hours=spec.min_interval_hours):
            ready = last + dt.timedelta(hours=spec.min_interval_hours)
            candidates.append(ready)
            hours = gap.total_seconds() / 3600
            reasons.append(
                f"The last dose was {hours:.1f} hours ago ({_fmt(last)}); doses are "
                f"repeated no sooner than every {spec.min_interval_hours:g} hours, "
                f"i.e. from {_fmt(ready)}."
            )
    if any(given is not None and given > spec.max_mg_per_dose for _, given in doses):
        notes.append(f"A recorded dose exceeded the {spec.max_mg_per_dose:g} mg maximum per dose.")
    if capped:
        notes.append(
            f"{weight:g} kg x {per_kg:g} mg/kg = {weight * per_kg:g} mg, capped at "
            f"{spec.max_mg_per_dose:g} mg."
        )
    allowed = not reasons
    next_allowed: dt.datetime | None
    if never:
        next_allowed = None
    elif allowed:
        next_allowed = at
    else:
        next_allowed = max(candidates)
    text = (
        f"Tocilizumab {mg:g} mg ({per_kg:g} mg/kg, maximum {spec.max_mg_per_dose:g} mg) "
        f"{spec.route} over {spec.infusion_minutes} minutes" + ("" if allowed else ": not allowed now")
    )
    return DoseAdvice(
        allowed=allowed,
        dose_mg=mg if allowed else None,
        calculated_mg=mg,
        weight_kg=weight,
        mg_per_kg=per_kg,
        capped=capped,
        max_mg_per_dose=spec.max_mg_per_dose,
        route=spec.route,
        infusion_minutes=spec.infusion_minutes,
        at=at,
        doses_in_last_24h=len(in_window),
        doses_total=len(doses),
        next_allowed_at=next_allowed,
        refusal_reasons=reasons,
        text=text,
        notes=notes,
        sources=dedupe_sources([cite(data, s) for s in used]),
        unconfirmed=not all(s.verification.confirmed for s in used),
    )


# ---------------------------------------------------------------------------------------------
# CRS and ICANS management
# ---------------------------------------------------------------------------------------------


class GuidanceLine(_Out):
    """One sourced management line, with the dose computed for the patient."""

    id: str
    drug: Drug
    text: str
    dose_mg: float | None = None
    dose_basis: str | None = None
    route: str | None = None
    frequency: str | None = None
    duration: str | None = None
    when: str | None = None
    alternative_to: str | None = None
    products: list[str] = Field(default_factory=list, description="Label-specific line: the products.")
    allowed: bool | None = Field(
        default=None,
        description="Tocilizumab lines checked against the doses already given: whether a dose may be "
        "given now; null when not checked (no doses recorded) or not a tocilizumab line.",
    )
    refusal_reasons: list[str] = Field(default_factory=list, description="Why a dose is not allowed now.")
    next_allowed_at: dt.datetime | None = Field(
        default=None, description="When a refused tocilizumab dose becomes possible; null if never."
    )
    source: SourceInfo
    unconfirmed: bool


class Management(_Out):
    condition: Literal["CRS", "ICANS"]
    grade: int
    weight_kg: float
    product_id: str | None
    concurrent_crs: bool | None = None
    lines: list[GuidanceLine]
    tocilizumab: DoseAdvice | None = Field(
        default=None, description="The dose check against the doses already given, when any were given."
    )
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


def _grade(grade: int) -> int:
    if isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade <= 4:
        raise InputError(f"must be an integer grade 0-4, got {grade!r}", where="grade")
    return grade


# Common short names of the products (the INN's first part + "-cel"), for convenience.
SHORT_NAMES: dict[str, str] = {
    "tisa_cel": "tisagenlecleucel",
    "axi_cel": "axicabtagene_ciloleucel",
    "brexu_cel": "brexucabtagene_autoleucel",
    "liso_cel": "lisocabtagene_maraleucel",
    "ide_cel": "idecabtagene_vicleucel",
    "cilta_cel": "ciltacabtagene_autoleucel",
    "afami_cel": "afamitresgene_autoleucel",
    "obe_cel": "obecabtagene_autoleucel",
}


def _name_key(name: str) -> str:
    """Lower case, trademark signs dropped, spaces and hyphens read as underscores."""
    text = name.replace("\u00ae", "").replace("\u2122", "").strip().lower()
    return re.sub(r"[\s_-]+", "_", text).strip("_")


def resolve_product(name: str, *, where: str = "product_id") -> Product:
    """The product named by its id, INN, brand name or common short name (case ignored).

    Args:
        name: ``lifileucel``, ``Lifileucel``, ``afamitresgene autoleucel``, ``Tecelra``,
            ``AUCATZYL``, ``obe-cel`` ...
        where: the field name used in errors.

    Returns:
        The product.

    Raises:
        InputError: not text, or no product has that id, INN, brand or short name (``where``).
        DataFileError: a product file is invalid.
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"must be a product id or brand name, got {name!r}", where=where)
    products = load_knowledge().products
    key = _name_key(name)
    key = SHORT_NAMES.get(key, key)
    for product in products:
        if key in (_name_key(product.id), _name_key(product.brand)):
            return product
    known = ", ".join(f"{p.id} ({p.brand})" for p in products)
    raise InputError(f"unknown product {name!r}", where=where, hint=f"known: {known}")


def resolve_product_id(name: str, *, where: str = "product_id") -> str:
    """The product id (INN with underscores) for an id, INN, brand or short name; see
    :func:`resolve_product`."""
    return resolve_product(name, where=where).id


def _product(product_id: str | None) -> Product | None:
    if product_id is None:
        return None
    return resolve_product(product_id)


_CONTEXT_TEXT: dict[str, str] = {"with_crs": "with concurrent CRS", "without_crs": "without CRS"}


def _render(
    data: ManagementFile, line: Line, weight: float, advice: DoseAdvice | None = None
) -> GuidanceLine:
    used = [line.source]
    dose: float | None = None
    basis: str | None = None
    route, frequency = line.route, line.frequency
    dose_part = ""
    if line.drug == "tocilizumab":
        spec = data.tocilizumab
        dose, per_kg, capped, extra = _tocilizumab_mg(spec, weight)
        used += [*extra, spec.limits_source]
        basis = f"{per_kg:g} mg/kg x {weight:g} kg"
        if capped:
            basis += f", capped at {spec.max_mg_per_dose:g} mg"
        route = route or spec.route
        dose_part = (
            f"tocilizumab {dose:g} mg {route} over {spec.infusion_minutes} minutes "
            f"(max {spec.max_mg_per_dose:g} mg a dose, {spec.max_doses_24h} doses in 24 h, "
            f"{spec.max_doses_total} in total)"
        )
    elif line.drug != "none":
        if line.dose_mg_per_kg is not None:
            dose = round(line.dose_mg_per_kg * weight, 1)
            basis = f"{line.dose_mg_per_kg:g} mg/kg x {weight:g} kg"
        else:
            dose = line.dose_mg
            basis = "fixed dose"
        dose_part = " ".join(p for p in (line.drug, f"{dose:g} mg", route, frequency) if p)
        if line.duration:
            dose_part += f", {line.duration}"
    conditions = [c for c in (_CONTEXT_TEXT.get(line.context), line.when) if c]
    if dose_part and conditions:
        dose_part = f"{', '.join(conditions)}: {dose_part}"
    elif conditions:
        dose_part = f"{', '.join(conditions)}:"
    if dose_part and line.text:
        joiner = " " if dose_part.endswith(":") else ". "
        text = f"{dose_part}{joiner}{line.text}"
    else:
        text = dose_part or line.text or ""
    text = text[0].upper() + text[1:]
    if not text.endswith("."):
        text += "."
    allowed: bool | None = None
    reasons: list[str] = []
    next_at: dt.datetime | None = None
    if line.drug == "tocilizumab" and advice is not None:
        allowed, reasons, next_at = advice.allowed, list(advice.refusal_reasons), advice.next_allowed_at
        if not allowed:
            dose = None
            text += " Not allowed now: " + " ".join(reasons)
    return GuidanceLine(
        id=line.id,
        drug=line.drug,
        text=text,
        dose_mg=dose,
        dose_basis=basis,
        route=route,
        frequency=frequency,
        duration=line.duration,
        when=line.when,
        alternative_to=line.alternative_to,
        products=list(line.products),
        allowed=allowed,
        refusal_reasons=reasons,
        next_allowed_at=next_at,
        source=cite(data, line.source),
        unconfirmed=not all(s.verification.confirmed for s in used),
    )


def _select(lines: Sequence[Line], grade: int, product: Product | None, contexts: set[Context]) -> list[Line]:
    out = []
    for line in lines:
        if grade not in line.grades or line.context not in contexts:
            continue
        if line.products and product is not None and product.id not in line.products:
            continue
        out.append(line)
    return out


def _dose_check(
    weight: float, given: Sequence[tuple[dt.datetime, float | None]] | None, at: dt.datetime | None
) -> DoseAdvice | None:
    """The tocilizumab check against doses already given, or None when none were given."""
    if not given:
        return None
    if at is None:
        raise InputError("is required to check tocilizumab doses already given", where="at")
    return tocilizumab_dose(weight, given, at=at)


def _management(
    condition: Literal["CRS", "ICANS"],
    lines: list[Line],
    grade: int,
    weight: float,
    product: Product | None,
    data: ManagementFile,
    notes: list[str],
    concurrent_crs: bool | None = None,
    advice: DoseAdvice | None = None,
) -> Management:
    rendered = [_render(data, line, weight, advice) for line in lines]
    if product is None and any(line.products for line in lines):
        notes.append(
            "Lines marked with products come from those products' labels; pass product_id to keep "
            "only the lines for the patient's product."
        )
    if any(line.unconfirmed for line in rendered):
        notes.append("Lines marked unconfirmed rest on recollection [R] or uncertain [U] sources.")
    sources = dedupe_sources([line.source for line in rendered])
    return Management(
        condition=condition,
        grade=grade,
        weight_kg=weight,
        product_id=product.id if product else None,
        concurrent_crs=concurrent_crs,
        lines=rendered,
        tocilizumab=advice,
        notes=notes,
        sources=sources,
        unconfirmed=any(line.unconfirmed for line in rendered),
    )


def crs_management(
    grade: int,
    weight_kg: float,
    *,
    product_id: str | None = None,
    tocilizumab_given: Sequence[tuple[dt.datetime, float | None]] | None = None,
    at: dt.datetime | None = None,
) -> Management:
    """CRS management for an ASTCT grade, with doses for the patient's weight.

    Args:
        grade: ASTCT CRS grade 0-4 (0: no CRS-directed treatment).
        weight_kg: body weight, kg.
        product_id: the product infused (id such as ``axicabtagene_ciloleucel``, or brand name);
            keeps only that product's label lines.
        tocilizumab_given: tocilizumab doses already given, ``(time, mg or None)``. When given,
            every tocilizumab line is checked with :func:`tocilizumab_dose` at ``at``: a dose
            beyond a limit (4th in 24 hours, 5th in total, sooner than 8 hours) is refused with
            the reason (``allowed`` False, ``dose_mg`` null).
        at: when the management applies (required with ``tocilizumab_given``).

    Returns:
        :class:`Management` with each line's dose, source and unconfirmed flag. Alternatives
        (``alternative_to``) are choices, not additions.

    Raises:
        InputError: grade outside 0-4 (``grade``), implausible weight (``weight_kg``), unknown
            product (``product_id``), bad doses given (``doses_given[i]``) or a missing ``at``.

    Source:
        clinical-reference.md section 6.1-6.2 (label tables, NCCN, EHO), per line.
    """
    data = load_management()
    g, weight, product = _grade(grade), _weight(weight_kg), _product(product_id)
    advice = _dose_check(weight, tocilizumab_given, at)
    notes = [] if g else ["No CRS: no CRS-directed treatment."]
    lines = _select(data.crs, g, product, {"any"}) if g else []
    return _management("CRS", lines, g, weight, product, data, notes, advice=advice)


def icans_management(
    grade: int,
    weight_kg: float,
    *,
    concurrent_crs: bool | None = None,
    product_id: str | None = None,
    tocilizumab_given: Sequence[tuple[dt.datetime, float | None]] | None = None,
    at: dt.datetime | None = None,
) -> Management:
    """ICANS management for an ASTCT grade, with doses for the patient's weight.

    Args:
        grade: ASTCT ICANS grade 0-4.
        weight_kg: body weight, kg.
        concurrent_crs: whether CRS is present now; tocilizumab lines appear only with CRS. When
            None, both the with-CRS and without-CRS lines are shown.
        product_id: the product infused (id or brand name); keeps only that product's label lines.
        tocilizumab_given: tocilizumab doses already given; tocilizumab lines are checked as in
            :func:`crs_management`.
        at: when the management applies (required with ``tocilizumab_given``).

    Returns:
        :class:`Management`.

    Raises:
        InputError: grade outside 0-4, implausible weight, unknown product, bad doses given, or
            ``concurrent_crs`` not a boolean.

    Source:
        clinical-reference.md section 6.3 (NCCN, label tables, PMC10573998), per line.
    """
    data = load_management()
    g, weight, product = _grade(grade), _weight(weight_kg), _product(product_id)
    advice = _dose_check(weight, tocilizumab_given, at)
    if concurrent_crs is not None and not isinstance(concurrent_crs, bool):
        raise InputError(f"must be true, false or null, got {concurrent_crs!r}", where="concurrent_crs")
    contexts: set[Context] = {"any"}
    if concurrent_crs is None:
        contexts |= {"with_crs", "without_crs"}
    else:
        contexts.add("with_crs" if concurrent_crs else "without_crs")
    notes = [] if g else ["No ICANS: no ICANS-directed treatment."]
    if g and concurrent_crs is None:
        notes.append("CRS status not given: lines for ICANS with and without concurrent CRS are both shown.")
    if g == 1:
        notes.append(
            "The reference lists no corticosteroid line for grade 1 ICANS; supportive care and "
            "close neurological assessment."
        )
    lines = _select(data.icans, g, product, contexts) if g else []
    return _management("ICANS", lines, g, weight, product, data, notes, concurrent_crs, advice)


# ---------------------------------------------------------------------------------------------
# Monitoring plan after infusion
# ---------------------------------------------------------------------------------------------


PlanKind = Literal[
    "monitoring",
    "proximity_and_driving",
    "administration",
    "rems",
    "boxed_warning",
    "watch_for",
    "when_to_call",
]


class PlanLine(_Out):
    kind: PlanKind
    text: str
    effective_from: dt.date | None = None
    effective_until: dt.date | None = None
    source: SourceInfo


class MonitoringPlan(_Out):
    product_id: str
    brand: str
    modality: str
    as_of: dt.date
    label_revision: str | None = Field(description="Latest label revision on or before as_of.")
    proximity_weeks: int | None = Field(description="Stay near the treatment centre, weeks (label in force).")
    no_driving_weeks: int | None = Field(description="No driving or hazardous activities, weeks.")
    monitoring: list[PlanLine]
    boxed_warnings: list[PlanLine] = Field(description="The label's boxed warnings in force on as_of.")
    watch_for: list[PlanLine]
    when_to_call: list[PlanLine]
    missing: list[str] = Field(description="What the product file does not provide.")
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


_PROXIMITY = re.compile(r"proximity[^.;]*?at least (\d+) weeks", re.IGNORECASE)
_DRIVING = re.compile(r"\bdriv(?:e|ing)\b[^.;]*?at least (\d+) weeks", re.IGNORECASE)


def _kind(text: str) -> Literal["monitoring", "proximity_and_driving", "administration"]:
    lowered = text.lower()
    if any(word in lowered for word in ("premedicat", "administer", "after infusion:", "second split dose")):
        return "administration"
    if "monitor" in lowered:
        return "monitoring"
    if "proximity" in lowered or "drive" in lowered:
        return "proximity_and_driving"
    return "monitoring"


def _weeks(pattern: re.Pattern[str], texts: list[LabeledText]) -> tuple[int | None, list[SourceRef], bool]:
    found: list[tuple[int, SourceRef]] = []
    for item in texts:
        for match in pattern.finditer(item.text):
            found.append((int(match.group(1)), item.source))
    if not found:
        return None, [], False
    values = {weeks for weeks, _ in found}
    return max(values), [src for _, src in found], len(values) > 1


def monitoring_plan(product_id: str, as_of: dt.date) -> MonitoringPlan:
    """The post-infusion monitoring plan of a product as of a date (label in force then).

    Args:
        product_id: the product id (INN with underscores, e.g. ``tisagenlecleucel``,
            ``lifileucel``, ``afamitresgene_autoleucel``, ``obecabtagene_autoleucel``), or its
            brand name in any case (``Kymriah``, ``AMTAGVI``, ``Tecelra``, ``aucatzyl``), or a
            short name (``obe-cel``); see :func:`resolve_product`.
        as_of: the date the plan is for (June 2025 labels shortened the periods to 2 weeks).

    Returns:
        :class:`MonitoringPlan`: the product file's monitoring statements in force on ``as_of``
        with the proximity and no-driving periods read from them; what to watch for and when to
        call (class-wide lines of ``management.yaml``, since the product files do not carry them);
        ``missing`` lists what the product file lacks.

    Raises:
        InputError: unknown product (``product_id``) or ``as_of`` not a date.
        DataFileError: a product file is invalid.

    Source:
        Product files (``Product.monitoring``, ``Product.rems``); FDA safety communication of 26
        June 2025 and Cancers 2025;17(19):3216 as cited there; management.yaml for watch/call.
    """
    if not isinstance(as_of, dt.date):
        raise InputError(f"must be a date, got {as_of!r}", where="as_of")
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    product = resolve_product(product_id)
    data = load_management()
    notes: list[str] = []
    missing: list[str] = []
    if as_of < product.first_approval:
        approved = product.first_approval.isoformat()
        notes.append(f"{product.brand} was first approved on {approved}, after {as_of.isoformat()}.")
    revisions = [r for r in product.label_revisions if r.date <= as_of]
    revision = max(revisions, key=lambda r: r.date).revision if revisions else None

    in_force = [item for item in product.monitoring if item.in_force(as_of)]
    rems = [item for item in product.rems if item.in_force(as_of)]
    used: list[SourceInfo] = []

    def plan(kind: PlanKind, item: LabeledText) -> PlanLine:
        info = source_info(item.source, product.references)
        assert info is not None
        used.append(info)
        return PlanLine(
            kind=kind,
            text=item.text,
            effective_from=item.effective_from,
            effective_until=item.effective_until,
            source=info,
        )

    monitoring = [plan(_kind(item.text), item) for item in in_force] + [plan("rems", item) for item in rems]
    warnings = [plan("boxed_warning", item) for item in product.boxed_warnings if item.in_force(as_of)]
    proximity, prox_sources, prox_conflict = _weeks(_PROXIMITY, in_force)
    driving, drive_sources, drive_conflict = _weeks(_DRIVING, in_force)
    secondary = sorted({s.verification.value for s in (*prox_sources, *drive_sources)} - {"V"})
    if secondary:
        notes.append(
            f"The proximity and driving periods rest on a source tagged {', '.join(secondary)} "
            "(not the label itself): confirm them against the current label."
        )
    if proximity is None:
        missing.append("period to stay near the treatment centre")
    if driving is None:
        missing.append("period without driving or hazardous activities")
    if not any(_kind(item.text) == "monitoring" for item in in_force):
        missing.append("how long and how often the patient is monitored")
    if prox_conflict or drive_conflict:
        notes.append("Statements in force give different periods; the longest is shown.")
    missing.append("signs to watch for and when to call (not in the product file; class-wide lines shown)")
    if product.modality != "CAR-T":
        notes.append(
            f"{product.brand} is a {product.modality} product: the watch-for and when-to-call lines are "
            "written for CAR-T; its own boxed warnings (listed) say what else to watch for."
        )

    def patient(kind: Literal["watch_for", "when_to_call"], line: PatientLine) -> PlanLine:
        info = cite(data, line.source)
        used.append(info)
        return PlanLine(kind=kind, text=line.text, source=info)

    watch = [patient("watch_for", line) for line in data.patient_watch_for]
    call = [patient("when_to_call", line) for line in data.when_to_call]
    sources = dedupe_sources(used)
    return MonitoringPlan(
        product_id=product.id,
        brand=product.brand,
        modality=product.modality,
        as_of=as_of,
        label_revision=revision,
        proximity_weeks=proximity,
        no_driving_weeks=driving,
        monitoring=monitoring,
        boxed_warnings=warnings,
        watch_for=watch,
        when_to_call=call,
        missing=missing,
        notes=notes,
        sources=sources,
        unconfirmed=not all(s.confirmed for s in sources),
    )
