"""Early and late ICAHT grades by duration and depth.

Source of the expected grades: Rejeski et al., Blood 2023 (EHA/EBMT), thresholds as encoded by
Liang 2024 and recorded in clinical-reference.md 6b.1-6b.3: early ANC <= 0.5 for 1-6 days grade 1,
7-13 grade 2, >= 14 grade 3, never recovered grade 4; ANC <= 0.1 for 7-13 days grade 3, >= 14
grade 4; stable recovery = 3 consecutive days above the threshold; late grade by nadir <= 1.5 /
1.0 / 0.5 / 0.1 when a second value is also <= 1.5.
"""

from __future__ import annotations

import datetime as dt

import pytest

from actnav.errors import InputError, UnitError
from actnav.toxicity.icaht import grade_icaht


def daily(low_days: set[int], low: float = 0.3, high: float = 2.0, last: int = 30) -> list[tuple[int, float]]:
    return [(d, low if d in low_days else high) for d in range(0, last + 1)]


@pytest.mark.parametrize(
    ("days", "grade"),
    [(0, 0), (1, 1), (6, 1), (7, 2), (13, 2), (14, 3), (30, 3), (31, 4)],
)
def test_early_grade_by_days_at_or_below_0_5(days: int, grade: int) -> None:
    result = grade_icaht(daily(set(range(0, days))))
    assert result.early.grade == grade
    assert result.early.durations[0].days_used == days
    assert result.grading == "icaht_eha_ebmt_2023"


@pytest.mark.parametrize(("days", "grade"), [(6, 1), (7, 3), (13, 3), (14, 4)])
def test_early_grade_by_days_at_or_below_0_1(days: int, grade: int) -> None:
    # ANC 0.05 for `days` days: the <= 0.1 row (7-13 -> 3, >= 14 -> 4) beats the <= 0.5 row.
    result = grade_icaht(daily(set(range(0, days)), low=0.05))
    assert result.early.grade == grade


def test_anc_exactly_0_5_counts_as_neutropenic() -> None:
    result = grade_icaht(daily(set(range(0, 7)), low=0.5))
    assert result.early.grade == 2
    assert result.early.unconfirmed  # CIBMTR reads 0.5 as recovered: the boundary is flagged
    assert any("exactly on a threshold" in n for n in result.early.notes)


def test_short_recovery_is_merged_into_the_episode() -> None:
    # <= 0.5 on days 0-4 and 7-10, above on days 5-6 (2 days < 3): one 11-day episode -> grade 2
    result = grade_icaht(daily(set(range(0, 5)) | set(range(7, 11))))
    assert result.early.durations[0].longest_episode_days == 11
    assert result.early.grade == 2


def test_stable_recovery_splits_episodes_and_mode_matters() -> None:
    # 5 days low, 3 days recovered (stable), 5 days low: longest 5 (grade 1), cumulative 10 (grade 2)
    series = daily(set(range(0, 5)) | set(range(8, 13)))
    longest = grade_icaht(series)
    assert longest.early.grade == 1
    assert longest.early.unconfirmed  # the two counting rules disagree [U]
    cumulative = grade_icaht(series, duration_mode="cumulative")
    assert cumulative.early.grade == 2


def test_never_recovered_needs_the_whole_window() -> None:
    result = grade_icaht([(d, 0.2) for d in range(0, 31)])
    assert result.early.grade == 4
    assert result.early.durations[0].never_recovered


def test_early_death_rule() -> None:
    # ANC <= 0.5 from day 0 until death on day 16 without recovery: grade 4 (rule 6b.3.4, [U]).
    result = grade_icaht([(d, 0.3) for d in range(0, 17)], censor_day=16)
    assert result.early.grade == 4
    assert result.early.early_death_rule_applied
    assert result.early.unconfirmed


def test_censoring_stops_the_window() -> None:
    # Progression on day 10: days after it are not ICAHT.
    result = grade_icaht(daily(set(range(5, 31))), censor_day=10)
    assert result.early.window == (0, 10)
    assert result.early.durations[0].days_used == 6
    assert result.early.grade == 1


def test_short_gaps_are_interpolated_and_long_gaps_missing() -> None:
    result = grade_icaht([(0, 300), (7, 300), (14, 3000)], anc_unit="/uL")
    assert result.early.interpolated_days[:3] == [1, 2, 3]
    assert result.early.missing_days == list(range(15, 31))
    assert result.early.at_least
    assert result.early.grade == 2  # days 0-7 <= 0.5 plus interpolated days below 0.5


def test_lowest_value_of_a_day_counts() -> None:
    result = grade_icaht([(d, 2.0) for d in range(0, 31)] + [(3, 0.4)])
    assert result.early.grade == 1


def test_dates_with_infusion_date() -> None:
    start = dt.date(2026, 3, 1)
    result = grade_icaht(
        [(start + dt.timedelta(days=d), 0.3) for d in range(0, 8)]
        + [(start + dt.timedelta(days=d), 2.0) for d in range(8, 31)],
        infusion_date=start,
    )
    assert result.early.grade == 2


def test_no_anc_in_window() -> None:
    result = grade_icaht([(40, 1.2), (50, 1.1)])
    assert result.early.grade is None


@pytest.mark.parametrize(
    ("values", "grade"),
    [
        ([(35, 1.4), (42, 1.45)], 1),
        ([(35, 0.9), (42, 1.2)], 2),
        ([(35, 0.4), (42, 0.8)], 3),
        ([(35, 0.1), (42, 0.3)], 4),
        ([(35, 0.4), (42, 1.8), (49, 2.5)], 0),  # second-lowest > 1.5: transient
        ([(35, 1.6), (42, 2.0)], 0),
    ],
)
def test_late_grade_by_depth(values: list[tuple[int, float]], grade: int) -> None:
    result = grade_icaht(values)
    assert result.late.grade == grade
    assert result.late.unconfirmed  # window end [U], non-transience footnote [R]


def test_late_single_value_is_flagged() -> None:
    result = grade_icaht([(60, 0.4)])
    assert result.late.grade == 3
    assert any("Only one ANC" in n for n in result.late.notes)


def test_late_window_ends_at_day_100_or_censoring() -> None:
    assert grade_icaht([(120, 0.05), (130, 0.05)]).late.grade is None
    assert grade_icaht([(40, 0.05), (45, 0.05)], censor_day=38).late.grade is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"anc": [(1, -0.2)]}, "anc[0]"),
        ({"anc": [(1, 0.2), (2, 900.0)]}, "anc[1]"),
        ({"anc": [(dt.date(2026, 1, 1), 0.2)]}, "infusion_date"),
        ({"anc": [("day 1", 0.2)]}, "anc[0]"),
        ({"anc": [(1,)]}, "anc[0]"),
        ({"anc": [(1, 0.2)], "censor_day": -1}, "censor_day"),
        ({"anc": [(1, 0.2)], "duration_mode": "median"}, "duration_mode"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        grade_icaht(**kwargs)  # type: ignore[arg-type]
    assert err.value.where == field


def test_unknown_unit() -> None:
    with pytest.raises(UnitError):
        grade_icaht([(1, 0.2)], anc_unit="cups")
