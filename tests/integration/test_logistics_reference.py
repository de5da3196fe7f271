"""The dose and lymphodepletion numbers the vein-to-vein code uses agree with the clinical reference
(../shared/reference/clinical-reference.md), read at test time."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from tests.conftest import require_shared

from actnav.logistics.dose import labelled_dose
from actnav.logistics.schedule import build_schedule

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def reference() -> str:
    text = require_shared("reference", "clinical-reference.md").read_text(encoding="utf-8")
    return re.sub(r"\s+", " ", text)


def test_kymriah_all_weight_bands(reference: str) -> None:
    assert "| B-ALL | **≤ 50 kg** | 0.2–5.0 × 10^6 **per kg** |" in reference
    assert "| B-ALL | **> 50 kg** | 0.1–2.5 × 10^8 **total** (flat) |" in reference
    at_50, above = (
        labelled_dose("tisagenlecleucel", "b-all-up-to-25", 50),
        labelled_dose("tisagenlecleucel", "b-all-up-to-25", 50.1),
    )
    assert (at_50.basis, at_50.per_kg_min, at_50.per_kg_max) == ("per_kg", 0.2e6, 5.0e6)
    assert (above.basis, above.min_cells, above.max_cells) == ("flat", 0.1e8, 2.5e8)


def test_yescarta_per_kg_with_cap(reference: str) -> None:
    assert "Dose: **2 × 10^6 CAR-positive viable T cells/kg, maximum 2 × 10^8**" in reference
    dose = labelled_dose("axicabtagene_ciloleucel", "lbcl-second-line", 120)
    assert (dose.max_cells, dose.capped) == (2e8, True)


def test_carvykti_range_with_cap(reference: str) -> None:
    assert "**0.5–1.0 × 10^6 CAR-positive viable T cells/kg; maximum 1 × 10^8 per infusion**" in reference
    dose = labelled_dose("ciltacabtagene_autoleucel", "mm-after-1-line-len-refractory-2024", 150)
    assert (dose.min_cells, dose.max_cells) == (7.5e7, 1e8)


def test_kymriah_all_infusion_window(reference: str) -> None:
    assert "infuse **2–14 days** after LD completes" in reference
    plan = build_schedule(
        "tisagenlecleucel",
        "b-all-up-to-25",
        as_of=dt.date(2026, 3, 1),
        planned_collection=dt.date(2026, 3, 2),
    )
    ld_end, infusion = plan.milestone("lymphodepletion_end").date, plan.milestone("infusion").date
    assert ld_end is not None and infusion is not None and (infusion - ld_end).days == 2
