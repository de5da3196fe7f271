"""Line-of-therapy counting (IMWG line definition, Rajkumar et al., Blood 2011)."""

from __future__ import annotations

from datetime import date

from actnav.patient.lines import count_lines
from actnav.patient.models import DiseaseStatusEvent, PatientRecord, TherapyExposure

AS_OF = date(2026, 11, 29)


def drug(rid: str, agent: str, start: date, **kw: object) -> TherapyExposure:
    return TherapyExposure(
        resource=f"MedicationStatement/{rid}", text=agent, agents=(agent,), start=start, **kw
    )  # type: ignore[arg-type]


def patient(*therapies: TherapyExposure, events: tuple[DiseaseStatusEvent, ...] = ()) -> PatientRecord:
    return PatientRecord(id="p", birth_date=date(1960, 1, 1), therapies=therapies, disease_status=events)


def test_drugs_started_together_are_one_regimen() -> None:
    # R-CHOP: five drugs on the same day form one line.
    start = date(2024, 1, 8)
    rchop = [
        drug(f"d{i}", a, start)
        for i, a in enumerate(["rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone"])
    ]
    assert len(count_lines(patient(*rchop), as_of=AS_OF).lines) == 1


def test_maintenance_with_the_same_drug_is_not_a_new_line() -> None:
    # VRd induction then lenalidomide maintenance months later: one planned treatment.
    p = patient(
        drug("v", "bortezomib", date(2023, 1, 2)),
        drug("r", "lenalidomide", date(2023, 1, 2)),
        drug("d", "dexamethasone", date(2023, 1, 2)),
        drug("rm", "lenalidomide", date(2023, 9, 1)),
    )
    assert len(count_lines(p, as_of=AS_OF).lines) == 1


def test_a_new_drug_after_the_window_starts_a_new_line() -> None:
    p = patient(drug("a", "rituximab", date(2023, 1, 2)), drug("b", "bendamustine", date(2023, 6, 1)))
    assert len(count_lines(p, as_of=AS_OF).lines) == 2


def test_retreatment_after_relapse_is_a_new_line() -> None:
    relapse = DiseaseStatusEvent(resource="Observation/r1", status="relapse", date=date(2024, 3, 1))
    p = patient(
        drug("a", "lenalidomide", date(2023, 1, 2)),
        drug("b", "lenalidomide", date(2024, 4, 1)),
        events=(relapse,),
    )
    assert len(count_lines(p, as_of=AS_OF).lines) == 2


def test_supportive_drugs_and_future_drugs_do_not_count() -> None:
    p = patient(
        drug("a", "rituximab", date(2023, 1, 2)),
        drug("s", "dexamethasone", date(2023, 8, 1), anticancer=False),
        drug("f", "ibrutinib", date(2027, 1, 1)),
    )
    assert len(count_lines(p, as_of=AS_OF).lines) == 1


def test_stated_line_numbers_are_used_and_undated_drugs_make_the_count_uncertain() -> None:
    p = patient(
        TherapyExposure(
            resource="MedicationStatement/x", text="pembrolizumab", agents=("pembrolizumab",), line=1
        ),
        TherapyExposure(resource="MedicationStatement/y", text="ipilimumab", agents=("ipilimumab",)),
    )
    counted = count_lines(p, as_of=AS_OF)
    assert [line.number for line in counted.lines] == [1]
    assert not counted.certain
