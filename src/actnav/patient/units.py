"""Convert patient quantities between UCUM units with pint.

pint does not read UCUM syntax (``10*9/L``, ``{cells}/uL``, ``[lb_av]``, ``Cel``), so every accepted
unit is listed once in ``data/terminology/units.yaml`` with the pint expression that means the
same; free-text spellings labs use (``x10^9/L``, ``µmol/L``, ``mg/dl``) are aliases there too.
Mass and substance concentrations (creatinine mg/dL <-> umol/L) convert through the analyte's
molar mass from the same file. A unit that is not listed, or that cannot become the target unit,
is an input error (:class:`~actnav.errors.UnitError`, exit code 2): actnav never guesses a unit.

One pint registry serves the process. It is built on the first conversion that needs it, never
at import (building it takes a few hundred milliseconds; the CLI must start in under a second),
and a conversion between identical units never builds it.

Example:
    >>> to_unit(1.0, "mg/dL", "umol/L", "Observation/x.valueQuantity", analyte="creatinine")
    88.40...
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actnav.errors import UnitError
from actnav.patient import terminology

if TYPE_CHECKING:  # pint has no type stubs; its objects are typed Any here.
    import pint


def to_unit(
    value: float,
    ucum: str,
    target_ucum: str,
    where: str,
    *,
    analyte: str | None = None,
) -> float:
    """Convert ``value`` from unit ``ucum`` to unit ``target_ucum``.

    Args:
        value: the number as given, in ``ucum``.
        ucum: the source unit: a UCUM code (``10*3/uL``) or a spelling listed in units.yaml.
        target_ucum: the unit wanted (the analyte's canonical UCUM unit, e.g. ``10*9/L``).
        where: the element the unit came from, for the error (``Observation/x.valueQuantity.unit``).
        analyte: the analyte key (``creatinine``), needed only to convert between mass and
            substance concentration through its molar mass (units.yaml ``molar_masses``).

    Returns:
        The value in ``target_ucum``.

    Raises:
        UnitError: the unit is missing or unknown, or cannot be converted to ``target_ucum``
            (different dimensions and no molar mass for ``analyte``).

    Source:
        Unit definitions: UCUM (https://ucum.org/ucum); molar masses: units.yaml.
    """
    source = canonical_ucum(ucum, where)
    target = canonical_ucum(target_ucum, where)
    if source == target:
        return float(value)
    key = f"{source}|{target}|{analyte or ''}|{molar_mass(analyte) if analyte else ''}"
    memo = _conversions()
    if key not in memo:
        memo[key] = _affine(source, target, analyte)
        _save_conversions(memo)
    line = memo[key]
    if line is None:
        hint = None
        if analyte and molar_mass(analyte) is None:
            hint = f"no molar mass for {analyte!r} in units.yaml"
        raise UnitError(f"cannot convert {ucum!r} to {target_ucum!r}", where=where, hint=hint)
    slope, offset = line
    return float(value) * slope + offset


def _affine(source: str, target: str, analyte: str | None) -> tuple[float, float] | None:
    """pint's conversion from ``source`` to ``target`` as ``slope * x + offset``, or None.

    Every UCUM conversion actnav accepts is affine (temperatures have an offset, the rest none),
    so two points fix it.
    """
    reg = _registry()
    src_factor, src_units = _pint_unit(source)
    tgt_factor, tgt_units = _pint_unit(target)
    points = []
    for x in (0.0, 1.0):
        converted = _convert(reg.Quantity(x * src_factor, src_units), tgt_units, analyte)
        if converted is None:
            return None
        points.append(float(converted) / tgt_factor)
    return points[1] - points[0], points[0]


# Conversions pint has computed, kept on disk (platformdirs' user cache) so a later process need
# not import pint at all (~0.2-0.5 s of the CLI's start-up). Keyed by units, analyte and molar
# mass, so a changed units.yaml entry computes anew.
_MEMO: dict[str, tuple[float, float] | None] | None = None


def _memo_path() -> Path | None:
    if os.environ.get("ACTNAV_NO_CACHE") == "1":
        return None
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("actnav")) / "unit-conversions.json"


def _conversions() -> dict[str, tuple[float, float] | None]:
    global _MEMO
    if _MEMO is None:
        _MEMO = {}
        path = _memo_path()
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                _MEMO = {k: (tuple(v) if v is not None else None) for k, v in loaded.items()}
            except (OSError, ValueError, TypeError, AttributeError):
                _MEMO = {}
    return _MEMO


def _save_conversions(memo: dict[str, tuple[float, float] | None]) -> None:
    path = _memo_path()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # the memo is an optimisation only


def canonical_ucum(unit: str | None, where: str) -> str:
    """The UCUM code units.yaml lists for ``unit`` (a UCUM code or a listed spelling).

    Matching order: the UCUM code as written, a text alias, then a unique case-insensitive match
    (labs write ``mg/dl`` for ``mg/dL``).

    Raises:
        UnitError: ``unit`` is empty or not listed (naming ``where`` and the unit).
    """
    found = known_unit(unit or "")
    if found is None:
        if not unit or not unit.strip():
            raise UnitError("no unit given", where=where)
        raise UnitError(
            f"unknown unit {unit!r}",
            where=where,
            hint="use a UCUM code listed in data/terminology/units.yaml, e.g. 10*9/L, mg/dL, %",
        )
    return found


def known_unit(unit: str) -> str | None:
    """The UCUM code for ``unit`` if units.yaml lists it (directly or as an alias), else None."""
    table = _unit_lookup()
    text = unit.strip()
    if not text or text in table.refused:
        return None
    if text in table.exact:
        return table.exact[text]
    return table.folded.get(text.casefold())


def molar_mass(analyte: str) -> float | None:
    """The analyte's molar mass in g/mol from units.yaml, or None."""
    for m in terminology.units_table().molar_masses:
        if m.analyte == analyte:
            return m.g_per_mol
    return None


class _UnitLookup:
    def __init__(self, exact: dict[str, str], folded: dict[str, str], refused: frozenset[str]) -> None:
        self.exact = exact
        self.folded = folded
        self.refused = refused


@cache
def _unit_lookup() -> _UnitLookup:
    table = terminology.units_table()
    exact = {u.ucum: u.ucum for u in table.units}
    exact.update(table.text_aliases)
    folded: dict[str, str] = {}
    ambiguous: set[str] = set()
    for written, ucum in exact.items():
        key = written.casefold()
        if key in folded and folded[key] != ucum:
            ambiguous.add(key)  # e.g. a future "G/L" vs "g/L": never guess between them
        folded[key] = ucum
    for key in ambiguous:
        del folded[key]
    return _UnitLookup(exact, folded, frozenset(table.text_refused))


@cache
def _registry() -> pint.UnitRegistry[Any]:
    # Imported and built on first use only: see the module docstring.
    import pint

    # pint parses its definition files on every start (~0.3-0.5 s); its own on-disk cache of the
    # parsed definitions (platformdirs' user cache folder) cuts that to a few ms after first use.
    try:
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=False, cache_folder=":auto:")
    except OSError:  # read-only home: no cache, same registry
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=False)


@cache
def _pint_unit(ucum: str) -> tuple[float, Any]:
    """(scale factor, pint unit) for a listed UCUM code: ``10*9/L`` -> (1e9, 1/liter)."""
    expression = next(u.pint for u in terminology.units_table().units if u.ucum == ucum)
    parsed = _registry().parse_expression(expression)
    if not hasattr(parsed, "units"):  # "dimensionless" parses to a plain number
        return float(parsed), _registry().dimensionless
    return float(parsed.magnitude), parsed.units


def _convert(quantity: Any, target_units: Any, analyte: str | None) -> float | None:
    import pint

    try:
        return float(quantity.to(target_units).magnitude)
    except pint.DimensionalityError:
        pass
    mass = molar_mass(analyte) if analyte else None
    if mass is None:
        return None
    per_mol = _registry().Quantity(mass, "gram / mole")
    # substance -> mass multiplies by the molar mass; mass -> substance divides by it.
    try:
        candidates = (quantity * per_mol, quantity / per_mol)
    except pint.OffsetUnitCalculusError:  # a temperature (Cel) cannot be a concentration
        return None
    for candidate in candidates:
        try:
            return float(candidate.to(target_units).magnitude)
        except pint.DimensionalityError:
            continue
    return None
