"""The ``actnav toxicity`` commands added for issue 4 (CliRunner on ``actnav.toxicity.cli.app``):
grade with guidance, risk, ctcae, plan, tocilizumab, show; every bad input is an InputError naming
the field or option.

Expected values: tocilizumab 8 mg/kg capped at 800 mg, at most 3 doses in 24 h (clinical-reference
6.1); EASIX = LDH x creatinine [mg/dL] / platelets [10^9/L] with creatinine umol/L / 88.4 (4.1);
m-EASIX with CRP mg/L / 10 (4.2); CTCAE v5.0 ALT grades and the baseline rule (6a.2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from actnav.errors import InputError, UnitError
from actnav.toxicity.cli import app, parse_given

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "toxicity" / "crs-course.json"

runner = CliRunner()


def _write(tmp_path: Path, data: Any, name: str = "input.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _error(args: list[str], *, stdin: str | None = None) -> InputError:
    result = runner.invoke(app, args, input=stdin)
    assert isinstance(result.exception, InputError), result.output
    assert result.stdout == ""
    return result.exception


# -------------------------------------------------------------------------------------- grade


def test_grade_the_example_course_with_guidance_as_json() -> None:
    result = runner.invoke(app, ["grade", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["max_grades"] == {"crs": 3, "icans": 2}
    assessment = out["assessments"][5]
    assert (assessment["crs"]["grade"], assessment["icans"]["grade"]) == (3, 2)
    assert assessment["icans"]["deciding_domain"] == "ice"
    assert assessment["guidance"]["tocilizumab"]["allowed"] is False
    assert out["max_guidance"]["crs"]["grade"] == 3
    assert out["monitoring_plan"]["as_of"] == "2025-09-11"


def test_grade_the_example_course_as_text_with_as_of() -> None:
    result = runner.invoke(app, ["grade", str(EXAMPLE), "--format", "text", "--as-of", "2025-05-01"])
    assert result.exit_code == 0, result.output
    assert "CRS grade 3 management (82 kg):" in result.stdout
    assert "Tocilizumab check at 2025-09-03 20:00+02:00: 3 dose(s) given" in result.stdout
    assert "as of 2025-05-01" in result.stdout
    assert "Stay near the treatment centre: 4 weeks" in result.stdout  # before the June 2025 change


def test_grade_a_single_assessment_with_weight_and_product() -> None:
    result = runner.invoke(
        app,
        ["grade", "-", "--weight-kg", "120", "--product", "yescarta"],
        input=json.dumps({"time": "2025-09-03T08:00:00", "temp_c": 39.0, "hypotension": True}),
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["crs"]["grade"] == 2
    toci = next(x for x in out["guidance"]["crs"]["lines"] if x["drug"] == "tocilizumab")
    assert toci["dose_mg"] == 800


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--weight-kg", "heavy"], "--weight-kg"),
        (["--weight-kg", "-70"], "--weight-kg"),
        (["--as-of", "01/09/2025"], "--as-of"),
        (["--product", "snake_oil"], "--product"),
    ],
)
def test_grade_bad_options_are_named(args: list[str], where: str) -> None:
    error = _error(["grade", "-", *args], stdin=json.dumps({"temp_c": 38.0}))
    assert error.where == where


def test_grade_refuses_weight_for_a_course() -> None:
    assert _error(["grade", str(EXAMPLE), "--weight-kg", "70"]).where == "--weight-kg"


def test_grade_a_bad_product_in_the_file_names_it(tmp_path: Path) -> None:
    data = {**json.loads(EXAMPLE.read_text(encoding="utf-8")), "product": "Amtagvy"}
    error = _error(["grade", str(_write(tmp_path, data))])
    assert error.where == "product"
    assert "unknown product 'Amtagvy'" in error.message


# --------------------------------------------------------------------------------------- risk

RISK: dict[str, Any] = {
    "timing": "day -5, before lymphodepletion",
    "labs": {
        "ldh": {"value": 250, "unit": "U/L"},
        "creatinine": {"value": 88.4, "unit": "umol/L"},
        "platelets": {"value": 100000, "unit": "/uL"},
        "crp": {"value": 50, "unit": "mg/L"},
        "anc": {"value": 1.0, "unit": "10^9/L"},
        "hemoglobin": {"value": 85, "unit": "g/L"},
        "ferritin": {"value": 2500, "unit": "ng/mL", "uln": 300},
    },
}


def test_risk_computes_every_score_its_inputs_allow(tmp_path: Path) -> None:
    result = runner.invoke(app, ["risk", str(_write(tmp_path, RISK))])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["easix"]["value"] == pytest.approx(2.5, rel=1e-4)  # 250 x 1.0 / 100
    assert out["m_easix"]["value"] == pytest.approx(12.5, rel=1e-4)  # 250 x 5.0 / 100
    assert out["easix"]["band"] is None  # no validated CAR-T cut-off
    hematotox = out["car_hematotox"]
    # platelets 100 (1) + ANC 1.0 (1) + Hb 8.5 (1) + CRP 5.0 (1) + ferritin 2,500 (2) = 6, high
    assert (hematotox["points"], hematotox["risk_group"]) == (6, "high")
    assert hematotox["unconfirmed"] is True
    assert "hscore" in out["not_computed"]
    assert "CAR-HEMATOTOX" in out["unconfirmed"] and "IEC-HS" in out["unconfirmed"]


def test_risk_hscore_and_iec_hs_with_clinical_findings(tmp_path: Path) -> None:
    data = {
        "scores": ["hscore", "iec_hs"],
        "labs": {
            "hemoglobin": {"value": 8.0, "unit": "g/dL"},
            "wbc": {"value": 3000, "unit": "/uL"},
            "platelets": {"value": 150, "unit": "10^9/L"},
            "ferritin": {"value": 5000, "unit": "ug/L", "uln": 400},
            "triglycerides": {"value": 2.0, "unit": "mmol/L"},
            "fibrinogen": {"value": 2.0, "unit": "g/L"},
            "ast": {"value": 50, "unit": "U/L", "uln": 40},
        },
        "clinical": {
            "immunosuppression": True,
            "temp_c": 39.0,
            "hepatomegaly": False,
            "splenomegaly": True,
            "hemophagocytosis": False,
            "onset": "after_crs_resolved",
        },
    }
    result = runner.invoke(app, ["risk", str(_write(tmp_path, data)), "--format", "text"])
    assert result.exit_code == 0, result.output
    # 18 + 33 + 23 + 24 + 35 + 44 + 30 + 19 + 0 = 226 (the worked example of test_risk_scores.py)
    assert "HScore: 226/337, at or above the cut-off 169" in result.stdout
    assert "UNCONFIRMED IEC-HS: features suggestive of IEC-HS: assess" in result.stdout


@pytest.mark.parametrize(
    ("data", "where", "kind"),
    [
        (
            {
                "labs": {
                    "ldh": {"value": 250, "unit": "mg/furlong"},
                    "creatinine": {"value": 1, "unit": "mg/dL"},
                    "platelets": {"value": 100, "unit": "10^9/L"},
                }
            },
            "labs.ldh.unit",
            UnitError,
        ),
        (
            {"labs": {"creatinine": {"value": 1, "unit": "mg/dL"}}, "scores": ["easix"]},
            "labs.ldh",
            InputError,
        ),
        ({"labs": {"crp": {"value": -1, "unit": "mg/L"}}}, "labs.crp.value", InputError),
        (
            {
                "labs": {
                    "platelets": {"value": 150000, "unit": "10^9/L"},
                    "ldh": {"value": 250, "unit": "U/L"},
                    "creatinine": {"value": 1, "unit": "mg/dL"},
                }
            },
            "labs.platelets.value",
            InputError,
        ),
        ({"labs": {}, "clinical": {"temp_c": 60}}, "clinical.temp_c", InputError),
        ({"labs": {"ferritin": {"value": 10, "unit": "ng/mL", "ulm": 3}}}, "labs.ferritin.ulm", InputError),
        ({"lab": {}}, "labs", InputError),  # labs missing (and lab unknown)
        ({"labs": {}, "scores": ["sofa"]}, "scores[0]", InputError),
    ],
)
def test_risk_bad_input_names_the_field(tmp_path: Path, data: Any, where: str, kind: type[Exception]) -> None:
    error = _error(["risk", str(_write(tmp_path, data))])
    assert isinstance(error, kind)
    assert error.where == where


# -------------------------------------------------------------------------------------- ctcae


def test_ctcae_alt_with_a_normal_and_an_abnormal_baseline() -> None:
    result = runner.invoke(app, ["ctcae", "alt", "--value", "250", "--uln", "40", "--baseline", "30"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["grade"], out["column"], out["ctcae_version"]) == (3, "uln", "5.0")  # 6.25 x ULN
    result = runner.invoke(app, ["ctcae", "alt", "--value", "250", "--uln", "40", "--baseline", "60"])
    assert json.loads(result.stdout)["grade"] == 2  # 4.17 x an abnormal baseline


def test_ctcae_counts_with_units_and_clinical_options_as_text() -> None:
    result = runner.invoke(
        app, ["ctcae", "platelets", "--value", "45000", "--unit", "/uL", "--lln", "150000", "-f", "text"]
    )
    assert result.exit_code == 0, result.output
    assert "Platelet count decreased (CTCAE v5.0, MedDRA 10035528): grade 3" in result.stdout
    result = runner.invoke(app, ["ctcae", "diarrhea", "--option", "7_or_more_stools_above_baseline"])
    assert json.loads(result.stdout)["grade"] == 3


def test_ctcae_json_input_grades_a_list(tmp_path: Path) -> None:
    items = [
        {"term": "ast", "value": 130, "uln": 40},
        {"term": "neutrophils", "value": 0.4, "lln": 1.8},
        {"term": "fever", "temperature": 101.5, "temperature_unit": "[degF]"},
    ]
    result = runner.invoke(app, ["ctcae", "--input", str(_write(tmp_path, items))])
    assert result.exit_code == 0, result.output
    assert [r["grade"] for r in json.loads(result.stdout)] == [2, 4, 1]


def test_ctcae_list_terms() -> None:
    result = runner.invoke(app, ["ctcae", "--list", "--format", "text"])
    assert result.exit_code == 0
    assert "alanine_aminotransferase_increased" in result.stdout


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["ctcae", "alt", "--value", "250"], "--uln"),
        (["ctcae", "alt", "--value", "abc", "--uln", "40"], "--value"),
        (["ctcae", "alt", "--value", "-3", "--uln", "40"], "--value"),
        (["ctcae", "alt", "--value", "250", "--uln", "40", "--lln", "3"], "--lln"),
        (["ctcae", "snake", "--value", "1"], "TERM"),
        (["ctcae", "diarrhea", "--option", "nope"], "--option"),
        (["ctcae", "fever", "--temperature", "60"], "--temperature"),
        (["ctcae"], "TERM"),
    ],
)
def test_ctcae_bad_options_are_named(args: list[str], where: str) -> None:
    assert _error(args).where == where


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([{"term": "ast", "value": 130, "uln": 40}, {"term": "neutrophils", "value": 0.4}], "[1].lln"),
        ([{"term": "ast", "value": "130", "uln": 40}], "[0].value"),
        ({"term": "ast", "value": 130, "uln": 40, "upper": 3}, "upper"),
        ([], None),
    ],
)
def test_ctcae_bad_json_input_is_named(tmp_path: Path, data: Any, where: str | None) -> None:
    assert _error(["ctcae", "--input", str(_write(tmp_path, data))]).where == where


def test_ctcae_input_and_options_together_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, {"term": "ast", "value": 130, "uln": 40})
    assert _error(["ctcae", "--input", str(path), "--value", "3"]).where == "--input"


# --------------------------------------------------------------------------------------- plan


def test_plan_by_brand_name_for_a_til_product() -> None:
    result = runner.invoke(app, ["plan", "Amtagvi", "--as-of", "2025-07-01"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["product_id"], out["modality"]) == ("lifileucel", "TIL")
    assert out["boxed_warnings"]


def test_plan_as_text_for_a_car_t_after_june_2025() -> None:
    result = runner.invoke(app, ["plan", "axicabtagene_ciloleucel", "--as-of", "2025-07-01", "-f", "text"])
    assert result.exit_code == 0, result.output
    assert (
        "Stay near the treatment centre: 2 weeks; no driving or hazardous activities: 2 weeks"
        in result.stdout
    )


@pytest.mark.parametrize(
    ("args", "where"),
    [(["plan", "snake_oil"], "PRODUCT"), (["plan", "Tecelra", "--as-of", "2025-02-30"], "--as-of")],
)
def test_plan_bad_input_is_named(args: list[str], where: str) -> None:
    assert _error(args).where == where


# -------------------------------------------------------------------------------- tocilizumab


def test_tocilizumab_for_120_kg_is_800_mg() -> None:
    result = runner.invoke(app, ["tocilizumab", "--weight-kg", "120", "--at", "2025-09-03T08:00"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["allowed"], out["dose_mg"], out["capped"]) == (True, 800, True)


def test_tocilizumab_fourth_dose_in_24_hours_is_refused_with_the_reason() -> None:
    given = ["2025-09-03T00:00:560", "2025-09-03T08:00:560", "2025-09-03T16:00:560"]
    args = ["tocilizumab", "--weight-kg", "70", "--at", "2025-09-03T23:00", "-f", "text"]
    for item in given:
        args += ["--given", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "a further dose is NOT ALLOWED now" in result.stdout
    assert "the limit is 3 doses in 24 hours" in result.stdout
    assert "Next dose possible from 2025-09-04 00:00" in result.stdout


def test_tocilizumab_given_accepts_utc_offsets() -> None:
    assert parse_given(["2025-09-03T04:45+02:00:656"])[0][1] == 656
    assert parse_given(["2025-09-03T04:45:00Z:656"])[0][0].utcoffset() is not None


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--weight-kg", "abc", "--at", "2025-09-03T08:00"], "--weight-kg"),
        (["--weight-kg", "0", "--at", "2025-09-03T08:00"], "--weight-kg"),
        (["--weight-kg", "900", "--at", "2025-09-03T08:00"], "--weight-kg"),
        (["--weight-kg", "70", "--at", "tomorrow"], "--at"),
        (["--weight-kg", "70", "--at", "2025-09-03T08:00", "--given", "2025-09-03T06:00"], "--given[0]"),
        (["--weight-kg", "70", "--at", "2025-09-03T08:00", "--given", "2025-09-03T06:00:0"], "--given[0]"),
        (["--weight-kg", "70", "--at", "2025-09-03T08:00", "--given", "2025-09-03T09:00:560"], "--given[0]"),
        (["--weight-kg", "70", "--at", "2025-09-03T08:00", "--given", "2025-09-03T06:00Z:560"], "--at"),
    ],
)
def test_tocilizumab_bad_options_are_named(args: list[str], where: str) -> None:
    assert _error(["tocilizumab", *args]).where == where


# --------------------------------------------------------------------------------------- show


def test_record_then_show_the_course(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'actnav.db'}"
    recorded = runner.invoke(app, ["record", str(EXAMPLE), "--case", "CASE-7", "--database-url", url])
    assert recorded.exit_code == 0, recorded.output
    result = runner.invoke(app, ["show", "--case", "CASE-7", "--database-url", url])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["product"] == "axicabtagene_ciloleucel"
    assert out["max_grades"] == {"crs": 3, "icans": 2}
    assert out["crs"]["onset_day"] == 1
    assert [a["crs"]["grade"] for a in out["assessments"]] == [None, 1, 2, 2, 3, 3, 2, 0, 0, 0, 0]
    assert out["input"]["weight_kg"] == 82
    text = runner.invoke(app, ["show", "--case", "CASE-7", "--database-url", url, "--format", "text"])
    assert "Maximum grades: CRS 3, ICANS 2" in text.stdout
    assert "CRS: maximum grade 3 on day 2" in text.stdout


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--case", "CASE-404"], "--case"),
        (["--case", "Jane Doe"], "--case"),
        (["--case", "CASE-7", "--course-id", "x"], "--course-id"),
        (["--case", "CASE-7", "--course-id", "1.5"], "--course-id"),
    ],
)
def test_show_bad_input_is_named(tmp_path: Path, args: list[str], where: str) -> None:
    url = f"sqlite:///{tmp_path / 'actnav.db'}"
    assert _error(["show", *args, "--database-url", url]).where == where


# -------------------------------------------------------------------------------------- icaht

ANC = {
    "anc_unit": "/uL",
    "anc": [
        {"day": 0, "value": 900},
        {"day": 2, "value": 300},
        {"day": 5, "value": 80},
        {"day": 9, "value": 400},
        {"day": 12, "value": 900},
        {"day": 13, "value": 1100},
        {"day": 14, "value": 1500},
        {"day": 20, "value": 2000},
        {"day": 40, "value": 1800},
        {"day": 60, "value": 1700},
    ],
}


def test_icaht_early_grade_from_an_anc_series(tmp_path: Path) -> None:
    # ANC <= 500/uL from day 2 to day 9 (days between measurements interpolated): 8 days -> grade 2
    # (7-13 days, clinical-reference 6b.1); days 21-30 have no value, so the grade is a minimum.
    result = runner.invoke(app, ["icaht", str(_write(tmp_path, ANC))])
    assert result.exit_code == 0, result.output
    early = json.loads(result.stdout)["early"]
    assert (early["grade"], early["at_least"]) == (2, True)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"anc": [{"day": 1, "date": "2025-01-01", "value": 1}]}, "anc[0]"),
        ({"anc": [{"date": "2025-01-01", "value": 1}]}, "infusion_date"),
        ({"anc": [{"day": 1, "value": 900}]}, "anc[0].value"),
        ({"anc": [{"day": 1, "value": 0.9}], "anc_unit": "furlongs"}, "anc_unit"),
        ({"anc": []}, "anc"),
        ({"anc": [{"day": 1, "value": 0.9}], "censor": 3}, "censor"),
    ],
)
def test_icaht_bad_input_is_named(tmp_path: Path, data: Any, where: str) -> None:
    assert _error(["icaht", str(_write(tmp_path, data))]).where == where


def test_ctcae_json_input_of_one_object_gives_one_object(tmp_path: Path) -> None:
    path = _write(tmp_path, {"term": "creatinine", "value": 2.0, "uln": 1.2, "baseline": 0.6})
    result = runner.invoke(app, ["ctcae", "--input", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["grade"], out["column"]) == (3, "baseline")  # 3.3 x baseline beats 1.67 x ULN
