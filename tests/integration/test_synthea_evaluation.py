"""Real input nobody here wrote: the ten Synthea oncology bundles evaluate without a crash.

Source of the expectations: ``../shared/data/synthea-fhir-r4-oncology/index.csv`` (deceased
dates, cancer conditions: colon, prostate and lung cancers, none of them a labelled indication of
an approved adoptive cell therapy, clinical reference section 1).
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from tests.conftest import require_shared

from actnav.eligibility.evaluate import evaluate_patient
from actnav.eligibility.report_model import Verdict
from actnav.patient.fhir import read_bundle

AS_OF = date(2026, 11, 29)


def _rows() -> list[dict[str, str]]:
    folder = require_shared("data", "synthea-fhir-r4-oncology")
    with (folder / "index.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _path(row: dict[str, str]) -> Path:
    return require_shared("data", "synthea-fhir-r4-oncology") / row["file"]


@pytest.mark.parametrize("index", range(10))
def test_each_synthea_bundle_evaluates_and_names_why(index: int) -> None:
    row = _rows()[index]
    evaluation = evaluate_patient(read_bundle(_path(row), as_of=AS_OF), as_of=AS_OF)
    indications = [i for p in evaluation.products for i in p.indications]
    assert indications, "every product approved by 2026-11-29 has an indication in force"
    # None of these cancers is on any label: no product fits.
    assert all(i.verdict is Verdict.NOT_ELIGIBLE for i in indications)
    deceased = bool(row["deceased"])
    assert evaluation.patient.deceased is deceased
    if deceased:
        assert evaluation.patient.deceased_date == date.fromisoformat(row["deceased"][:10])
        assert any("deceased" in line for line in evaluation.summary)
    else:
        assert evaluation.summary == ["No approved product's label fits on 2026-11-29."]
    for indication in indications:
        failed = [c for c in indication.criteria if c.result == "not_met"]
        # The diagnosis (or histology) criterion is among those named.
        assert any(c.id.startswith(("diagnosis-", "histology-")) for c in failed), indication.id
        assert any(r.startswith(tuple(c.text for c in failed)) for r in indication.reasons)


def test_resources_the_engine_does_not_need_are_skipped_not_fatal() -> None:
    row = max(_rows(), key=lambda r: int(r["n_entries"]))
    patient = read_bundle(_path(row), as_of=AS_OF)
    assert patient.skipped.get("Claim", 0) > 0
    assert patient.skipped.get("ExplanationOfBenefit", 0) > 0
