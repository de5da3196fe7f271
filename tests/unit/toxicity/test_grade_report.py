"""The grade report: management for every assessment and for the course maximum, dose checks, plan.

Sources: management lines and limits from clinical-reference.md 6.1-6.3 (tocilizumab 8 mg/kg over
1 h, at most 800 mg a dose, every 8 h at the soonest, at most 3 doses in 24 h and 4 in total [V]);
monitoring plan from the product files and 1.10 (June 2025: 2 weeks near the centre, 2 weeks no
driving for the CD19/BCMA CAR-Ts).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from actnav.errors import InputError
from actnav.toxicity.models import parse_input
from actnav.toxicity.report import AssessmentOnlyReport, CourseReport, grade_report, report_text

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "toxicity" / "crs-course.json"


def _example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return data


def _course_report(data: dict[str, Any], **kwargs: Any) -> CourseReport:
    report = grade_report(parse_input(data), **kwargs)
    assert isinstance(report, CourseReport)
    return report


def _toci(time: str, mg: float | None = 560) -> dict[str, Any]:
    drug: dict[str, Any] = {"drug": "tocilizumab", "time": time}
    if mg is not None:
        drug["dose_mg"] = mg
    return drug


def _course(assessments: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "weight_kg": 70,
        "infusion_date": "2025-09-01",
        "age_years": 50,
        "assessments": assessments,
        **extra,
    }


# --------------------------------------------------------------------------------- the example


def test_the_example_course_is_a_realistic_course_of_about_ten_assessments() -> None:
    data = _example()
    assert 9 <= len(data["assessments"]) <= 12
    report = _course_report(data)
    days = [a.day for a in report.assessments]
    assert days[0] == 0 and days[-1] == 10
    assert [a.crs.grade for a in report.assessments] == [None, 1, 2, 2, 3, 3, 2, 0, 0, 0, 0]
    assert [a.icans.grade for a in report.assessments] == [0, 0, 0, 1, 1, 2, 1, 0, 0, 0, 0]
    assert report.max_grades == {"crs": 3, "icans": 2}
    assert len(report.tocilizumab_given) == 3


def test_json_keeps_the_grade_keys_for_every_assessment_and_the_maximum() -> None:
    out = json.loads(_course_report(_example()).model_dump_json())
    for item in out["assessments"]:
        assert {"grade", "reason"} <= set(item["crs"])
        assert {"grade", "deciding_domain", "reason"} <= set(item["icans"])
        assert "guidance" in item
    assert out["max_grades"] == {"crs": 3, "icans": 2}
    assert out["max_guidance"]["crs_grade"] == 3
    assert out["monitoring_plan"]["product_id"] == "axicabtagene_ciloleucel"


def test_every_graded_assessment_has_management_for_its_grade_and_the_course_weight() -> None:
    report = _course_report(_example())
    for item in report.assessments:
        assert item.guidance is not None
        if item.crs.grade is None:
            assert item.guidance.crs is None
            assert any("CRS criteria not met" in n for n in item.guidance.notes)
        else:
            assert item.guidance.crs is not None
            assert item.guidance.crs.grade == item.crs.grade
            assert item.guidance.crs.weight_kg == 82
        assert item.guidance.icans is not None and item.guidance.icans.grade == item.icans.grade
        for management in (item.guidance.crs, item.guidance.icans):
            for line in management.lines if management else []:
                assert line.source.citation and line.source.verification in {"V", "S", "R", "U"}
                assert (
                    line.unconfirmed == (line.source.verification in {"R", "U"}) or line.drug == "tocilizumab"
                )


def test_weight_based_doses_use_the_course_weight() -> None:
    report = _course_report(_example())
    grade2 = report.assessments[2].guidance
    assert grade2 is not None and grade2.crs is not None
    by_id = {line.id: line for line in grade2.crs.lines}
    assert by_id["crs2-tocilizumab"].dose_mg == 656  # 8 mg/kg x 82 kg
    assert by_id["crs2-methylprednisolone"].dose_mg == 82  # 1 mg/kg
    assert by_id["crs2-dexamethasone"].dose_mg == 10


def test_the_product_keeps_only_its_label_lines() -> None:
    data = _example()
    yescarta = _course_report(data).max_guidance.crs
    data["product"] = "Kymriah"  # brand name, any case
    kymriah_report = _course_report(data)
    assert kymriah_report.product == "tisagenlecleucel"
    kymriah = kymriah_report.max_guidance.crs
    assert yescarta is not None and kymriah is not None
    assert "crs3-methylprednisolone-label" in {line.id for line in yescarta.lines}
    assert "crs3-methylprednisolone-label" not in {line.id for line in kymriah.lines}


# ------------------------------------------------------------------------------ tocilizumab


def test_a_fourth_dose_in_24_hours_is_refused_with_the_reason() -> None:
    report = _course_report(_example())
    peak = report.assessments[5]  # 2025-09-03T20:00, after doses at 20:30 (day 1), 04:45 and 12:50
    assert peak.guidance is not None
    advice = peak.guidance.tocilizumab
    assert advice is not None
    assert not advice.allowed and advice.dose_mg is None
    assert advice.doses_in_last_24h == 3
    assert any("the limit is 3 doses in 24 hours" in r for r in advice.refusal_reasons)
    assert peak.guidance.crs is not None
    toci = next(line for line in peak.guidance.crs.lines if line.drug == "tocilizumab")
    assert toci.allowed is False and toci.dose_mg is None
    assert "Not allowed now" in toci.text and toci.refusal_reasons == advice.refusal_reasons
    assert toci.next_allowed_at == dt.datetime(2025, 9, 3, 20, 50, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def test_a_fifth_dose_in_total_is_refused_in_a_course() -> None:
    fever = {"temp_c": 38.9, "hypotension": True}
    data = _course(
        [
            {"time": "2025-09-02T00:00:00", **fever, "drugs_given": [_toci("2025-09-02T00:00:00")]},
            {"time": "2025-09-02T08:00:00", **fever, "drugs_given": [_toci("2025-09-02T08:00:00")]},
            {"time": "2025-09-02T16:00:00", **fever, "drugs_given": [_toci("2025-09-02T16:00:00")]},
            {"time": "2025-09-03T01:00:00", **fever, "drugs_given": [_toci("2025-09-03T01:00:00")]},
            {"time": "2025-09-03T12:00:00", **fever},
        ]
    )
    report = _course_report(data)
    checks = [a.guidance.tocilizumab for a in report.assessments if a.guidance is not None]
    fourth = checks[3]  # at 01:00 on day 2: the 4th dose itself was given then
    assert fourth is not None and fourth.doses_total == 4
    last = checks[4]
    assert last is not None and not last.allowed
    assert any("4 doses in total" in r for r in last.refusal_reasons)
    assert last.next_allowed_at is None
    assert report.tocilizumab == last


def test_a_120_kg_patient_gets_800_mg_in_the_guidance() -> None:
    data = _course([{"time": "2025-09-02T08:00:00", "temp_c": 39, "hypotension": True}])
    data["weight_kg"] = 120
    crs = _course_report(data).assessments[0].guidance
    assert crs is not None and crs.crs is not None
    line = next(x for x in crs.crs.lines if x.drug == "tocilizumab")
    assert line.dose_mg == 800
    assert "capped at 800 mg" in (line.dose_basis or "")
    assert line.allowed is None  # no dose given yet: nothing to check


def test_doses_are_counted_once_and_a_dose_without_amount_still_counts() -> None:
    data = _course(
        [
            {
                "time": "2025-09-02T08:00:00",
                "temp_c": 39,
                "hypotension": True,
                "drugs_given": [_toci("2025-09-02T08:00:00", None)],
            },
            {
                "time": "2025-09-02T10:00:00",
                "temp_c": 38.5,
                "hypotension": True,
                "drugs_given": [_toci("2025-09-02T08:00:00", None)],
            },  # the same dose recorded again
        ]
    )
    report = _course_report(data)
    assert len(report.tocilizumab_given) == 1
    assert any("recorded twice" in n for n in report.notes)
    check = report.assessments[1].guidance
    assert check is not None and check.tocilizumab is not None
    assert not check.tocilizumab.allowed  # 2 hours after the first dose
    assert check.tocilizumab.doses_total == 1


def test_a_dose_without_its_own_time_is_given_at_its_assessment() -> None:
    data = _course(
        [
            {
                "time": "2025-09-02T08:00:00",
                "temp_c": 39,
                "hypotension": True,
                "drugs_given": [{"drug": "tocilizumab", "dose_mg": 560}],
            },
            {"time": "2025-09-02T17:00:00", "temp_c": 38.5, "hypotension": True},
        ]
    )
    report = _course_report(data)
    assert report.tocilizumab_given[0].time == dt.datetime(2025, 9, 2, 8, 0)
    second = report.assessments[1].guidance
    assert second is not None and second.tocilizumab is not None and second.tocilizumab.allowed


def test_max_guidance_is_for_the_first_assessment_at_the_maximum_grade() -> None:
    report = _course_report(_example())
    maximum = report.max_guidance
    assert (maximum.crs_grade, maximum.icans_grade) == (3, 2)
    assert maximum.crs_time == report.assessments[4].time
    assert maximum.icans_time == report.assessments[5].time
    assert maximum.icans is not None and maximum.icans.concurrent_crs is True
    assert any(line.drug == "tocilizumab" for line in maximum.icans.lines)


def test_icans_without_crs_gets_no_tocilizumab_dose() -> None:
    data = _course([{"time": "2025-09-05T08:00:00", "temp_c": 36.8, "ice_score": 5}])
    guidance = _course_report(data).assessments[0].guidance
    assert guidance is not None and guidance.icans is not None
    assert guidance.icans.concurrent_crs is False
    assert not any(line.drug == "tocilizumab" and line.dose_mg for line in guidance.icans.lines)


# ---------------------------------------------------------------------------- monitoring plan


def test_the_monitoring_plan_is_as_of_the_last_assessment_or_as_of() -> None:
    report = _course_report(_example())
    assert report.as_of == dt.date(2025, 9, 11)
    assert report.monitoring_plan is not None
    assert (report.monitoring_plan.proximity_weeks, report.monitoring_plan.no_driving_weeks) == (2, 2)
    assert any("until at least 2025-09-15" in n for n in report.notes)
    earlier = _course_report(_example(), as_of=dt.date(2024, 1, 10))
    assert earlier.monitoring_plan is not None
    assert (earlier.monitoring_plan.proximity_weeks, earlier.monitoring_plan.no_driving_weeks) == (4, 8)


def test_without_a_product_there_is_no_plan_and_every_label_line_is_shown() -> None:
    data = _example()
    del data["product"]
    report = _course_report(data)
    assert report.product is None and report.monitoring_plan is None
    assert any("No product given" in n for n in report.notes)


def test_a_child_gets_the_paediatric_dosing_note() -> None:
    data = _course([{"time": "2025-09-02T08:00:00", "temp_c": 39, "capd_score": 4}], age_years=9)
    data["weight_kg"] = 28
    report = _course_report(data)
    assert any("paediatric" in n for n in report.notes)
    guidance = report.assessments[0].guidance
    assert guidance is not None and guidance.crs is not None


# --------------------------------------------------------------------------- single assessment


def test_a_single_assessment_gets_guidance_with_a_weight_and_product() -> None:
    parsed = parse_input({"time": "2025-09-03T20:00:00", "temp_c": 38.6, "vasopressors": ["norepinephrine"]})
    report = grade_report(parsed, weight_kg=120, product="YESCARTA")
    assert isinstance(report, AssessmentOnlyReport)
    assert report.crs.grade == 3 and report.product == "axicabtagene_ciloleucel"
    assert report.guidance is not None and report.guidance.crs is not None
    assert next(x for x in report.guidance.crs.lines if x.drug == "tocilizumab").dose_mg == 800
    assert report.monitoring_plan is not None and report.monitoring_plan.as_of == dt.date(2025, 9, 3)


def test_a_single_assessment_without_a_weight_has_no_guidance_but_says_why() -> None:
    report = grade_report(parse_input({"temp_c": 38.0}))
    assert isinstance(report, AssessmentOnlyReport)
    assert report.crs.grade == 1 and report.guidance is None
    assert any("--weight-kg" in n for n in report.notes)


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [({"weight_kg": 70.0}, "--weight-kg"), ({"product": "Yescarta"}, "--product")],
)
def test_weight_or_product_options_with_a_course_are_refused(kwargs: dict[str, Any], where: str) -> None:
    with pytest.raises(InputError) as caught:
        grade_report(parse_input(_example()), **kwargs)
    assert caught.value.where == where


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"weight_kg": 0.0}, "--weight-kg"),
        ({"weight_kg": 900.0}, "--weight-kg"),
        ({"product": "x"}, "--product"),
    ],
)
def test_bad_single_assessment_options_are_named(kwargs: dict[str, Any], where: str) -> None:
    with pytest.raises(InputError) as caught:
        grade_report(parse_input({"temp_c": 38.0}), **kwargs)
    assert caught.value.where == where


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"product": "snake_oil"}, "product"),
        ({"product": 3}, "product"),
        ({"weight_kg": -4}, "weight_kg"),
    ],
)
def test_bad_course_fields_for_guidance_are_named(change: dict[str, Any], where: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_input({**_example(), **change})
    assert caught.value.where == where


def test_drug_times_must_be_given_like_the_assessment_times() -> None:
    data = _course(
        [{"time": "2025-09-02T08:00:00", "temp_c": 39, "drugs_given": [_toci("2025-09-02T08:00:00Z")]}]
    )
    with pytest.raises(InputError) as caught:
        parse_input(data)
    assert caught.value.where == "assessments[0].drugs_given[0].time"


# -------------------------------------------------------------------------------------- text


def test_text_marks_unconfirmed_lines_refusals_and_sources() -> None:
    text = report_text(_course_report(_example()))
    assert "CRS grade 2 management (82 kg):" in text
    assert "UNCONFIRMED Methylprednisolone 82 mg IV twice daily" in text
    assert "NOT ALLOWED NOW (see the tocilizumab check)" in text
    assert "reason: 3 doses in the 24 hours before 2025-09-03 20:00+02:00" in text
    assert "[NCCN Guidelines 6.2; V]" in text
    assert "Management for the maximum CRS grade 3" in text
    assert "Monitoring plan: Yescarta (axicabtagene_ciloleucel, CAR-T) as of 2025-09-11" in text
