"""Patient facts: age at the evaluation date, currency of results, absence vs unknown."""

from __future__ import annotations

from datetime import date

import pytest

from actnav.eligibility.facts import PatientFacts, age_in_years, whole_months
from actnav.knowledge.loader import load_facts
from actnav.patient.models import (
    DiseaseStatusEvent,
    Finding,
    HlaAllele,
    Measurement,
    PatientRecord,
    TherapyExposure,
)

AS_OF = date(2026, 11, 29)


def facts(**kw: object) -> PatientFacts:
    record = PatientRecord(id="p1", birth_date=kw.pop("birth_date", date(1992, 5, 4)), **kw)  # type: ignore[arg-type]
    return PatientFacts(record, AS_OF, load_facts())


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        # Kymriah's ALL limit is "up to 25 years": the 25th year lasts until the 26th birthday.
        (date(2000, 11, 29), date(2026, 11, 28), 25),
        (date(2000, 11, 29), date(2026, 11, 29), 26),
        (date(2004, 2, 29), date(2022, 2, 28), 17),  # leap-day birthday
        (date(2004, 2, 29), date(2022, 3, 1), 18),
    ],
)
def test_age_in_completed_years(birth: date, on: date, age: int) -> None:
    assert age_in_years(birth, on) == age


def test_whole_months() -> None:
    assert whole_months(date(2025, 11, 30), date(2026, 5, 29)) == 5
    assert whole_months(date(2025, 11, 29), date(2026, 5, 29)) == 6


def test_a_lab_older_than_its_window_is_unknown_not_used() -> None:
    # ANC 1,500/uL = 1.5 x10^9/L, but 60 days old against a 30-day window.
    anc = Measurement(resource="Observation/anc", key="anc", code="751-8", value=1.5, unit="10*9/L", original="1500 /uL", date=date(2026, 9, 30))
    value = facts(measurements=(anc,))("anc")
    assert value.value is None
    assert value.reason is not None and "60 days old" in value.reason


def test_a_current_lab_is_used_with_its_evidence() -> None:
    anc = Measurement(resource="Observation/anc", key="anc", code="751-8", value=1.5, unit="10*9/L", original="1500 /uL", date=date(2026, 11, 20))
    value = facts(measurements=(anc,))("anc")
    assert value.value == 1.5
    assert value.evidence[0].resource == "Observation/anc"


def test_alt_needs_the_upper_limit_of_normal() -> None:
    alt = Measurement(resource="Observation/alt", key="alt", code="1742-6", value=120, unit="U/L", original="120 U/L", date=date(2026, 11, 20), upper_limit_normal=40)
    assert facts(measurements=(alt,))("alt_x_uln").value == pytest.approx(3.0)
    no_uln = alt.model_copy(update={"upper_limit_normal": None})
    assert facts(measurements=(no_uln,))("alt_x_uln").value is None


def test_drug_class_absence_is_unknown_without_a_treatment_history() -> None:
    assert facts()("prior_drug_classes").value is None
    pd1 = TherapyExposure(resource="MedicationStatement/m", text="nivolumab", agents=("nivolumab",), classes=("anti_pd1",), start=date(2025, 1, 1))
    assert facts(therapies=(pd1,))("prior_drug_classes").value == ("anti_pd1",)


def test_relapse_count_counts_distinct_dated_relapses() -> None:
    events = (
        DiseaseStatusEvent(resource="Observation/r1", status="relapse", date=date(2024, 6, 1)),
        DiseaseStatusEvent(resource="Observation/r2", status="relapse", date=date(2026, 9, 1)),
    )
    f = facts(disease_status=events)
    assert f("relapse_count").value == 2.0
    assert f("refractory").value is False
    assert f("relapsed_or_refractory").value is True


def test_low_resolution_hla_is_unknown() -> None:
    low = HlaAllele(resource="Observation/h", written="A*02", locus="A", fields=1)
    assert facts(hla=(low,))("hla_a_p_groups").value is None
    high = (
        HlaAllele(resource="Observation/h", written="A*02:01:01:01", locus="A", fields=4, p_group="A*02:01P"),
        HlaAllele(resource="Observation/h", written="A*03:01", locus="A", fields=2, p_group_known_absent=True),
    )
    assert facts(hla=high)("hla_a_p_groups").value == ("A*02:01P",)


def test_braf_finding_is_read() -> None:
    braf = Finding(resource="Observation/b", key="braf_v600", value="positive", detail="p.V600E", date=date(2025, 3, 1))
    assert facts(findings=(braf,))("braf_v600").value == "positive"
    assert facts()("braf_v600").value is None


def test_every_catalogued_fact_has_a_resolver_or_measurement() -> None:
    f = facts()
    for fact_id in load_facts():
        f(fact_id)  # must not raise
