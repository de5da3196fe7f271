"""Unit conversion with pint (actnav.patient.units).

Expected values come from the sources named beside them, never from the code under test:
* clinical-reference.md section 6a.1: /mm3 = /uL; 1,500/mm3 = 1.5 x 10^9/L; 75,000/mm3 =
  75.0 x 10^9/L; g/L = g/dL x 10.
* Creatinine: 1 mg/dL = 88.42 umol/L (the conventional laboratory factor; molar mass of
  C4H7N3O = 113.12 g/mol from IUPAC atomic weights gives 88.40, inside the tolerance).
* Bilirubin: 1 mg/dL = 17.1 umol/L (molar mass of C33H36N4O6 = 584.67 g/mol).
* UCUM: 10*3/uL = 10*9/L; [lb_av] = 0.45359237 kg; [in_i] = 2.54 cm; Cel/[degF] by definition.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from actnav.errors import EXIT_BAD_INPUT, UnitError
from actnav.patient.units import canonical_ucum, known_unit, molar_mass, to_unit

WHERE = "Observation/lab-1.valueQuantity.unit"


@pytest.mark.parametrize(
    ("value", "unit", "target", "expected"),
    [
        # counts: CTCAE conventions, clinical-reference.md 6a.1
        (1500, "/mm3", "10*9/L", 1.5),
        (1500, "/uL", "10*9/L", 1.5),
        (1500, "{cells}/uL", "10*9/L", 1.5),
        (75000, "/mm3", "10*9/L", 75.0),
        (75, "10*3/uL", "10*9/L", 75.0),
        (1.5, "10*9/L", "/uL", 1500),
        # mass concentration
        (95, "g/L", "g/dL", 9.5),
        (8.0, "g/dL", "g/L", 80.0),
        (12, "mg/L", "mg/dL", 1.2),
        (500, "ug/L", "ng/mL", 500),
        # body measures and temperature (UCUM definitions)
        (100, "[lb_av]", "kg", 45.359237),
        (70, "[in_i]", "cm", 177.8),
        (37, "Cel", "[degF]", 98.6),
        (212, "[degF]", "Cel", 100.0),
        # same unit, percent, scores, enzyme activity
        (62, "%", "%", 62),
        (1, "{score}", "{score}", 1),
        (45, "[IU]/L", "U/L", 45),
        (90, "mL/min", "mL/min", 90),
    ],
)
def test_conversions_match_the_published_equivalences(
    value: float, unit: str, target: str, expected: float
) -> None:
    assert to_unit(value, unit, target, WHERE) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_one_mg_per_dl_creatinine_is_88_42_umol_per_litre() -> None:
    assert to_unit(1.0, "mg/dL", "umol/L", WHERE, analyte="creatinine") == pytest.approx(88.42, abs=0.03)
    assert to_unit(88.42, "umol/L", "mg/dL", WHERE, analyte="creatinine") == pytest.approx(1.0, abs=0.001)


def test_one_mg_per_dl_bilirubin_is_17_1_umol_per_litre() -> None:
    assert to_unit(17.1, "umol/L", "mg/dL", WHERE, analyte="bilirubin") == pytest.approx(1.0, abs=0.002)


def test_molar_masses_are_those_of_the_molecular_formulas() -> None:
    # 4(12.011) + 7(1.008) + 3(14.007) + 15.999 = 113.12 (IUPAC standard atomic weights)
    assert molar_mass("creatinine") == pytest.approx(113.12)
    assert molar_mass("ferritin") is None


@pytest.mark.parametrize(
    ("written", "ucum"),
    [
        ("mg/dl", "mg/dL"),  # labs write a lower-case l
        ("µmol/L", "umol/L"),
        ("x10^9/L", "10*9/L"),
        ("K/uL", "10*3/uL"),
        ("cells/uL", "{cells}/uL"),
        ("°C", "Cel"),
        ("lbs", "[lb_av]"),
        ("IU/L", "[IU]/L"),
    ],
)
def test_free_text_spellings_resolve_to_their_ucum_code(written: str, ucum: str) -> None:
    assert canonical_ucum(written, WHERE) == ucum


def test_an_unknown_unit_is_a_unit_error_naming_element_and_unit() -> None:
    with pytest.raises(UnitError) as err:
        to_unit(1.2, "furlongs/fortnight", "10*9/L", WHERE)
    assert err.value.where == WHERE
    assert "furlongs/fortnight" in str(err.value)
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_a_count_given_in_mass_units_cannot_be_converted() -> None:
    with pytest.raises(UnitError, match=r"cannot convert 'mg/dL' to '10\*9/L'") as err:
        to_unit(1.2, "mg/dL", "10*9/L", WHERE)
    assert err.value.where == WHERE


def test_substance_to_mass_needs_the_analytes_molar_mass() -> None:
    with pytest.raises(UnitError, match="cannot convert"):
        to_unit(88.42, "umol/L", "mg/dL", WHERE)  # no analyte given
    with pytest.raises(UnitError, match="no molar mass"):
        to_unit(88.42, "umol/L", "mg/dL", WHERE, analyte="ferritin")


def test_a_missing_unit_is_an_error() -> None:
    with pytest.raises(UnitError, match="no unit given"):
        to_unit(1.2, "", "10*9/L", WHERE)


def test_known_unit_never_guesses_an_ambiguous_spelling() -> None:
    assert known_unit("g/L") == "g/L"
    assert known_unit("g/l") == "g/L"
    # "G/L" is giga per litre (10^9/L) in some countries' counts: refused, not folded to grams.
    assert known_unit("G/L") is None
    assert known_unit("bananas") is None


def test_importing_the_importer_builds_no_registry_and_reads_no_table() -> None:
    # The CLI must start fast: pint, fhir.resources and the YAML tables load on first use only.
    code = (
        "import sys\n"
        "import actnav.patient.fhir\n"
        "from actnav.patient import terminology, units\n"
        "assert 'pint' not in sys.modules, 'pint imported'\n"
        "assert 'fhir.resources' not in sys.modules, 'fhir.resources imported'\n"
        "assert units._registry.cache_info().currsize == 0\n"
        "assert terminology.units_table.cache_info().currsize == 0\n"
        "assert terminology.diagnoses.cache_info().currsize == 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_identical_units_convert_without_building_the_registry() -> None:
    code = (
        "from actnav.patient import units\n"
        "assert units.to_unit(2.0, 'mg/dL', 'mg/dL', 'x') == 2.0\n"
        "assert units._registry.cache_info().currsize == 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_a_temperature_unit_for_a_concentration_is_a_unit_error_not_a_crash() -> None:
    # Creatinine reported in degrees Celsius (Cel) is a data-entry error: name it, do not crash.
    with pytest.raises(UnitError, match="cannot convert 'Cel' to 'mg/dL'"):
        to_unit(1.0, "Cel", "mg/dL", "Observation/x.valueQuantity.unit", analyte="creatinine")
