"""EASIX, m-EASIX, CAR-HEMATOTOX and HScore against worked examples.

Sources of the worked examples (computed by hand from the published formulas / point tables):
* EASIX / m-EASIX: clinical-reference.md 4.1-4.2 (formula; creatinine umol/L / 88.4; platelets
  per uL / 1,000; CRP mg/L / 10).
* CAR-HEMATOTOX: clinical-reference.md 4.3 point table (Rejeski, Blood 2021) and risk groups
  (low 0-1, high >= 2; european-mcl.net calculator page).
* HScore: clinical-reference.md 4.4 table (Fardet 2014), bands also in PMC7589537 table 4.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from actnav.errors import DataFileError, InputError, UnitError
from actnav.knowledge.loader import data_root, parse_file, read_yaml
from actnav.toxicity.risk import (
    RiskScoresFile,
    car_hematotox,
    easix,
    easix_score,
    hscore,
    load_risk_scores,
    m_easix,
    m_easix_score,
)

# ------------------------------------------------------------------------------------- EASIX


def test_easix_formula_worked_example() -> None:
    # Reference 4.1: LDH 250 U/L x creatinine 1.0 mg/dL / platelets 100 x10^9/L = 2.5
    assert easix(250, 1.0, 100) == pytest.approx(2.5)


def test_easix_converts_umol_l_and_per_ul() -> None:
    # Reference 4.1 unit traps: 88.4 umol/L = 1.0 mg/dL; 100,000/uL = 100 x10^9/L
    result = easix_score(
        ldh=250, creatinine=88.4, creatinine_unit="umol/L", platelets=100_000, platelets_unit="/uL"
    )
    assert result.inputs["creatinine_mg_dl"] == pytest.approx(1.0, rel=1e-4)
    assert result.inputs["platelets_10e9_l"] == pytest.approx(100.0)
    assert result.value == pytest.approx(2.5, rel=1e-4)
    assert result.log2_value == pytest.approx(math.log2(2.5), rel=1e-4)


def test_easix_has_no_invented_bands() -> None:
    # No validated CAR-T cut-off exists (reference 4.1 [U]); the known-wrong 3.2/10 bands are absent.
    assert load_risk_scores().easix.thresholds == ()
    result = easix_score(ldh=600, creatinine=2.0, platelets=20)
    assert result.band is None
    assert result.value == pytest.approx(60.0)
    assert any("No validated" in note for note in result.notes)


def test_m_easix_crp_mg_l_to_mg_dl() -> None:
    # Reference 4.2: m-EASIX = LDH x CRP [mg/dL] / platelets; CRP 50 mg/L = 5 mg/dL
    assert m_easix(300, 5.0, 150) == pytest.approx(10.0)
    result = m_easix_score(ldh=300, crp=50, crp_unit="mg/L", platelets=150)
    assert result.inputs["crp_mg_dl"] == pytest.approx(5.0)
    assert result.value == pytest.approx(10.0)
    assert result.score == "m-EASIX"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1, 1.0, 100), "ldh_u_l"),
        ((250, -0.1, 100), "creatinine_mg_dl"),
        ((250, 1.0, 0), "platelets_10e9_l"),
        ((250, 1.0, -5), "platelets_10e9_l"),
        ((250, 1.0, 150_000), "platelets_10e9_l"),  # per uL passed as 10^9/L: implausible
        ((250, float("nan"), 100), "creatinine_mg_dl"),
    ],
)
def test_easix_rejects_implausible_inputs(args: tuple[float, float, float], field: str) -> None:
    with pytest.raises(InputError) as err:
        easix(*args)
    assert err.value.where == field


def test_unknown_unit_is_an_error() -> None:
    with pytest.raises(UnitError):
        easix_score(ldh=250, creatinine=1.0, creatinine_unit="mg/furlong", platelets=100)
    with pytest.raises(UnitError) as err:
        easix_score(ldh=250, ldh_unit="mg/dL", creatinine=1.0, platelets=100)
    assert err.value.where == "ldh_unit"


# ----------------------------------------------------------------------------- CAR-HEMATOTOX

_LOW: dict[str, Any] = {"platelets": 250, "anc": 3.0, "hemoglobin": 12.0, "crp": 0.5, "ferritin": 300}


def test_hematotox_all_normal_is_zero_low() -> None:
    result = car_hematotox(**_LOW)
    assert result.points == 0
    assert result.risk_group == "low"
    assert result.maximum == 7


def test_hematotox_maximum_worked_example() -> None:
    # Reference 4.3 table: platelets < 75 (2) + ANC < 1.2 (1) + Hb < 9.0 (1) + CRP > 3.0 (1)
    # + ferritin > 2,000 (2) = 7, high risk.
    result = car_hematotox(platelets=60, anc=1.0, hemoglobin=8.5, crp=5.0, ferritin=2500)
    assert result.points == 7
    assert result.risk_group == "high"
    assert {i.item: i.points for i in result.items} == {
        "platelets": 2,
        "anc": 1,
        "hemoglobin": 1,
        "crp": 1,
        "ferritin": 2,
    }


@pytest.mark.parametrize(
    ("change", "points", "group"),
    [
        ({"ferritin": 1000}, 1, "low"),  # 650-2,000: 1 point -> low (0-1)
        ({"platelets": 100}, 1, "low"),  # 75-175: 1 point
        ({"platelets": 60}, 2, "high"),  # < 75: 2 points -> high (>= 2), not the invented ">= 3"
        ({"ferritin": 2500}, 2, "high"),
        ({"anc": 1.0, "crp": 4.0}, 2, "high"),
    ],
)
def test_hematotox_risk_groups(change: dict[str, Any], points: int, group: str) -> None:
    result = car_hematotox(**{**_LOW, **change})
    assert (result.points, result.risk_group) == (points, group)


def test_hematotox_units_converted() -> None:
    # CRP 50 mg/L = 5.0 mg/dL (1 point); platelets 60,000/uL = 60 x10^9/L (2 points); Hb 85 g/L = 8.5 g/dL.
    result = car_hematotox(
        platelets=60_000,
        platelets_unit="/uL",
        anc=3.0,
        hemoglobin=85,
        hemoglobin_unit="g/L",
        crp=50,
        crp_unit="mg/L",
        ferritin=300,
    )
    assert result.points == 2 + 1 + 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("platelets", 175),
        ("platelets", 75),
        ("anc", 1.2),
        ("hemoglobin", 9.0),
        ("crp", 3.0),
        ("ferritin", 650),
        ("ferritin", 2000),
    ],
)
def test_hematotox_boundary_values_are_flagged(field: str, value: float) -> None:
    result = car_hematotox(**{**_LOW, field: value})
    assert result.boundary_values, "an exact cut-off value must be listed"
    assert result.unconfirmed


def test_hematotox_is_always_unconfirmed() -> None:
    # The point table is recollection [R] in the reference; the risk groups are verified [V].
    result = car_hematotox(**_LOW)
    assert result.unconfirmed
    tags = {s.verification for s in result.sources}
    assert "R" in tags and "V" in tags


def test_hematotox_negative_count_names_field() -> None:
    with pytest.raises(InputError) as err:
        car_hematotox(**{**_LOW, "anc": -0.1})
    assert err.value.where == "anc"


# ------------------------------------------------------------------------------------ HScore

_HS: dict[str, Any] = {
    "immunosuppression": True,  # 18
    "temperature_c": 39.0,  # 38.4-39.4: 33
    "hepatomegaly": False,
    "splenomegaly": True,  # one organ: 23
    "hemoglobin_g_dl": 8.0,  # <= 9.2: cytopenia
    "wbc_10e9_l": 3.0,  # <= 5: cytopenia
    "platelets_10e9_l": 150,  # > 110: none -> 2 lineages: 24
    "ferritin_ng_ml": 5000,  # 2,000-6,000: 35
    "triglycerides": 2.0,  # mmol/L 1.5-4: 44
    "fibrinogen": 2.0,  # g/L <= 2.5: 30
    "ast_u_l": 50,  # >= 30: 19
    "hemophagocytosis": False,  # 0
}


def test_hscore_worked_example() -> None:
    # Reference 4.4 table: 18 + 33 + 23 + 24 + 35 + 44 + 30 + 19 + 0 = 226 (>= 169)
    result = hscore(**_HS)
    assert result.points == 226
    assert result.at_or_above_cutoff
    assert result.complete
    assert not result.unconfirmed  # bands V (cliot) or S (PMC7589537 table 4)


def test_hscore_maximum_and_minimum() -> None:
    worst = hscore(
        immunosuppression=True,
        temperature_c=40.0,
        hepatomegaly=True,
        splenomegaly=True,
        hemoglobin_g_dl=7.0,
        wbc_10e9_l=1.0,
        platelets_10e9_l=20,
        ferritin_ng_ml=10_000,
        triglycerides=5.0,
        fibrinogen=1.0,
        ast_u_l=200,
        hemophagocytosis=True,
    )
    assert worst.points == 337 == worst.maximum
    best = hscore(
        immunosuppression=False,
        temperature_c=37.0,
        hepatomegaly=False,
        splenomegaly=False,
        hemoglobin_g_dl=14.0,
        wbc_10e9_l=7.0,
        platelets_10e9_l=250,
        ferritin_ng_ml=100,
        triglycerides=1.0,
        fibrinogen=3.0,
        ast_u_l=20,
        hemophagocytosis=False,
    )
    assert best.points == 0
    assert not best.at_or_above_cutoff


@pytest.mark.parametrize(
    ("field", "value", "item", "points"),
    [
        ("temperature_c", 38.39, "temperature", 0),
        ("temperature_c", 38.4, "temperature", 33),
        ("temperature_c", 39.4, "temperature", 33),
        ("temperature_c", 39.41, "temperature", 49),
        ("ferritin_ng_ml", 1999, "ferritin", 0),
        ("ferritin_ng_ml", 2000, "ferritin", 35),
        ("ferritin_ng_ml", 6000, "ferritin", 35),
        ("ferritin_ng_ml", 6001, "ferritin", 50),
        ("triglycerides", 1.49, "triglycerides", 0),
        ("triglycerides", 1.5, "triglycerides", 44),
        ("triglycerides", 4.0, "triglycerides", 44),
        ("triglycerides", 4.01, "triglycerides", 64),
        ("fibrinogen", 2.5, "fibrinogen", 30),
        ("fibrinogen", 2.51, "fibrinogen", 0),
        ("ast_u_l", 29, "ast", 0),
        ("ast_u_l", 30, "ast", 19),
    ],
)
def test_hscore_band_edges(field: str, value: float, item: str, points: int) -> None:
    result = hscore(**{**_HS, field: value})
    assert {i.item: i.points for i in result.items}[item] == points


def test_hscore_mg_dl_inputs() -> None:
    # Triglycerides 354 mg/dL = 4.0 mmol/L (44 points); fibrinogen 250 mg/dL = 2.5 g/L (30 points).
    result = hscore(
        **{
            **_HS,
            "triglycerides": 354,
            "triglycerides_unit": "mg/dL",
            "fibrinogen": 250,
            "fibrinogen_unit": "mg/dL",
        }
    )
    items = {i.item: i.points for i in result.items}
    assert items["triglycerides"] == 44
    assert items["fibrinogen"] == 30


def test_hscore_missing_items_make_a_minimum() -> None:
    result = hscore(**{**_HS, "hemophagocytosis": None, "triglycerides": None})
    assert not result.complete
    assert set(result.missing) == {"hemophagocytosis", "triglycerides"}
    assert result.points == 226 - 44


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature_c", 60.0), ("ferritin_ng_ml", -1), ("platelets_10e9_l", -3), ("ast_u_l", float("inf"))],
)
def test_hscore_rejects_implausible(field: str, value: float) -> None:
    with pytest.raises(InputError) as err:
        hscore(**{**_HS, field: value})
    assert err.value.where == field


# --------------------------------------------------------------------------------- data file


def test_data_file_rejects_unknown_keys() -> None:
    raw = read_yaml(data_root() / "toxicity" / "risk-scores.yaml")
    bad = copy.deepcopy(raw)
    bad["car_hematotox"]["variables"][0]["cutoff_guess"] = 3
    with pytest.raises(DataFileError):
        parse_file(RiskScoresFile, bad, "risk-scores.yaml")


def test_every_unconfirmed_cutoff_is_tagged() -> None:
    data = load_risk_scores()
    for var in data.car_hematotox.variables:
        assert not var.source.verification.confirmed  # [R] rows stay unconfirmed until re-read
        assert var.boundary_source.verification.value == "U"
    assert data.car_hematotox.risk_groups_source.verification.value == "V"


def test_fallback_units_without_the_shared_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without actnav.patient.units the calculators convert with their own pint table.
    from actnav.toxicity import risk

    monkeypatch.setattr(risk, "_patient_units", None)
    creatinine = risk.convert(88.4, "umol/L", "mg/dL", field="creatinine_unit", analyte="creatinine")
    assert creatinine == pytest.approx(1.0, rel=1e-4)
    assert risk.convert(150_000, "/uL", "10*9/L", field="platelets_unit") == pytest.approx(150.0)
    assert risk.convert(50, "mg/L", "mg/dL", field="crp_unit") == pytest.approx(5.0)
    assert risk.convert(100.4, "°F", "Cel", field="t") == pytest.approx(38.0)
    with pytest.raises(UnitError):
        risk.convert(1, "furlong", "mg/dL", field="x")
    with pytest.raises(UnitError):
        risk.convert(1, "mg/dL", "10*9/L", field="x")
