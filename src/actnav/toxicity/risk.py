"""Risk scores after (and before) CAR-T infusion: EASIX, m-EASIX, CAR-HEMATOTOX and HScore.

Formulas and cut-offs live in ``actnav/data/toxicity/risk-scores.yaml``; every cut-off cites its
source with a verification tag (V seen, S secondary, R recollection, U uncertain, see
``clinical-reference.md`` section 0). A result rests on an R or U value exactly when its
``unconfirmed`` flag is True; the report must then say "unconfirmed".

* **EASIX** = LDH [U/L] x creatinine [mg/dL] / platelets [10^9/L]; **m-EASIX** puts CRP [mg/dL]
  in place of creatinine. No validated CAR-T cut-off exists, so no bands are built in: optional
  thresholds are configuration (empty by default) and the value and its log2 are reported.
* **CAR-HEMATOTOX** (Rejeski 2021): five pre-lymphodepletion markers, 0-7 points, low 0-1 / high
  >= 2. The risk groups are verified; the point table is recollection (R) and its exact-boundary
  handling is undefined (U), so every result is unconfirmed and values on a cut-off are listed.
* **HScore** (Fardet 2014): nine items, 0-337 points, >= 169 the usual diagnostic cut-off. The
  probability formula is not encoded (two public versions disagree).

Units are converted with pint (creatinine umol/L -> mg/dL through its molar mass, CRP mg/L ->
mg/dL, platelets per uL -> 10^9/L). The module also holds the small data-file plumbing shared by
the other calculators of this package (:func:`load_data_file`, :class:`Rule`, :func:`cite`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Sequence
from functools import cache
from types import ModuleType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.eligibility.engine import SourceInfo, source_info
from actnav.errors import DataFileError, InputError, UnitError
from actnav.knowledge.loader import load_data
from actnav.knowledge.models import Reference, SourceRef

# ---------------------------------------------------------------------------------------------
# Data-file plumbing shared by the toxicity calculators
# ---------------------------------------------------------------------------------------------


class ToxModel(BaseModel):
    """Base of the data-file schemas: unknown keys are rejected, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ToxFile(ToxModel):
    """Header every toxicity data file carries; ``references`` are cited by ``source.ref``."""

    schema_version: Literal[1] = 1
    id: str
    version: str
    references: dict[str, Reference]
    remarks: str | None = None


Op = Literal["lt", "le", "gt", "ge"]


class Rule(ToxModel):
    """One row of a cut-off table: ``result`` applies when ``x <op> value``.

    Rules are read in order and the first that matches wins, so a table lists its most severe
    row first. ``source`` is optional on rows that share the table's source.
    """

    result: int
    op: Op
    value: float
    source: SourceRef | None = None


def compare(x: float, op: Op, value: float) -> bool:
    """``x <op> value`` for the four comparison operators of :class:`Rule`."""
    if op == "lt":
        return x < value
    if op == "le":
        return x <= value
    if op == "gt":
        return x > value
    return x >= value


def apply_rules(rules: Sequence[Rule], x: float, default: int = 0) -> tuple[int, Rule | None]:
    """The result of the first rule ``x`` meets, or ``default`` (with no rule) when none does."""
    for rule in rules:
        if compare(x, rule.op, rule.value):
            return rule.result, rule
    return default, None


M = TypeVar("M", bound=ToxFile)


def load_data_file(model: type[M], name: str) -> M:
    """Read and validate ``actnav/data/toxicity/<name>`` and check every cited reference exists.

    Args:
        model: the pydantic schema of the file.
        name: file name inside ``data/toxicity``.

    Returns:
        The validated file.

    Raises:
        DataFileError: the file is unreadable, fails its schema, or cites an undeclared reference.
    """
    label = f"toxicity/{name}"
    parsed = load_data(model, label)
    for where, source in iter_sources(parsed):
        if source.ref not in parsed.references:
            raise DataFileError(f"unknown reference {source.ref!r}", where=f"{label}: {where}.ref")
    return parsed


def iter_sources(node: Any, path: str = "") -> Iterator[tuple[str, SourceRef]]:
    """Every :class:`SourceRef` inside a parsed file, with a dotted path to it."""
    if isinstance(node, SourceRef):
        yield path, node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from iter_sources(getattr(node, name), f"{path}.{name}" if path else name)
    elif isinstance(node, (tuple, list)):
        for i, item in enumerate(node):
            yield from iter_sources(item, f"{path}[{i}]")
    elif isinstance(node, dict):
        for key, item in node.items():
            yield from iter_sources(item, f"{path}.{key}")


def cite(file: ToxFile, source: SourceRef) -> SourceInfo:
    """A data-file source as shown in results (citation, section, url, tag, confirmed)."""
    info = source_info(source, file.references)
    assert info is not None  # a SourceRef always gives a SourceInfo
    return info


def dedupe_sources(sources: Sequence[SourceInfo]) -> list[SourceInfo]:
    """Sources in first-seen order without repeats."""
    seen: set[str] = set()
    out: list[SourceInfo] = []
    for src in sources:
        key = src.model_dump_json()
        if key not in seen:
            seen.add(key)
            out.append(src)
    return out


def check_number(
    value: float,
    field: str,
    *,
    low: float = 0.0,
    high: float | None = None,
    unit: str = "",
    allow_low: bool = True,
) -> float:
    """Validate a measured number, raising :class:`InputError` naming ``field``.

    Args:
        value: the number.
        field: the input's name, used in the error.
        low: smallest accepted value (default 0: counts and concentrations are never negative).
        high: largest plausible value; above it the unit is probably wrong.
        unit: the unit ``value`` is in, for the message.
        allow_low: whether ``low`` itself is accepted (False for divisors such as platelets).

    Returns:
        ``value`` as a float.

    Raises:
        InputError: not a finite number, below ``low`` or above ``high``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"must be a number, got {value!r}", where=field)
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"must be a finite number, got {value!r}", where=field)
    if number < low or (not allow_low and number == low):
        sign = ">=" if allow_low else ">"
        raise InputError(f"must be {sign} {low:g} {unit}".rstrip() + f", got {value!r}", where=field)
    if high is not None and number > high:
        raise InputError(
            f"{value!r} {unit} is implausible (above {high:g})".replace("  ", " "),
            where=field,
            hint="check the unit",
        )
    return number


# ---------------------------------------------------------------------------------------------
# Units (pint)
# ---------------------------------------------------------------------------------------------

# Conversions go through ``actnav.patient.units`` (the project's UCUM table in
# data/terminology/units.yaml) when that module is installed; otherwise through the small table
# below and a pint registry built on first use. Either way a unit not listed is an input error:
# guessing a unit is never safe.


def _shared_units() -> ModuleType | None:
    """``actnav.patient.units`` when it is installed, else None (then the fallback below is used)."""
    try:
        return importlib.import_module("actnav.patient.units")
    except ImportError:  # pragma: no cover - the shared units module ships with the package
        return None


_patient_units = _shared_units()

# UCUM code -> pint expression, for the units these calculators accept (fallback only).
_PINT: dict[str, str] = {
    "10*9/L": "1e9 / liter",
    "10*3/uL": "1e3 / microliter",
    "10*6/uL": "1e6 / microliter",
    "/uL": "1 / microliter",
    "/mm3": "1 / millimeter ** 3",
    "/L": "1 / liter",
    "{cells}/uL": "1 / microliter",
    "{cells}/mm3": "1 / millimeter ** 3",
    "g/dL": "gram / deciliter",
    "g/L": "gram / liter",
    "mg/dL": "milligram / deciliter",
    "mg/L": "milligram / liter",
    "ug/L": "microgram / liter",
    "ng/mL": "nanogram / milliliter",
    "umol/L": "micromole / liter",
    "mmol/L": "millimole / liter",
    "U/L": "1 / liter",
    "[IU]/L": "1 / liter",
    "Cel": "degree_Celsius",
    "[degF]": "degree_Fahrenheit",
}
_ALIASES: dict[str, str] = {
    "10^9/L": "10*9/L",
    "x10^9/L": "10*9/L",
    "x10E9/L": "10*9/L",
    "x10*9/L": "10*9/L",
    "10^3/uL": "10*3/uL",
    "x10^3/uL": "10*3/uL",
    "K/uL": "10*3/uL",
    "K/µL": "10*3/uL",
    "/µL": "/uL",
    "/mm³": "/mm3",
    "cells/uL": "{cells}/uL",
    "cells/µL": "{cells}/uL",
    "cells/mm3": "{cells}/mm3",
    "µmol/L": "umol/L",
    "μmol/L": "umol/L",
    "µg/L": "ug/L",
    "IU/L": "[IU]/L",
    "°C": "Cel",
    "degC": "Cel",
    "°F": "[degF]",
    "degF": "[degF]",
}


def _lowercase_index() -> dict[str, str]:
    """Lower-case spelling -> code, leaving out spellings that two codes share (never guess)."""
    index: dict[str, str] = {}
    clashes: set[str] = set()
    for code in (*_PINT, *_ALIASES):
        key = code.lower()
        if key in index and index[key] != code:
            clashes.add(key)
        index[key] = code
    return {key: code for key, code in index.items() if key not in clashes}


_BY_LOWER = _lowercase_index()


def ucum(unit: str, field: str) -> str:
    """The UCUM code for a unit as written (code, listed alias, or unique case-insensitive match).

    Raises:
        UnitError: the unit is empty or not listed, naming ``field``.
    """
    if _patient_units is not None:
        return str(_patient_units.canonical_ucum(unit, field))
    text = (unit or "").strip()
    code = text if text in _PINT else _ALIASES.get(text)
    if code is None:
        spelled = _BY_LOWER.get(text.lower())
        code = _ALIASES.get(spelled, spelled) if spelled else None
    if code is None:
        raise UnitError(f"unknown unit {unit!r}", where=field, hint=f"use one of {sorted(_PINT)}")
    return code


@cache
def _registry() -> Any:
    """A pint unit registry, built on first use (building one takes a few hundred ms)."""
    import pint

    return pint.UnitRegistry()


def convert(value: float, unit: str, target: str, *, field: str, analyte: str | None = None) -> float:
    """Convert a concentration, count or temperature between units with pint.

    Args:
        value: the number, in ``unit``.
        unit: its unit (UCUM code or a listed spelling: ``umol/L``, ``/uL``, ``x10^9/L``, ``mg/L``).
        target: the unit wanted (UCUM code).
        field: the input's name, for errors.
        analyte: ``creatinine`` to convert between substance (umol/L) and mass (mg/dL)
            concentration through its molar mass (113.12 g/mol, i.e. 88.4 umol/L per mg/dL).

    Returns:
        ``value`` expressed in ``target``.

    Raises:
        UnitError: an unknown unit, or units of different kinds that cannot be converted.

    Source:
        UCUM unit codes; pint for the arithmetic; molar masses from units.yaml (or, without the
        shared units module, ``risk-scores.yaml``).
    """
    if _patient_units is not None:
        return float(_patient_units.to_unit(value, unit, target, field, analyte=analyte))
    src, dst = ucum(unit, field), ucum(target, field)
    if src == dst:
        return float(value)
    reg = _registry()
    import pint

    try:
        if src in ("Cel", "[degF]") or dst in ("Cel", "[degF]"):
            return float(reg.Quantity(value, _PINT[src]).to(_PINT[dst]).magnitude)
        quantity = value * reg(_PINT[src])
        wanted = reg(_PINT[dst])
        if quantity.dimensionality != wanted.dimensionality and analyte == "creatinine":
            molar = reg.Quantity(load_risk_scores().conversions.creatinine_g_per_mol, "gram / mole")
            for candidate in (quantity * molar, quantity / molar):
                if candidate.dimensionality == wanted.dimensionality:
                    quantity = candidate
                    break
        return float((quantity / wanted).to("dimensionless").magnitude)
    except pint.errors.DimensionalityError as exc:
        raise UnitError(f"cannot convert {unit!r} to {target!r}", where=field) from exc


# ---------------------------------------------------------------------------------------------
# Data file schema (risk-scores.yaml)
# ---------------------------------------------------------------------------------------------


class Threshold(ToxModel):
    """A configured band of a continuous score: ``min <= value < max``."""

    label: str
    min: float | None = None
    max: float | None = None
    source: SourceRef


class EasixSpec(ToxModel):
    formula: str
    source: SourceRef
    thresholds: tuple[Threshold, ...] = ()
    thresholds_source: SourceRef


class HematotoxVariable(ToxModel):
    id: Literal["platelets", "anc", "hemoglobin", "crp", "ferritin"]
    label: str
    unit: str
    rules: tuple[Rule, ...]
    default: int = 0
    source: SourceRef
    boundary_source: SourceRef


class RiskGroup(ToxModel):
    label: str
    min: int
    max: int


class HematotoxSpec(ToxModel):
    timing: str
    variables: tuple[HematotoxVariable, ...]
    risk_groups: tuple[RiskGroup, ...]
    risk_groups_source: SourceRef
    maximum: int

    @model_validator(mode="after")
    def _all_variables(self) -> HematotoxSpec:
        ids = sorted(v.id for v in self.variables)
        if ids != sorted(["platelets", "anc", "hemoglobin", "crp", "ferritin"]):
            raise ValueError(f"CAR-HEMATOTOX needs each of its five variables once, got {ids}")
        return self


class HScoreNumeric(ToxModel):
    id: Literal["temperature", "ferritin", "triglycerides", "fibrinogen", "ast"]
    label: str
    unit: str
    rules: tuple[Rule, ...]
    default: int = 0
    source: SourceRef


class HScoreCytopenia(ToxModel):
    hemoglobin_g_dl_le: float
    wbc_10e9_l_le: float
    platelets_10e9_l_le: float
    points_by_lineages: dict[int, int]
    source: SourceRef


class HScoreSpec(ToxModel):
    immunosuppression_points: int
    immunosuppression_source: SourceRef
    organomegaly_points: dict[Literal["none", "one", "both"], int]
    organomegaly_source: SourceRef
    cytopenia: HScoreCytopenia
    numeric: tuple[HScoreNumeric, ...]
    hemophagocytosis_points: int
    hemophagocytosis_source: SourceRef
    cutoff: int
    maximum: int
    cutoff_source: SourceRef


class Conversions(ToxModel):
    creatinine_g_per_mol: float
    creatinine_source: SourceRef
    triglycerides_mg_dl_per_mmol_l: float
    triglycerides_source: SourceRef


class RiskScoresFile(ToxFile):
    conversions: Conversions
    easix: EasixSpec
    m_easix: EasixSpec
    car_hematotox: HematotoxSpec
    hscore: HScoreSpec


@cache
def load_risk_scores() -> RiskScoresFile:
    """``risk-scores.yaml``, validated once per process.

    Raises:
        DataFileError: the file is invalid.
    """
    return load_data_file(RiskScoresFile, "risk-scores.yaml")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EasixResult(_Out):
    """EASIX or m-EASIX for one set of labs, with the inputs in the units of the formula."""

    score: Literal["EASIX", "m-EASIX"]
    value: float = Field(description="LDH x creatinine (or CRP) / platelets.")
    log2_value: float
    inputs: dict[str, float] = Field(description="Inputs after conversion, keyed name_unit.")
    band: str | None = Field(description="Configured threshold band, or null when none is configured.")
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


class ItemPoints(_Out):
    """Points one item of a score earned, and why."""

    item: str
    value: float | bool | str | None
    unit: str | None = None
    points: int
    rule: str | None = Field(default=None, description="The cut-off row that matched.")
    on_boundary: bool = False
    source: SourceInfo


class HematotoxResult(_Out):
    score: Literal["CAR-HEMATOTOX"] = "CAR-HEMATOTOX"
    points: int
    maximum: int
    risk_group: str
    items: list[ItemPoints]
    boundary_values: list[str] = Field(description="Inputs exactly on a cut-off (handling undefined).")
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


class HScoreResult(_Out):
    score: Literal["HScore"] = "HScore"
    points: int
    maximum: int
    cutoff: int
    at_or_above_cutoff: bool
    complete: bool = Field(description="False when items were not assessed: points are then a minimum.")
    missing: list[str]
    items: list[ItemPoints]
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


# ---------------------------------------------------------------------------------------------
# EASIX and m-EASIX
# ---------------------------------------------------------------------------------------------

# Plausibility limits (not clinical cut-offs): a value above them is almost surely in another unit.
_MAX_LDH_U_L = 100_000.0
_MAX_CREATININE_MG_DL = 40.0
_MAX_CRP_MG_DL = 100.0
_MAX_PLATELETS_10E9_L = 5_000.0
_MAX_ANC_10E9_L = 500.0
_MAX_WBC_10E9_L = 1_000.0
_MAX_HB_G_DL = 30.0
_MAX_FERRITIN_NG_ML = 1_000_000.0
_MAX_TG_MMOL_L = 200.0
_MAX_FIBRINOGEN_G_L = 20.0
_MAX_AST_U_L = 100_000.0


def easix(ldh_u_l: float, creatinine_mg_dl: float, platelets_10e9_l: float) -> float:
    """EASIX = LDH x creatinine / platelets.

    Args:
        ldh_u_l: lactate dehydrogenase, U/L.
        creatinine_mg_dl: serum creatinine, mg/dL (divide umol/L by 88.4, or use :func:`easix_score`).
        platelets_10e9_l: platelet count, 10^9/L (divide a count per uL by 1,000).

    Returns:
        The EASIX value (no unit).

    Raises:
        InputError: a negative or non-finite input, platelets of 0, or a value so large the unit
            is probably wrong; the error names the field.

    Source:
        clinical-reference.md section 4.1 [V formula]; Luft 2017 origin [R]; Pennisi, Blood Adv
        2021;5(17):3481 for CAR-T [S].
    """
    ldh = check_number(ldh_u_l, "ldh_u_l", high=_MAX_LDH_U_L, unit="U/L")
    crea = check_number(creatinine_mg_dl, "creatinine_mg_dl", high=_MAX_CREATININE_MG_DL, unit="mg/dL")
    plt = check_number(
        platelets_10e9_l, "platelets_10e9_l", high=_MAX_PLATELETS_10E9_L, unit="x10^9/L", allow_low=False
    )
    return ldh * crea / plt


def m_easix(ldh_u_l: float, crp_mg_dl: float, platelets_10e9_l: float) -> float:
    """m-EASIX = LDH x CRP / platelets (CRP replaces creatinine).

    Args:
        ldh_u_l: lactate dehydrogenase, U/L.
        crp_mg_dl: C-reactive protein, mg/dL (divide mg/L by 10).
        platelets_10e9_l: platelet count, 10^9/L.

    Returns:
        The m-EASIX value.

    Raises:
        InputError: as :func:`easix`, naming the field.

    Source:
        clinical-reference.md section 4.2 [V formula; Pennisi 2021].
    """
    ldh = check_number(ldh_u_l, "ldh_u_l", high=_MAX_LDH_U_L, unit="U/L")
    crp = check_number(crp_mg_dl, "crp_mg_dl", high=_MAX_CRP_MG_DL, unit="mg/dL")
    plt = check_number(
        platelets_10e9_l, "platelets_10e9_l", high=_MAX_PLATELETS_10E9_L, unit="x10^9/L", allow_low=False
    )
    return ldh * crp / plt


def _ldh(value: float, unit: str) -> float:
    code = ucum(unit, "ldh_unit")
    if code not in ("U/L", "[IU]/L"):
        raise UnitError(f"LDH must be in U/L (or IU/L), got {unit!r}", where="ldh_unit")
    return float(value)


def _count_10e9(value: float, unit: str, field: str) -> float:
    check_number(value, field)
    return convert(value, unit, "10*9/L", field=f"{field}_unit")


def easix_score(
    *,
    ldh: float,
    creatinine: float,
    platelets: float,
    ldh_unit: str = "U/L",
    creatinine_unit: str = "mg/dL",
    platelets_unit: str = "10*9/L",
) -> EasixResult:
    """EASIX with unit conversion, log2 value and any configured threshold band.

    Args:
        ldh: lactate dehydrogenase in ``ldh_unit`` (U/L or IU/L).
        creatinine: serum creatinine in ``creatinine_unit`` (mg/dL or umol/L; umol/L is converted
            through the molar mass 113.12 g/mol, i.e. divided by 88.4).
        platelets: platelet count in ``platelets_unit`` (10^9/L, /uL, /mm3, 10^3/uL).

    Returns:
        :class:`EasixResult`; ``band`` is null unless thresholds are configured in
        ``risk-scores.yaml`` (none is validated for CAR-T).

    Raises:
        InputError: a negative, zero (platelets) or implausible value, naming the field.
        UnitError: an unknown or unconvertible unit.

    Source:
        clinical-reference.md section 4.1.
    """
    data = load_risk_scores()
    check_number(ldh, "ldh")
    check_number(creatinine, "creatinine")
    crea = convert(creatinine, creatinine_unit, "mg/dL", field="creatinine_unit", analyte="creatinine")
    plt = _count_10e9(platelets, platelets_unit, "platelets")
    value = easix(_ldh(ldh, ldh_unit), crea, plt)
    converted = ucum(creatinine_unit, "creatinine_unit") != "mg/dL"
    extra = [data.conversions.creatinine_source] if converted else []
    inputs = {"ldh_u_l": float(ldh), "creatinine_mg_dl": crea, "platelets_10e9_l": plt}
    return _easix_result("EASIX", value, inputs, data.easix, data, extra)


def m_easix_score(
    *,
    ldh: float,
    crp: float,
    platelets: float,
    ldh_unit: str = "U/L",
    crp_unit: str = "mg/dL",
    platelets_unit: str = "10*9/L",
) -> EasixResult:
    """m-EASIX with unit conversion (CRP mg/L -> mg/dL), log2 value and configured band.

    Args:
        ldh: lactate dehydrogenase in ``ldh_unit`` (U/L).
        crp: C-reactive protein in ``crp_unit`` (mg/dL or mg/L).
        platelets: platelet count in ``platelets_unit``.

    Returns:
        :class:`EasixResult`.

    Raises:
        InputError: as :func:`easix_score`.
        UnitError: an unknown or unconvertible unit.

    Source:
        clinical-reference.md section 4.2.
    """
    data = load_risk_scores()
    check_number(ldh, "ldh")
    check_number(crp, "crp")
    crp_mg_dl = convert(crp, crp_unit, "mg/dL", field="crp_unit")
    plt = _count_10e9(platelets, platelets_unit, "platelets")
    value = m_easix(_ldh(ldh, ldh_unit), crp_mg_dl, plt)
    inputs = {"ldh_u_l": float(ldh), "crp_mg_dl": crp_mg_dl, "platelets_10e9_l": plt}
    return _easix_result("m-EASIX", value, inputs, data.m_easix, data, [])


def _easix_result(
    name: Literal["EASIX", "m-EASIX"],
    value: float,
    inputs: dict[str, float],
    spec: EasixSpec,
    data: RiskScoresFile,
    extra: list[SourceRef],
) -> EasixResult:
    notes = [f"{name} = {spec.formula}; commonly analysed as log2({name})."]
    band: str | None = None
    used = [spec.source, *extra]
    if not spec.thresholds:
        notes.append(
            "No validated CAR-T cut-off exists; no risk band is configured, so only the value is reported."
        )
        used.append(spec.thresholds_source)
    for threshold in spec.thresholds:
        low_ok = threshold.min is None or value >= threshold.min
        high_ok = threshold.max is None or value < threshold.max
        if low_ok and high_ok:
            band = threshold.label
            used.append(threshold.source)
            break
    unconfirmed = band is not None and not all(s.verification.confirmed for s in used)
    if band is not None and unconfirmed:
        notes.append(f"Band {band!r} rests on a configured cut-off that is unconfirmed.")
    return EasixResult(
        score=name,
        value=value,
        log2_value=math.log2(value) if value > 0 else -math.inf,
        inputs=inputs,
        band=band,
        notes=notes,
        sources=dedupe_sources([cite(data, s) for s in used]),
        unconfirmed=unconfirmed,
    )


# ---------------------------------------------------------------------------------------------
# CAR-HEMATOTOX
# ---------------------------------------------------------------------------------------------

_OP_TEXT = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _rule_text(rule: Rule | None, default: int, unit: str) -> str:
    if rule is None:
        return f"no cut-off met: {default} points"
    return f"{_OP_TEXT[rule.op]} {rule.value:g} {unit}: {rule.result} points"


def car_hematotox(
    *,
    platelets: float,
    anc: float,
    hemoglobin: float,
    crp: float,
    ferritin: float,
    platelets_unit: str = "10*9/L",
    anc_unit: str = "10*9/L",
    hemoglobin_unit: str = "g/dL",
    crp_unit: str = "mg/dL",
    ferritin_unit: str = "ng/mL",
) -> HematotoxResult:
    """CAR-HEMATOTOX from the five pre-lymphodepletion markers (about day -5).

    Args:
        platelets: platelet count in ``platelets_unit`` (default 10^9/L).
        anc: absolute neutrophil count in ``anc_unit`` (default 10^9/L).
        hemoglobin: haemoglobin in ``hemoglobin_unit`` (g/dL or g/L).
        crp: C-reactive protein in ``crp_unit`` (mg/dL or mg/L).
        ferritin: ferritin in ``ferritin_unit`` (ng/mL = ug/L).

    Returns:
        :class:`HematotoxResult` with the points per item, the total (0-7) and the risk group
        (low 0-1, high >= 2). Always ``unconfirmed``: the point table is recollection [R] and
        exact-boundary handling is undefined [U]; values on a cut-off are listed.

    Raises:
        InputError: a negative or implausible value, naming the field.
        UnitError: an unknown or unconvertible unit.

    Source:
        Rejeski K et al., Blood 2021;138(24):2499-2513 via clinical-reference.md section 4.3; risk
        groups and variables verified on the european-mcl.net calculator page.
    """
    data = load_risk_scores()
    spec = data.car_hematotox
    raw = {
        "platelets": (platelets, platelets_unit),
        "anc": (anc, anc_unit),
        "hemoglobin": (hemoglobin, hemoglobin_unit),
        "crp": (crp, crp_unit),
        "ferritin": (ferritin, ferritin_unit),
    }
    limits = {
        "platelets": _MAX_PLATELETS_10E9_L,
        "anc": _MAX_ANC_10E9_L,
        "hemoglobin": _MAX_HB_G_DL,
        "crp": _MAX_CRP_MG_DL,
        "ferritin": _MAX_FERRITIN_NG_ML,
    }
    items: list[ItemPoints] = []
    boundary: list[str] = []
    used: list[SourceRef] = [spec.risk_groups_source]
    total = 0
    for var in spec.variables:
        value, unit = raw[var.id]
        check_number(value, var.id)
        converted = convert(value, unit, var.unit, field=f"{var.id}_unit")
        check_number(converted, var.id, high=limits[var.id], unit=var.unit)
        points, rule = apply_rules(var.rules, converted, var.default)
        on_cut = any(math.isclose(converted, r.value, rel_tol=1e-9, abs_tol=1e-12) for r in var.rules)
        if on_cut:
            boundary.append(f"{var.label} {converted:g} {var.unit} is exactly on a cut-off")
            used.append(var.boundary_source)
        used.append(var.source)
        total += points
        items.append(
            ItemPoints(
                item=var.id,
                value=converted,
                unit=var.unit,
                points=points,
                rule=_rule_text(rule, var.default, var.unit),
                on_boundary=on_cut,
                source=cite(data, var.source),
            )
        )
    group = next((g.label for g in spec.risk_groups if g.min <= total <= g.max), None)
    if group is None:
        raise DataFileError(f"no risk group covers {total} points", where="toxicity/risk-scores.yaml")
    notes = [
        f"Measured {spec.timing}.",
        "Point table from recollection of the published figure; confirm against Rejeski 2021.",
    ]
    if boundary:
        notes.append(
            "Exact-boundary handling is not defined in the source: the configured rows "
            "give boundary values the higher-risk points."
        )
    unconfirmed = not all(s.verification.confirmed for s in used)
    return HematotoxResult(
        points=total,
        maximum=spec.maximum,
        risk_group=group,
        items=items,
        boundary_values=boundary,
        notes=notes,
        sources=dedupe_sources([cite(data, s) for s in used]),
        unconfirmed=unconfirmed,
    )


# ---------------------------------------------------------------------------------------------
# HScore
# ---------------------------------------------------------------------------------------------


def hscore(
    *,
    immunosuppression: bool | None,
    temperature_c: float | None,
    hepatomegaly: bool | None,
    splenomegaly: bool | None,
    hemoglobin_g_dl: float | None,
    wbc_10e9_l: float | None,
    platelets_10e9_l: float | None,
    ferritin_ng_ml: float | None,
    triglycerides: float | None,
    fibrinogen: float | None,
    ast_u_l: float | None,
    hemophagocytosis: bool | None,
    triglycerides_unit: str = "mmol/L",
    fibrinogen_unit: str = "g/L",
) -> HScoreResult:
    """HScore for reactive haemophagocytic syndrome (0-337; >= 169 the usual cut-off).

    An item passed as None was not assessed: it scores 0, is listed in ``missing`` and the total
    is then a minimum (``complete`` False).

    Args:
        immunosuppression: known underlying immunosuppression (HIV, long-term immunosuppressants
            including steroids).
        temperature_c: highest temperature, degrees Celsius.
        hepatomegaly: liver enlarged.
        splenomegaly: spleen enlarged.
        hemoglobin_g_dl: haemoglobin, g/dL (cytopenia when <= 9.2).
        wbc_10e9_l: white cells, 10^9/L (cytopenia when <= 5.0, i.e. 5,000/mm3).
        platelets_10e9_l: platelets, 10^9/L (cytopenia when <= 110).
        ferritin_ng_ml: ferritin, ng/mL.
        triglycerides: triglycerides in ``triglycerides_unit`` (mmol/L, or mg/dL converted with the
            factor in ``risk-scores.yaml``).
        fibrinogen: fibrinogen in ``fibrinogen_unit`` (g/L or mg/dL).
        ast_u_l: aspartate aminotransferase, U/L.
        hemophagocytosis: haemophagocytosis on bone-marrow aspirate.

    Returns:
        :class:`HScoreResult`.

    Raises:
        InputError: a negative or implausible value, or a temperature outside 25-45 degrees C,
            naming the field.
        UnitError: an unknown triglyceride or fibrinogen unit.

    Source:
        Fardet L et al., Arthritis Rheumatol 2014;66(9):2613-2620, via clinical-reference.md
        section 4.4; bands also reproduced in PMC7589537 table 4 [S].
    """
    data = load_risk_scores()
    spec = data.hscore
    items: list[ItemPoints] = []
    missing: list[str] = []
    used: list[SourceRef] = [spec.cutoff_source]

    def boolean(name: str, value: bool | None, points: int, source: SourceRef) -> int:
        if value is None:
            missing.append(name)
            return 0
        if not isinstance(value, bool):
            raise InputError(f"must be true or false, got {value!r}", where=name)
        got = points if value else 0
        used.append(source)
        items.append(ItemPoints(item=name, value=value, points=got, source=cite(data, source)))
        return got

    total = boolean(
        "immunosuppression", immunosuppression, spec.immunosuppression_points, spec.immunosuppression_source
    )
    total += boolean(
        "hemophagocytosis", hemophagocytosis, spec.hemophagocytosis_points, spec.hemophagocytosis_source
    )

    # organomegaly
    for name, flag in (("hepatomegaly", hepatomegaly), ("splenomegaly", splenomegaly)):
        if flag is not None and not isinstance(flag, bool):
            raise InputError(f"must be true or false, got {flag!r}", where=name)
    if hepatomegaly is None or splenomegaly is None:
        missing.append("organomegaly")
    enlarged = sum(1 for flag in (hepatomegaly, splenomegaly) if flag)
    organs: Literal["none", "one", "both"] = ("none", "one", "both")[enlarged]
    got = spec.organomegaly_points[organs]
    total += got
    used.append(spec.organomegaly_source)
    items.append(
        ItemPoints(item="organomegaly", value=organs, points=got, source=cite(data, spec.organomegaly_source))
    )

    # cytopenias
    cyto = spec.cytopenia
    lineages = 0
    checks = (
        ("hemoglobin_g_dl", hemoglobin_g_dl, cyto.hemoglobin_g_dl_le, _MAX_HB_G_DL),
        ("wbc_10e9_l", wbc_10e9_l, cyto.wbc_10e9_l_le, _MAX_WBC_10E9_L),
        ("platelets_10e9_l", platelets_10e9_l, cyto.platelets_10e9_l_le, _MAX_PLATELETS_10E9_L),
    )
    for name, count_value, limit, high in checks:
        if count_value is None:
            missing.append(name)
            continue
        if check_number(count_value, name, high=high) <= limit:
            lineages += 1
    got = cyto.points_by_lineages[lineages]
    total += got
    used.append(cyto.source)
    limits_text = (
        f"Hb {cyto.hemoglobin_g_dl_le:g} g/dL, WBC {cyto.wbc_10e9_l_le:g} x10^9/L, "
        f"platelets {cyto.platelets_10e9_l_le:g} x10^9/L"
    )
    items.append(
        ItemPoints(
            item="cytopenias",
            value=float(lineages),
            unit="lineages",
            points=got,
            rule=f"{lineages} lineage(s) at or below {limits_text}",
            source=cite(data, cyto.source),
        )
    )

    # numeric items
    numbers: dict[str, float | None] = {
        "temperature": temperature_c,
        "ferritin": ferritin_ng_ml,
        "ast": ast_u_l,
    }
    if triglycerides is not None:
        check_number(triglycerides, "triglycerides")
        tg_unit = ucum(triglycerides_unit, "triglycerides_unit")
        if tg_unit == "mg/dL":
            numbers["triglycerides"] = triglycerides / data.conversions.triglycerides_mg_dl_per_mmol_l
            used.append(data.conversions.triglycerides_source)
        elif tg_unit == "mmol/L":
            numbers["triglycerides"] = float(triglycerides)
        else:
            raise UnitError(
                f"triglycerides must be in mmol/L or mg/dL, got {triglycerides_unit!r}",
                where="triglycerides_unit",
            )
    else:
        numbers["triglycerides"] = None
    if fibrinogen is not None:
        check_number(fibrinogen, "fibrinogen")
        numbers["fibrinogen"] = convert(fibrinogen, fibrinogen_unit, "g/L", field="fibrinogen_unit")
    else:
        numbers["fibrinogen"] = None
    names = {
        "temperature": "temperature_c",
        "ferritin": "ferritin_ng_ml",
        "ast": "ast_u_l",
        "triglycerides": "triglycerides",
        "fibrinogen": "fibrinogen",
    }
    limits = {
        "ferritin": _MAX_FERRITIN_NG_ML,
        "ast": _MAX_AST_U_L,
        "triglycerides": _MAX_TG_MMOL_L,
        "fibrinogen": _MAX_FIBRINOGEN_G_L,
    }
    for item in spec.numeric:
        value = numbers[item.id]
        if value is None:
            missing.append(names[item.id])
            continue
        if item.id == "temperature":
            check_number(value, names[item.id], low=25.0, high=45.0, unit="degrees C")
        else:
            check_number(value, names[item.id], high=limits[item.id], unit=item.unit)
        points, rule = apply_rules(item.rules, value, item.default)
        total += points
        used.append(item.source)
        items.append(
            ItemPoints(
                item=item.id,
                value=value,
                unit=item.unit,
                points=points,
                rule=_rule_text(rule, item.default, item.unit),
                source=cite(data, item.source),
            )
        )

    notes = [
        "The HScore was built for reactive HLH, not for IEC-HS; it is not part of the ASTCT "
        "IEC-HS definition. The probability formula is not encoded."
    ]
    if missing:
        notes.append(f"Not assessed: {', '.join(missing)}; the total is a minimum.")
    unconfirmed = not all(s.verification.confirmed for s in used)
    return HScoreResult(
        points=total,
        maximum=spec.maximum,
        cutoff=spec.cutoff,
        at_or_above_cutoff=total >= spec.cutoff,
        complete=not missing,
        missing=missing,
        items=items,
        notes=notes,
        sources=dedupe_sources([cite(data, s) for s in used]),
        unconfirmed=unconfirmed,
    )
