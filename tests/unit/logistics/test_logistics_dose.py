"""Labelled doses from the product labels, computed exactly, and the certificate check.

Expected values (clinical-reference.md, product section "Dose"):

* Kymriah B-ALL: <= 50 kg 0.2-5.0 x 10^6 CAR+ viable T cells per kg; > 50 kg 0.1-2.5 x 10^8 total
  (flat); LBCL/FL 0.6-6.0 x 10^8 flat (1.1).
* Yescarta: 2 x 10^6/kg, maximum 2 x 10^8 (1.2).
* Tecartus: MCL 2 x 10^6/kg, max 2 x 10^8; ALL 1 x 10^6/kg, max 1 x 10^8 (1.3).
* Carvykti: 0.5-1.0 x 10^6/kg, maximum 1 x 10^8 per infusion (1.6).
* Abecma: 300-510 x 10^6 (from 4/2024), 300-460 x 10^6 before; not weight-based (1.5).
* Amtagvi: 7.5-72 x 10^9 viable cells (1.7). Tecelra: 2.68-10 x 10^9 (1.8).
"""

from __future__ import annotations

import pytest

from actnav.errors import InputError
from actnav.logistics.dose import Certificate, check_certificate, labelled_dose

TISA, ALL = "tisagenlecleucel", "b-all-up-to-25"


def test_tisagenlecleucel_all_at_50_kg_is_per_kg() -> None:
    dose = labelled_dose(TISA, ALL, 50)
    assert dose.basis == "per_kg"
    assert (dose.per_kg_min, dose.per_kg_max) == (0.2e6, 5.0e6)
    assert (dose.min_cells, dose.max_cells) == (1.0e7, 2.5e8)  # 0.2e6 x 50, 5.0e6 x 50


def test_tisagenlecleucel_all_at_50_point_1_kg_is_the_flat_band() -> None:
    dose = labelled_dose(TISA, ALL, 50.1)
    assert dose.basis == "flat"
    assert (dose.min_cells, dose.max_cells) == (0.1e8, 2.5e8)


def test_tisagenlecleucel_all_per_kg_arithmetic_is_exact() -> None:
    dose = labelled_dose(TISA, ALL, 49.9)
    # 0.2e6 x 49.9 = 9,980,000 exactly; 5.0e6 x 49.9 = 249,500,000 exactly (binary floats would drift).
    assert dose.min_cells == 9_980_000
    assert dose.max_cells == 249_500_000
    assert labelled_dose(TISA, ALL, 20).min_cells == 4_000_000
    assert labelled_dose(TISA, ALL, 20).max_cells == 100_000_000


def test_tisagenlecleucel_lymphoma_is_flat_whatever_the_weight() -> None:
    for weight in (45, 120):
        dose = labelled_dose(TISA, "lbcl-after-2-lines", weight)
        assert (dose.basis, dose.min_cells, dose.max_cells) == ("flat", 0.6e8, 6.0e8)


def test_axicabtagene_is_2e6_per_kg_and_120_kg_hits_the_2e8_cap() -> None:
    at_80 = labelled_dose("axicabtagene_ciloleucel", "lbcl-second-line", 80)
    assert (at_80.min_cells, at_80.max_cells, at_80.capped) == (1.6e8, 1.6e8, False)
    at_120 = labelled_dose("axicabtagene_ciloleucel", "lbcl-second-line", 120)
    assert (at_120.min_cells, at_120.max_cells) == (2.0e8, 2.0e8)  # not 2.4e8
    assert at_120.capped and at_120.cap_cells == 2.0e8 and at_120.target


def test_axicabtagene_at_exactly_100_kg_reaches_the_cap_without_cutting() -> None:
    dose = labelled_dose("Yescarta", "lbcl-after-2-lines", 100)
    assert (dose.max_cells, dose.capped) == (2.0e8, False)


def test_brexucabtagene_all_is_1e6_per_kg_capped_at_1e8_and_mcl_2e6_capped_at_2e8() -> None:
    all_ = labelled_dose("brexucabtagene_autoleucel", "b-all-adult", 130)
    assert (all_.min_cells, all_.max_cells, all_.capped) == (1.0e8, 1.0e8, True)
    assert labelled_dose("brexucabtagene_autoleucel", "b-all-adult", 70).max_cells == 7.0e7
    mcl = labelled_dose("Tecartus", "mcl", 150)
    assert (mcl.max_cells, mcl.capped) == (2.0e8, True)


def test_ciltacabtagene_range_is_cut_at_1e8_at_high_weight() -> None:
    at_80 = labelled_dose("ciltacabtagene_autoleucel", "mm-after-1-line-len-refractory-2024", 80)
    assert (at_80.min_cells, at_80.max_cells, at_80.capped) == (4.0e7, 8.0e7, False)
    at_150 = labelled_dose("Carvykti", "mm-after-1-line-len-refractory-2024", 150)
    assert (at_150.min_cells, at_150.max_cells, at_150.capped) == (7.5e7, 1.0e8, True)


def test_idecabtagene_is_flat_and_follows_the_label_revision() -> None:
    now = labelled_dose("idecabtagene_vicleucel", "mm-after-2-lines-2024", 70)
    assert (now.basis, now.min_cells, now.max_cells) == ("flat", 3.0e8, 5.1e8)
    before = labelled_dose("idecabtagene_vicleucel", "mm-after-4-lines-2021", None)
    assert (before.min_cells, before.max_cells) == (3.0e8, 4.6e8)


def test_til_and_tcr_products_are_flat_and_need_no_indication() -> None:
    til = labelled_dose("Amtagvi", None, None)
    assert (til.indication_id, til.min_cells, til.max_cells) == ("melanoma-after-anti-pd1", 7.5e9, 7.2e10)
    tcr = labelled_dose("afami-cel", None, 60)
    assert (tcr.min_cells, tcr.max_cells) == (2.68e9, 1.0e10)


def test_a_product_with_several_dose_rules_needs_the_indication() -> None:
    with pytest.raises(InputError) as caught:
        labelled_dose(TISA, None, 40)
    assert caught.value.where == "indication"
    assert "b-all-up-to-25" in (caught.value.hint or "")


def test_a_weight_based_dose_needs_the_weight() -> None:
    with pytest.raises(InputError) as caught:
        labelled_dose(TISA, ALL, None)
    assert caught.value.where == "weight_kg"
    with pytest.raises(InputError):
        labelled_dose("axicabtagene_ciloleucel", "lbcl-second-line", None)


@pytest.mark.parametrize("weight", [0, -3, 401, float("nan")])
def test_implausible_weights_are_refused(weight: float) -> None:
    with pytest.raises(InputError) as caught:
        labelled_dose(TISA, ALL, weight)
    assert caught.value.where == "weight_kg"


def test_an_unknown_indication_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        labelled_dose(TISA, "melanoma", 40)
    assert caught.value.where == "indication"


# ------------------------------------------------------------------------------ certificate check


def test_a_certificate_inside_the_range_is_within_the_label() -> None:
    dose = labelled_dose(TISA, ALL, 30)  # 6e6 to 1.5e8
    for cells in (6.0e6, 5.0e7, 1.5e8):
        result = check_certificate(dose, Certificate(cells=cells))
        assert result.status == "within_label", cells
        assert result.what_to_do is None


def test_a_certificate_outside_the_range_is_out_of_specification_with_what_to_do() -> None:
    dose = labelled_dose(TISA, ALL, 30)
    low = check_certificate(dose, Certificate(cells=5.9e6))
    high = check_certificate(dose, Certificate(cells=1.51e8))
    for result, word in ((low, "below"), (high, "above")):
        assert result.status == "out_of_specification"
        assert word in result.findings[0]
        assert result.what_to_do is not None and "expanded access" in result.what_to_do
        assert any("CIBMTR" in s.citation for s in result.sources)


def test_a_capped_dose_flags_a_product_above_the_cap() -> None:
    dose = labelled_dose("axicabtagene_ciloleucel", "lbcl-second-line", 120)
    assert check_certificate(dose, Certificate(cells=2.0e8)).status == "within_label"
    assert check_certificate(dose, Certificate(cells=2.4e8)).status == "out_of_specification"


def test_a_certificate_stating_unmet_specifications_is_flagged_even_in_range() -> None:
    dose = labelled_dose("idecabtagene_vicleucel", "mm-after-2-lines-2024", 70)
    result = check_certificate(dose, Certificate(cells=4.0e8, meets_release_specifications=False))
    assert result.status == "out_of_specification"
    assert "release specifications are not met" in " ".join(result.findings)
