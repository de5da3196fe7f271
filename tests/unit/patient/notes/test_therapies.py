"""Prior therapies, regimens, transplants and responses from notes.

Regimen components, brand names and classes are those of drugs.yaml's sources (VAD: Anderson et
al., Br J Cancer 1995; Velcade is bortezomib); expected values are read from the sentences.
"""

from __future__ import annotations

import datetime as dt

import pytest

from actnav.patient.notes.extract import extract_note
from actnav.patient.notes.model import NoteFact

AS_OF = dt.date(2026, 11, 29)


def _patient(text: str, kind: str) -> list[NoteFact]:
    return [f for f in extract_note(text, as_of=AS_OF).patient_facts() if f.kind == kind]


def test_trec_202117_therapy_sentence() -> None:
    text = (
        "Patient was Initially treated with melphalan and prednisone, followed by VAD regimen, and "
        "autologous stem cell transplant. With relapse of her myeloma, she received thalidomide velcade "
        "and thalidomide."
    )
    therapies = _patient(text, "therapy")
    assert [t.concept for t in therapies] == [
        "melphalan", "prednisone", "VAD", "thalidomide", "bortezomib", "thalidomide",
    ]  # fmt: skip
    vad = therapies[2]
    assert vad.detail == "vincristine + doxorubicin + dexamethasone"
    assert vad.anticancer is True and "anthracycline" in vad.classes
    assert therapies[4].span.text == "velcade" and "proteasome_inhibitor" in therapies[4].classes
    # Prednisone alone is a corticosteroid: shown, never a line.
    assert therapies[1].anticancer is False and therapies[1].order is None
    assert [t.order for t in therapies if t.anticancer] == [1, 2, 4, 5, 6]
    transplants = _patient(text, "transplant")
    assert [(t.value, t.order) for t in transplants] == [("autologous", 3)]


def test_supportive_drugs_are_not_anticancer() -> None:
    text = "She was admitted with hypercalcemia and treated with pamidronate 30mg, calcitonin, and dialysis."
    therapies = _patient(text, "therapy")
    assert [(t.concept, t.anticancer, t.order) for t in therapies] == [
        ("pamidronate", False, None),
        ("calcitonin", False, None),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64yo woman with multiple myeloma, s/p allogeneic transplant.", "allogeneic"),
        ("He is s/p ASCT in 2018.", "autologous"),
        ("Relapse after allo-SCT.", "allogeneic"),
        ("She underwent bone marrow transplant.", "unknown"),
        ("Consolidation with auto-HSCT.", "autologous"),
    ],
)
def test_transplant_types(text: str, value: str) -> None:
    assert [t.value for t in _patient(text, "transplant")] == [value]


def test_s_p_transplant_is_historical_and_planned_one_is_not_the_patients() -> None:
    done = _patient("64yo woman, s/p allogeneic transplant.", "transplant")
    assert done[0].historical
    assert _patient("She is a candidate for ASCT.", "transplant") == []
    assert _patient("She was referred for CAR-T therapy.", "therapy") == []


def test_responses_name_the_drug() -> None:
    text = "Refractory to lenalidomide and bortezomib; progressed on pembrolizumab."
    states = _patient(text, "disease_status")
    assert [(s.value, s.detail) for s in states] == [
        ("refractory", "lenalidomide, bortezomib"),
        ("progression", "pembrolizumab"),
    ]
    before = _patient("Lenalidomide-refractory myeloma.", "disease_status")
    assert [(s.value, s.detail) for s in before] == [("refractory", "lenalidomide")]


def test_failed_therapy_was_still_given() -> None:
    assert [t.concept for t in _patient("She did not respond to bortezomib.", "therapy")] == ["bortezomib"]
    assert _patient("The patient did not receive rituximab.", "therapy") == []


@pytest.mark.parametrize(
    ("text", "date", "precision"),
    [
        ("She received R-CHOP in 2015.", dt.date(2015, 1, 1), "year"),
        ("In March 2020 she started pembrolizumab.", dt.date(2020, 3, 1), "month"),
        ("Treated with bortezomib 05/2018, then lenalidomide.", dt.date(2018, 5, 1), "month"),
    ],
)
def test_dates_written_next_to_the_therapy(text: str, date: dt.date, precision: str) -> None:
    first = _patient(text, "therapy")[0]
    assert (first.date, first.date_precision) == (date, precision)


def test_a_diagnosis_date_is_not_a_therapy_date_and_later_dates_are_ignored() -> None:
    text = "Lung cancer diagnosed in 2019, treated with carboplatin."
    assert _patient(text, "therapy")[0].date is None
    assert _patient("Received R-CHOP in 2031.", "therapy")[0].date is None


def test_shorthand_and_devices() -> None:
    assert [t.concept for t in _patient("Treated with thal/dex.", "therapy")] == [
        "thalidomide",
        "dexamethasone",
    ]
    assert _patient("Beta thal trait.", "therapy") == []
    assert _patient("s/p VAD placement for heart failure.", "therapy") == []
