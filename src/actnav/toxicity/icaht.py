"""ICAHT: immune effector cell-associated hematotoxicity (EHA/EBMT 2023), neutrophil grading.

* **Early ICAHT** (day 0 to +30) is graded by how long the ANC stays at or below 0.5 and 0.1 x
  10^9/L; the higher grade of the two rows wins. Recovery counts only when stable (ANC above
  the threshold on 3 consecutive days); shorter recoveries are merged into the episode.
* **Late ICAHT** (after day +30) is graded by the depth of a non-transient neutropenia (nadir
  ANC, provided a second value is also <= 1.5 x 10^9/L).

Thresholds and settings live in ``actnav/data/toxicity/icaht.yaml``. Settings the source does not
settle (longest episode vs cumulative days, the early-death rule, the end of the late window, an
ANC exactly on a threshold) are configuration, and a result that depends on them is unconfirmed.
CTCAE grades depth at one time point: report :mod:`actnav.toxicity.ctcae` next to ICAHT, not
instead of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actnav.eligibility.engine import SourceInfo
from actnav.errors import InputError
from actnav.knowledge.models import SourceRef
from actnav.toxicity.risk import (
    Rule,
    ToxFile,
    ToxModel,
    apply_rules,
    check_number,
    cite,
    convert,
    dedupe_sources,
    load_data_file,
)

DurationMode = Literal["longest_episode", "cumulative"]


class EarlyThreshold(ToxModel):
    id: str
    anc_10e9_l: float
    rules: tuple[Rule, ...]
    never_recovered_grade: int | None = None
    source: SourceRef


class EarlyDeathRule(ToxModel):
    enabled: bool
    starts_by_day: int
    grade: int
    source: SourceRef


class EarlySpec(ToxModel):
    first_day: int
    last_day: int
    thresholds: tuple[EarlyThreshold, ...]
    stable_recovery_days: int
    stable_recovery_source: SourceRef
    duration_mode: DurationMode
    duration_mode_source: SourceRef
    early_death_rule: EarlyDeathRule
    max_gap_days_interpolated: int
    interpolation_source: SourceRef
    boundary_source: SourceRef


class LateSpec(ToxModel):
    first_day: int
    last_day: int
    window_source: SourceRef
    rules: tuple[Rule, ...]
    source: SourceRef
    second_value_le: float
    non_transient_source: SourceRef


class IcahtFile(ToxFile):
    early: EarlySpec
    late: LateSpec


@cache
def load_icaht() -> IcahtFile:
    """``icaht.yaml``, validated once per process.

    Raises:
        DataFileError: the file is invalid.
    """
    return load_data_file(IcahtFile, "icaht.yaml")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThresholdDuration(_Out):
    """Days at or below one ANC threshold inside the early window."""

    anc_10e9_l: float
    longest_episode_days: int
    cumulative_days: int
    days_used: int = Field(description="The duration graded (per duration_mode).")
    never_recovered: bool
    grade: int


class EarlyIcaht(_Out):
    grade: int | None = Field(description="0-4, or null when no ANC lies in the window.")
    at_least: bool = Field(description="True when missing days could raise the grade.")
    window: tuple[int, int]
    duration_mode: DurationMode
    durations: list[ThresholdDuration]
    early_death_rule_applied: bool
    missing_days: list[int]
    interpolated_days: list[int]
    basis: list[str]
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


class LateIcaht(_Out):
    grade: int | None = Field(description="0-4, or null when no ANC lies in the window.")
    window: tuple[int, int]
    n_values: int
    nadir_10e9_l: float | None
    second_lowest_10e9_l: float | None
    basis: list[str]
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool


class IcahtResult(_Out):
    """Early and late ICAHT for one patient's ANC series."""

    grading: Literal["icaht_eha_ebmt_2023"] = "icaht_eha_ebmt_2023"
    early: EarlyIcaht
    late: LateIcaht


Day = int | dt.date


def _daily_minimum(
    anc: Sequence[tuple[Day, float]], infusion_date: dt.date | None, unit: str
) -> dict[int, float]:
    """Lowest ANC (10^9/L) per day since infusion; validates every point."""
    daily: dict[int, float] = {}
    for i, point in enumerate(anc):
        try:
            when, value = point
        except (TypeError, ValueError) as exc:
            raise InputError("must be a (day, value) pair", where=f"anc[{i}]") from exc
        if isinstance(when, dt.datetime):
            when = when.date()
        if isinstance(when, dt.date):
            if infusion_date is None:
                raise InputError("dates need infusion_date", where="infusion_date")
            day = (when - infusion_date).days
        elif isinstance(when, int) and not isinstance(when, bool):
            day = when
        else:
            raise InputError(f"day must be an integer or a date, got {when!r}", where=f"anc[{i}]")
        check_number(value, f"anc[{i}]")
        count = convert(value, unit, "10*9/L", field="anc_unit")
        check_number(count, f"anc[{i}]", high=500.0, unit="x10^9/L")
        daily[day] = min(count, daily.get(day, count))
    return daily


def _fill(
    daily: dict[int, float], first: int, last: int, max_gap: int
) -> tuple[dict[int, float], list[int], list[int]]:
    """Values for every day of [first, last]: measured, interpolated across short gaps, or missing."""
    known = sorted(daily)
    values: dict[int, float] = {}
    interpolated: list[int] = []
    for day in range(first, last + 1):
        if day in daily:
            values[day] = daily[day]
            continue
        before = [d for d in known if d < day]
        after = [d for d in known if d > day]
        if before and after and after[0] - before[-1] - 1 <= max_gap:
            d0, d1 = before[-1], after[0]
            v0, v1 = daily[d0], daily[d1]
            values[day] = v0 + (v1 - v0) * (day - d0) / (d1 - d0)
            interpolated.append(day)
    missing = [d for d in range(first, last + 1) if d not in values]
    return values, interpolated, missing


def _status(
    values: dict[int, float], first: int, last: int, threshold: float, stable_days: int
) -> list[bool | None]:
    """Per day: neutropenic (<= threshold), not, or unknown; non-stable recoveries merged."""
    days: list[bool | None] = [
        (values[d] <= threshold) if d in values else None for d in range(first, last + 1)
    ]
    i = 0
    while i < len(days):
        if days[i] is False:
            j = i
            while j < len(days) and days[j] is False:
                j += 1
            bounded = i > 0 and days[i - 1] is True and j < len(days) and days[j] is True
            if bounded and j - i < stable_days:
                for k in range(i, j):
                    days[k] = True
            i = j
        else:
            i += 1
    return days


def _longest(days: list[bool | None]) -> int:
    best = run = 0
    for flag in days:
        run = run + 1 if flag is True else 0
        best = max(best, run)
    return best


def grade_icaht(
    anc: Sequence[tuple[Day, float]],
    *,
    anc_unit: str = "10*9/L",
    infusion_date: dt.date | None = None,
    censor_day: int | None = None,
    duration_mode: DurationMode | None = None,
) -> IcahtResult:
    """Early and late ICAHT from a series of absolute neutrophil counts.

    Args:
        anc: ``(day, value)`` pairs: day since infusion (day 0 = infusion) or a date (then give
            ``infusion_date``); value in ``anc_unit``. Several values on one day: the lowest counts.
        anc_unit: unit of the values (default 10^9/L; /uL, /mm3 and 10^3/uL are converted).
        infusion_date: the infusion date, when ``anc`` uses dates.
        censor_day: day of disease progression, start of the next therapy, death or last
            follow-up; the windows end there (cytopenia after relapse or new therapy is not ICAHT).
        duration_mode: ``longest_episode`` or ``cumulative`` (default from ``icaht.yaml``).

    Returns:
        :class:`IcahtResult` with the early grade (durations per threshold, missing and
        interpolated days) and the late grade (nadir and second-lowest value).

    Raises:
        InputError: a malformed point, a negative or implausible ANC, a date without
            ``infusion_date``, a negative ``censor_day``; the error names the field.
        UnitError: an unknown ANC unit.

    Source:
        Rejeski K et al., Blood 2023;142(10):865-877 (EHA/EBMT consensus), thresholds as encoded
        by Liang 2024 [S], via clinical-reference.md section 6b.
    """
    data = load_icaht()
    if censor_day is not None and (
        isinstance(censor_day, bool) or not isinstance(censor_day, int) or censor_day < 0
    ):
        raise InputError(f"must be a day >= 0, got {censor_day!r}", where="censor_day")
    mode = duration_mode or data.early.duration_mode
    if mode not in ("longest_episode", "cumulative"):
        raise InputError(f"must be longest_episode or cumulative, got {mode!r}", where="duration_mode")
    daily = _daily_minimum(anc, infusion_date, anc_unit)
    return IcahtResult(early=_early(data, daily, censor_day, mode), late=_late(data, daily, censor_day))


def _early(
    data: IcahtFile, daily: dict[int, float], censor_day: int | None, mode: DurationMode
) -> EarlyIcaht:
    spec = data.early
    first = spec.first_day
    last = spec.last_day if censor_day is None else min(spec.last_day, censor_day)
    used: list[SourceRef] = [spec.stable_recovery_source]
    in_window = {d: v for d, v in daily.items() if first <= d <= last}
    if not in_window:
        return EarlyIcaht(
            grade=None,
            at_least=False,
            window=(first, last),
            duration_mode=mode,
            durations=[],
            early_death_rule_applied=False,
            missing_days=list(range(first, last + 1)),
            interpolated_days=[],
            basis=["no ANC in the early window"],
            notes=[],
            sources=[cite(data, spec.thresholds[0].source)],
            unconfirmed=False,
        )
    values, interpolated, missing = _fill(daily, first, last, spec.max_gap_days_interpolated)
    if interpolated:
        used.append(spec.interpolation_source)
    durations: list[ThresholdDuration] = []
    basis: list[str] = []
    notes: list[str] = []
    grade = 0
    mode_matters = False
    death_rule = False
    full_window = censor_day is None or censor_day >= spec.last_day
    for threshold in spec.thresholds:
        used.append(threshold.source)
        status = _status(values, first, last, threshold.anc_10e9_l, spec.stable_recovery_days)
        longest, total = _longest(status), sum(1 for s in status if s is True)
        never = full_window and all(s is True for s in status)
        by_mode = {
            "longest_episode": apply_rules(threshold.rules, longest)[0],
            "cumulative": apply_rules(threshold.rules, total)[0],
        }
        got = by_mode[mode]
        mode_matters = mode_matters or by_mode["longest_episode"] != by_mode["cumulative"]
        if never and threshold.never_recovered_grade is not None:
            got = max(got, threshold.never_recovered_grade)
            basis.append(f"ANC never above {threshold.anc_10e9_l:g} x10^9/L in days {first}-{last}")
        rule = spec.early_death_rule
        applies = (
            rule.enabled
            and threshold.never_recovered_grade is not None
            and not full_window
            and rule.grade > got
            and _runs_to_end(status, rule.starts_by_day - first)
        )
        if applies:
            got = rule.grade
            death_rule = True
            used.append(rule.source)
            basis.append(
                f"ANC <= {threshold.anc_10e9_l:g} from day {rule.starts_by_day} or earlier "
                f"until the window ends at censoring (day {last})"
            )
        days_used = longest if mode == "longest_episode" else total
        basis.append(
            f"ANC <= {threshold.anc_10e9_l:g} x10^9/L: {days_used} days ({mode.replace('_', ' ')}): "
            f"grade {got}"
        )
        durations.append(
            ThresholdDuration(
                anc_10e9_l=threshold.anc_10e9_l,
                longest_episode_days=longest,
                cumulative_days=total,
                days_used=days_used,
                never_recovered=never,
                grade=got,
            )
        )
        grade = max(grade, got)
    if mode_matters:
        used.append(spec.duration_mode_source)
        notes.append(
            "Longest-episode and cumulative counting give different grades here; "
            f"{mode.replace('_', ' ')} was used."
        )
    on_cut = sorted({d for d, v in in_window.items() for t in spec.thresholds if v == t.anc_10e9_l})
    if on_cut:
        used.append(spec.boundary_source)
        notes.append(
            f"ANC exactly on a threshold on day(s) {on_cut}: counted as neutropenic (ICAHT '<='), "
            "whereas CIBMTR counts 0.5 as recovered."
        )
    at_least = bool(missing) and grade < 4
    if missing:
        notes.append(f"No ANC (even after interpolation) on day(s) {missing}; the grade is a minimum.")
    return EarlyIcaht(
        grade=grade,
        at_least=at_least,
        window=(first, last),
        duration_mode=mode,
        durations=durations,
        early_death_rule_applied=death_rule,
        missing_days=missing,
        interpolated_days=interpolated,
        basis=basis,
        notes=notes,
        sources=dedupe_sources([cite(data, s) for s in used]),
        unconfirmed=not all(s.verification.confirmed for s in used),
    )


def _runs_to_end(status: list[bool | None], start_by: int) -> bool:
    """A neutropenic run that begins by index ``start_by`` and lasts to the last known day."""
    known = [i for i, s in enumerate(status) if s is not None]
    if not known:
        return False
    begin = next((i for i, s in enumerate(status) if s is True), None)
    if begin is None or begin > start_by:
        return False
    return all(status[i] is True for i in known if i >= begin)


def _late(data: IcahtFile, daily: dict[int, float], censor_day: int | None) -> LateIcaht:
    spec = data.late
    last = spec.last_day if censor_day is None else min(spec.last_day, censor_day)
    window = (spec.first_day, last)
    values = sorted(v for d, v in daily.items() if spec.first_day <= d <= last)
    used: list[SourceRef] = [spec.source, spec.window_source]
    if not values:
        return LateIcaht(
            grade=None,
            window=window,
            n_values=0,
            nadir_10e9_l=None,
            second_lowest_10e9_l=None,
            basis=["no ANC in the late window"],
            notes=[],
            sources=dedupe_sources([cite(data, s) for s in used]),
            unconfirmed=False,
        )
    nadir = values[0]
    second = values[1] if len(values) > 1 else None
    notes: list[str] = []
    basis = [f"nadir ANC {nadir:g} x10^9/L in days {window[0]}-{window[1]}"]
    used.append(spec.non_transient_source)
    if second is not None and second > spec.second_value_le:
        grade = 0
        basis.append(f"second-lowest ANC {second:g} > {spec.second_value_le:g}: transient, not graded")
    else:
        grade, _ = apply_rules(spec.rules, nadir)
        if second is None:
            notes.append("Only one ANC in the late window: non-transience is not shown.")
        else:
            basis.append(f"second-lowest ANC {second:g} <= {spec.second_value_le:g}: non-transient")
        basis.append(f"grade {grade}")
    return LateIcaht(
        grade=grade,
        window=window,
        n_values=len(values),
        nadir_10e9_l=nadir,
        second_lowest_10e9_l=second,
        basis=basis,
        notes=notes,
        sources=dedupe_sources([cite(data, s) for s in used]),
        unconfirmed=not all(s.verification.confirmed for s in used),
    )


# ---------------------------------------------------------------------------------------------
# JSON input (``actnav toxicity icaht FILE.json``)
# ---------------------------------------------------------------------------------------------


class AncPoint(BaseModel):
    """One ANC: ``day`` since infusion (day 0 = infusion) or a calendar ``date``, and the ``value``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: int | None = Field(default=None, strict=True, ge=-30, le=3650)
    date: dt.date | None = None
    value: float = Field(strict=True, ge=0)


class IcahtInput(BaseModel):
    """Input of ``actnav toxicity icaht``: an ANC series after infusion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    infusion_date: dt.date | None = Field(default=None, description="Day 0; needed when points use dates.")
    anc_unit: str = Field(default="10*9/L", description="Unit of every value: 10^9/L, /uL, /mm3, 10^3/uL.")
    anc: tuple[AncPoint, ...] = Field(min_length=1)
    censor_day: int | None = Field(
        default=None, strict=True, ge=0, description="Progression, next therapy, death or last follow-up."
    )
    duration_mode: DurationMode | None = None


def grade_icaht_input(document: object) -> IcahtResult:
    """Validate an ICAHT input document and grade it (see :func:`grade_icaht`).

    Raises:
        InputError: a missing or unknown field, a point with both or neither of ``day`` and
            ``date``, or any error of :func:`grade_icaht`; ``where`` is the field path
            (``anc[3].value``).
        UnitError: an unknown ANC unit (``anc_unit``).
    """
    from actnav.toxicity.models import validate_input

    if not isinstance(document, dict):
        raise InputError('expected a JSON object: {"anc": [{"day": 0, "value": 0.4}, ...]}')
    data = validate_input(IcahtInput, document)
    points: list[tuple[Day, float]] = []
    for index, point in enumerate(data.anc):
        when: Day
        if point.day is not None and point.date is None:
            when = point.day
        elif point.date is not None and point.day is None:
            when = point.date
        else:
            raise InputError("give either day or date", where=f"anc[{index}]")
        points.append((when, point.value))
    try:
        return grade_icaht(
            points,
            anc_unit=data.anc_unit,
            infusion_date=data.infusion_date,
            censor_day=data.censor_day,
            duration_mode=data.duration_mode,
        )
    except InputError as exc:
        where = exc.where or ""
        if where.startswith("anc[") and where.endswith("]"):
            where += ".value"
        raise type(exc)(exc.message, where=where or None, hint=exc.hint) from exc
