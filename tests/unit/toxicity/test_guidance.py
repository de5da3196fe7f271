"""Tocilizumab limits, CRS/ICANS management by grade, and the post-infusion monitoring plan.

Sources: clinical-reference.md 6.1 (tocilizumab 8 mg/kg over 1 h, max 800 mg a dose, repeat every
8 h, <= 3 doses in 24 h, <= 4 in total [V]; 12 mg/kg below 30 kg [S]), 6.2-6.3 (steroids by grade),
1.10 (June 2025: proximity 4 -> 2 weeks, driving 8 -> 2 weeks), and the product files.
"""

from __future__ import annotations

import datetime as dt

import pytest

from actnav.errors import InputError
from actnav.knowledge.loader import load_knowledge
from actnav.toxicity.guidance import crs_management, icans_management, monitoring_plan, tocilizumab_dose

T0 = dt.datetime(2026, 3, 1, 8, 0)


def hours(h: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=h)


# ------------------------------------------------------------------------------- tocilizumab


def test_120_kg_is_capped_at_800_mg() -> None:
    advice = tocilizumab_dose(120, at=T0)
    assert advice.allowed
    assert advice.dose_mg == 800
    assert advice.capped
    assert advice.infusion_minutes == 60
    assert advice.sources and all(s.confirmed for s in advice.sources)


@pytest.mark.parametrize(
    ("weight", "dose", "per_kg"), [(70, 560, 8), (100, 800, 8), (30, 240, 8), (29, 348, 12)]
)
def test_weight_based_dose(weight: float, dose: float, per_kg: float) -> None:
    advice = tocilizumab_dose(weight, at=T0)
    assert (advice.dose_mg, advice.mg_per_kg) == (dose, per_kg)


def test_fourth_dose_within_24_hours_is_refused_with_a_reason() -> None:
    given = [(hours(0), 560), (hours(8), 560), (hours(16), 560)]
    advice = tocilizumab_dose(70, given, at=hours(23))
    assert not advice.allowed
    assert advice.dose_mg is None
    assert advice.doses_in_last_24h == 3
    assert any("3 doses in 24 hours" in r for r in advice.refusal_reasons)
    assert advice.next_allowed_at == hours(24)


def test_dose_exactly_24_hours_later_is_allowed() -> None:
    given = [(hours(0), 560), (hours(8), 560), (hours(16), 560)]
    advice = tocilizumab_dose(70, given, at=hours(24))
    assert advice.allowed
    assert advice.doses_in_last_24h == 2
    assert advice.dose_mg == 560


def test_fifth_dose_in_total_is_refused() -> None:
    given = [(hours(0), 560), (hours(8), 560), (hours(16), 560), (hours(40), 560)]
    advice = tocilizumab_dose(70, given, at=hours(72))
    assert not advice.allowed
    assert any("4 doses in total" in r for r in advice.refusal_reasons)
    assert advice.next_allowed_at is None


def test_repeat_sooner_than_8_hours_is_refused() -> None:
    advice = tocilizumab_dose(70, [(hours(0), 560)], at=hours(6))
    assert not advice.allowed
    assert advice.next_allowed_at == hours(8)
    assert any("every 8 hours" in r for r in advice.refusal_reasons)


def test_timezone_aware_times() -> None:
    utc = dt.UTC
    advice = tocilizumab_dose(70, [(T0.replace(tzinfo=utc), 560)], at=hours(9).replace(tzinfo=utc))
    assert advice.allowed


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((0,), {"at": T0}, "weight_kg"),
        ((-70,), {"at": T0}, "weight_kg"),
        ((900,), {"at": T0}, "weight_kg"),
        ((70, [(hours(2), 560)]), {"at": T0}, "doses_given[0]"),  # dose after 'at'
        ((70, [(hours(-9), 0)]), {"at": T0}, "doses_given[0]"),
        ((70, [(T0.replace(tzinfo=dt.UTC), 560)]), {"at": hours(9)}, "at"),
        ((70, [("yesterday", 560)]), {"at": T0}, "doses_given[0]"),
    ],
)
def test_bad_input_names_the_field(args: tuple[object, ...], kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        tocilizumab_dose(*args, **kwargs)  # type: ignore[arg-type]
    assert err.value.where == field


# ---------------------------------------------------------------------------- CRS management


def test_crs_grade_2_doses_for_weight() -> None:
    plan = crs_management(2, 70)
    by_id = {line.id: line for line in plan.lines}
    assert by_id["crs2-tocilizumab"].dose_mg == 560
    assert by_id["crs2-methylprednisolone"].dose_mg == 70  # 1 mg/kg
    assert by_id["crs2-dexamethasone"].dose_mg == 10
    assert by_id["crs2-methylprednisolone"].alternative_to == "crs2-dexamethasone"
    assert all(line.source.citation for line in plan.lines)


def test_crs_tocilizumab_line_is_capped() -> None:
    line = next(x for x in crs_management(3, 130).lines if x.drug == "tocilizumab")
    assert line.dose_mg == 800
    assert "capped" in (line.dose_basis or "")


def test_crs_grade_4_steroids_and_unconfirmed_label_line() -> None:
    plan = crs_management(4, 80)
    by_id = {line.id: line for line in plan.lines}
    assert by_id["crs4-methylprednisolone-nccn"].dose_mg == 500
    assert not by_id["crs4-methylprednisolone-nccn"].unconfirmed
    assert by_id["crs4-methylprednisolone-label"].dose_mg == 1000
    assert by_id["crs4-methylprednisolone-label"].unconfirmed  # [R] in the reference
    assert plan.unconfirmed


def test_crs_grade_1_has_no_steroids_and_product_filter() -> None:
    generic = crs_management(1, 70, product_id="tisagenlecleucel")
    assert [line.id for line in generic.lines] == ["crs1-no-steroids"]
    tecartus = crs_management(1, 70, product_id="brexucabtagene_autoleucel")
    assert "crs1-tocilizumab-consider" in {line.id for line in tecartus.lines}


def test_crs_grade_0() -> None:
    assert crs_management(0, 70).lines == []


# -------------------------------------------------------------------------- ICANS management


def test_icans_without_crs_has_no_tocilizumab_dose() -> None:
    plan = icans_management(2, 70, concurrent_crs=False)
    assert not any(line.drug == "tocilizumab" for line in plan.lines)
    assert "icans2-dexamethasone-no-crs" in {line.id for line in plan.lines}


def test_icans_with_crs_adds_tocilizumab() -> None:
    plan = icans_management(3, 70, concurrent_crs=True)
    toci = [line for line in plan.lines if line.drug == "tocilizumab"]
    assert toci and toci[0].dose_mg == 560
    mp = next(line for line in plan.lines if line.id == "icans3-methylprednisolone")
    assert mp.dose_mg == 70


def test_icans_grade_4() -> None:
    plan = icans_management(4, 60, concurrent_crs=False, product_id="axicabtagene_ciloleucel")
    ids = {line.id for line in plan.lines}
    assert {"icans4-methylprednisolone-label", "icans4-methylprednisolone-taper"} <= ids
    assert plan.unconfirmed


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: crs_management(5, 70), "grade"),
        (lambda: crs_management(-1, 70), "grade"),
        (lambda: icans_management(True, 70), "grade"),
        (lambda: crs_management(2, 0), "weight_kg"),
        (lambda: crs_management(2, 70, product_id="snake_oil"), "product_id"),
    ],
)
def test_management_bad_input(call: object, field: str) -> None:
    with pytest.raises(InputError) as err:
        call()  # type: ignore[operator]
    assert err.value.where == field


# --------------------------------------------------------------------------- monitoring plan


def test_monitoring_plan_after_june_2025() -> None:
    plan = monitoring_plan("axicabtagene_ciloleucel", dt.date(2025, 7, 1))
    assert (plan.proximity_weeks, plan.no_driving_weeks) == (2, 2)
    assert plan.label_revision == "2025-06"
    assert plan.watch_for and plan.when_to_call
    assert all(line.source.citation for line in plan.monitoring)


def test_monitoring_plan_before_june_2025() -> None:
    plan = monitoring_plan("axicabtagene_ciloleucel", dt.date(2024, 1, 1))
    assert (plan.proximity_weeks, plan.no_driving_weeks) == (4, 8)
    assert any(line.kind == "rems" for line in plan.monitoring)


def test_every_cd19_bcma_car_t_has_2_week_periods_after_june_2025() -> None:
    ids = {
        "tisagenlecleucel",
        "axicabtagene_ciloleucel",
        "brexucabtagene_autoleucel",
        "lisocabtagene_maraleucel",
        "idecabtagene_vicleucel",
        "ciltacabtagene_autoleucel",
    }
    present = ids & {p.id for p in load_knowledge().products}
    assert present, "the product files are missing"
    for product_id in sorted(present):
        plan = monitoring_plan(product_id, dt.date(2025, 7, 1))
        assert (plan.proximity_weeks, plan.no_driving_weeks) == (2, 2), product_id


def test_monitoring_plan_says_what_the_product_file_lacks() -> None:
    plan = monitoring_plan("tisagenlecleucel", dt.date(2026, 1, 1))
    assert any("watch for" in m for m in plan.missing)


def test_monitoring_plan_unknown_product() -> None:
    with pytest.raises(InputError) as err:
        monitoring_plan("snake_oil", dt.date(2026, 1, 1))
    assert err.value.where == "product_id"


# ------------------------------------------------- products by id and brand (TIL, TCR-T, obe-cel)


@pytest.mark.parametrize(
    ("name", "product_id"),
    [
        ("lifileucel", "lifileucel"),
        ("Amtagvi", "lifileucel"),
        ("AMTAGVI", "lifileucel"),
        ("afamitresgene_autoleucel", "afamitresgene_autoleucel"),
        ("afamitresgene autoleucel", "afamitresgene_autoleucel"),
        ("Tecelra", "afamitresgene_autoleucel"),
        ("obecabtagene_autoleucel", "obecabtagene_autoleucel"),
        ("aucatzyl", "obecabtagene_autoleucel"),
        ("Aucatzyl\u00ae", "obecabtagene_autoleucel"),
        ("obe-cel", "obecabtagene_autoleucel"),
        ("Yescarta", "axicabtagene_ciloleucel"),
        ("tisagenlecleucel", "tisagenlecleucel"),
    ],
)
def test_monitoring_plan_accepts_ids_and_brand_names(name: str, product_id: str) -> None:
    plan = monitoring_plan(name, dt.date(2025, 7, 1))
    assert plan.product_id == product_id


def test_lifileucel_plan_lists_its_boxed_warnings_and_what_the_file_lacks() -> None:
    plan = monitoring_plan("Amtagvi", dt.date(2025, 7, 1))
    assert plan.modality == "TIL"
    assert (plan.proximity_weeks, plan.no_driving_weeks) == (None, None)  # not in the reference: not invented
    assert "period to stay near the treatment centre" in plan.missing
    warnings = " ".join(line.text for line in plan.boxed_warnings)
    assert "Treatment-related mortality" in warnings and "Prolonged severe cytopenia" in warnings
    assert all(line.kind == "boxed_warning" for line in plan.boxed_warnings)
    assert any("TIL product" in note for note in plan.notes)
    assert {line.kind for line in plan.monitoring} == {"administration", "rems"}


def test_afami_cel_plan_has_the_4_week_icans_monitoring() -> None:
    plan = monitoring_plan("Tecelra", dt.date(2025, 1, 1))
    assert plan.modality == "TCR-T"
    assert any("at least 4 weeks" in line.text and line.kind == "monitoring" for line in plan.monitoring)
    assert plan.proximity_weeks is None


def test_obe_cel_periods_come_from_a_secondary_source_and_say_so() -> None:
    plan = monitoring_plan("obecabtagene_autoleucel", dt.date(2025, 7, 1))
    # Aucatzyl never had a REMS: the June 2025 CAR-T change does not shorten its periods.
    assert (plan.proximity_weeks, plan.no_driving_weeks) == (4, 8)
    assert any("tagged S" in note for note in plan.notes)


def test_an_unknown_product_lists_ids_and_brands() -> None:
    with pytest.raises(InputError) as err:
        monitoring_plan("Amtagvy", dt.date(2026, 1, 1))
    assert err.value.where == "product_id"
    assert "lifileucel (Amtagvi)" in (err.value.hint or "")


def test_management_accepts_a_brand_name() -> None:
    assert crs_management(3, 70, product_id="yescarta").product_id == "axicabtagene_ciloleucel"


# ------------------------------------------------------- management checked against doses given


def test_management_refuses_a_fourth_tocilizumab_dose_in_24_hours() -> None:
    given = [(hours(0), 560.0), (hours(8), 560.0), (hours(16), 560.0)]
    plan = crs_management(3, 70, tocilizumab_given=given, at=hours(23))
    line = next(x for x in plan.lines if x.drug == "tocilizumab")
    assert line.allowed is False and line.dose_mg is None
    assert any("3 doses in 24 hours" in r for r in line.refusal_reasons)
    assert plan.tocilizumab is not None and not plan.tocilizumab.allowed
    # the corticosteroid lines are unaffected
    assert next(x for x in plan.lines if x.id == "crs3-dexamethasone").dose_mg == 10


def test_management_allows_a_dose_within_the_limits() -> None:
    plan = crs_management(2, 120, tocilizumab_given=[(hours(0), None)], at=hours(9))
    line = next(x for x in plan.lines if x.drug == "tocilizumab")
    assert line.allowed is True and line.dose_mg == 800


def test_management_with_doses_needs_the_time() -> None:
    with pytest.raises(InputError) as err:
        crs_management(2, 70, tocilizumab_given=[(hours(0), 560.0)])
    assert err.value.where == "at"


def test_a_dose_of_unknown_amount_counts_towards_the_limits() -> None:
    advice = tocilizumab_dose(70, [(hours(0), None), (hours(8), None), (hours(16), None)], at=hours(20))
    assert not advice.allowed and advice.doses_in_last_24h == 3
