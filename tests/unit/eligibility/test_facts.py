"""Patient facts: age at the evaluation date, currency of results, absence vs unknown."""

from __future__ import annotations

from datetime import date

import pytest

from actnav.eligibility.facts import PatientFacts, age_in_years, whole_months
from actnav.knowledge.loader import load_facts
from actnav.patient.models import (
    Diagnosis,
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
    anc = Measurement(
        resource="Observation/anc",
        key="anc",
        code="751-8",
        value=1.5,
        unit="10*9/L",
        original="1500 /uL",
        date=date(2026, 9, 30),
    )
    value = facts(measurements=(anc,))("anc")
    assert value.value is None
    assert value.reason is not None and "60 days old" in value.reason


def test_a_current_lab_is_used_with_its_evidence() -> None:
    anc = Measurement(
        resource="Observation/anc",
        key="anc",
        code="751-8",
        value=1.5,
        unit="10*9/L",
        original="1500 /uL",
        date=date(2026, 11, 20),
    )
    value = facts(measurements=(anc,))("anc")
    assert value.value == 1.5
    assert value.evidence[0].resource == "Observation/anc"


def test_alt_needs_the_upper_limit_of_normal() -> None:
    alt = Measurement(
        resource="Observation/alt",
        key="alt",
        code="1742-6",
        value=120,
        unit="U/L",
        original="120 U/L",
        date=date(2026, 11, 20),
        upper_limit_normal=40,
    )
    assert facts(measurements=(alt,))("alt_x_uln").value == pytest.approx(3.0)
    no_uln = alt.model_copy(update={"upper_limit_normal": None})
    assert facts(measurements=(no_uln,))("alt_x_uln").value is None


def test_drug_class_absence_is_unknown_without_a_treatment_history() -> None:
    assert facts()("prior_drug_classes").value is None
    pd1 = TherapyExposure(
        resource="MedicationStatement/m",
        text="nivolumab",
        agents=("nivolumab",),
        classes=("anti_pd1",),
        start=date(2025, 1, 1),
    )
    assert facts(therapies=(pd1,))("prior_drug_classes").value == ("anti_pd1",)


def test_relapse_count_counts_relapses_separated_by_remission_or_new_therapy() -> None:
    remission = DiseaseStatusEvent(
        resource="Observation/cr", status="complete_remission", date=date(2025, 1, 10)
    )
    events = (
        DiseaseStatusEvent(resource="Observation/r1", status="relapse", date=date(2024, 6, 1)),
        remission,
        DiseaseStatusEvent(resource="Observation/r2", status="relapse", date=date(2026, 9, 1)),
    )
    f = facts(disease_status=events)
    assert f("relapse_count").value == 2.0
    assert f("refractory").value is False
    assert f("relapsed_or_refractory").value is True


def test_one_relapse_confirmed_twice_is_one_relapse() -> None:
    # Marrow on 10 December, flow cytometry on 15 December: the same first relapse.
    events = (
        DiseaseStatusEvent(resource="Observation/r1", status="relapse", date=date(2025, 12, 10)),
        DiseaseStatusEvent(resource="Observation/r2", status="relapse", date=date(2025, 12, 15)),
    )
    assert facts(disease_status=events)("relapse_count").value == 1.0


def test_unspecified_all_lineage_leaves_b_all_unknown_not_absent() -> None:
    # ICD-10-CM C91.0- does not encode lineage (clinical reference 7.2).
    all_nos = Diagnosis(resource="Condition/c", concepts=("all", "hematologic_malignancy"), text="ALL")
    value = facts(diagnoses=(all_nos,))("diagnosis")
    assert value.tested is not None and "b_all" not in value.tested and "mcl" in value.tested


def test_low_resolution_hla_is_unknown() -> None:
    low = HlaAllele(resource="Observation/h", written="A*02", locus="A", fields=1)
    assert facts(hla=(low,))("hla_a_p_groups").value is None
    high = (
        HlaAllele(resource="Observation/h", written="A*02:01:01:01", locus="A", fields=4, p_group="A*02:01P"),
        HlaAllele(
            resource="Observation/h", written="A*03:01", locus="A", fields=2, p_group_known_absent=True
        ),
    )
    assert facts(hla=high)("hla_a_p_groups").value == ("A*02:01P",)


def test_braf_finding_is_read() -> None:
    braf = Finding(
        resource="Observation/b", key="braf_v600", value="positive", detail="p.V600E", date=date(2025, 3, 1)
    )
    assert facts(findings=(braf,))("braf_v600").value == "positive"
    assert facts()("braf_v600").value is None


def test_every_catalogued_fact_has_a_resolver_or_measurement() -> None:
    f = facts()
    for fact_id in load_facts():
        f(fact_id)  # must not raise


# -- facts of trial criteria (merged from data/trials/trial-facts.yaml) ------------------------


def test_the_trial_facts_compatibility_copy_agrees_with_facts_yaml() -> None:
    # data/trials/trial-facts.yaml stays only because actnav.trials.parse reads it by name.
    from actnav.knowledge.loader import data_root, parse_file, read_yaml
    from actnav.knowledge.models import FactCatalogue

    name = "trials/trial-facts.yaml"
    copy = parse_file(FactCatalogue, read_yaml(data_root() / "trials" / "trial-facts.yaml", name), name)
    merged = load_facts()
    for fact in copy.facts:
        assert fact.id in merged, fact.id
        assert (merged[fact.id].type, merged[fact.id].unit) == (fact.type, fact.unit), fact.id


def test_needs_review_is_never_known() -> None:
    value = facts()("needs_review")
    assert value.value is None and value.reason


def test_bilirubin_and_creatinine_as_multiples_of_the_upper_limit_of_normal() -> None:
    bili = Measurement(
        resource="Observation/b",
        key="bilirubin",
        code="1975-2",
        value=1.8,
        unit="mg/dL",
        original="1.8 mg/dL",
        date=date(2026, 11, 20),
        upper_limit_normal=1.2,
    )
    creat = Measurement(
        resource="Observation/c",
        key="creatinine",
        code="2160-0",
        value=1.1,
        unit="mg/dL",
        original="1.1 mg/dL",
        date=date(2026, 11, 20),
    )
    f = facts(measurements=(bili, creat))
    assert f("bilirubin_x_uln").value == pytest.approx(1.5)
    assert f("creatinine_x_uln").value is None  # no reference range given


def test_egfr_and_karnofsky_are_read_from_measurements() -> None:
    egfr = Measurement(
        resource="Observation/e",
        key="egfr",
        code="98979-8",
        value=72,
        unit="mL/min/{1.73_m2}",
        original="72",
        date=date(2026, 11, 20),
    )
    kps = Measurement(
        resource="Observation/k",
        key="karnofsky",
        code="89243-0",
        value=80,
        unit="{score}",
        original="80",
        date=date(2026, 11, 20),
    )
    f = facts(measurements=(egfr, kps))
    assert f("egfr").value == 72 and f("karnofsky").value == 80
    assert f("lansky").value is None


def test_pregnancy_is_false_for_a_man_and_unknown_without_a_recent_test() -> None:
    assert facts(sex="male")("pregnant").value is False
    assert facts(sex="female")("pregnant").value is None
    negative = Finding(resource="Observation/hcg", key="pregnant", value="negative", date=date(2026, 11, 27))
    assert facts(sex="female", findings=(negative,))("pregnant").value is False
    old = negative.model_copy(update={"date": date(2026, 11, 1)})  # 28 days old, window 7 days
    assert facts(sex="female", findings=(old,))("pregnant").value is None


def test_washouts_come_from_the_treatment_history() -> None:
    chemo = TherapyExposure(
        resource="MedicationStatement/c",
        text="cytarabine",
        agents=("cytarabine",),
        classes=("chemotherapy",),
        start=date(2026, 10, 1),
        end=date(2026, 11, 9),
    )
    blina = TherapyExposure(
        resource="MedicationStatement/b",
        text="blinatumomab",
        agents=("blinatumomab",),
        classes=("bispecific_antibody", "cd19_directed"),
        start=date(2026, 11, 20),
    )
    f = facts(therapies=(chemo,))
    assert f("days_since_last_chemotherapy").value == 20
    # A recorded history without a monoclonal antibody: known, and large (counted from birth).
    assert f("days_since_last_monoclonal_antibody").value == (AS_OF - date(1992, 5, 4)).days
    assert facts(therapies=(chemo, blina))("days_since_last_monoclonal_antibody").value == 0  # ongoing
    # Without any history: unknown; radiotherapy is not read from the record at all.
    assert facts()("days_since_last_chemotherapy").value is None
    assert f("days_since_last_radiotherapy").value is None


def test_active_gvhd_needs_an_allogeneic_transplant() -> None:
    chemo = TherapyExposure(
        resource="MedicationStatement/c",
        text="cytarabine",
        agents=("cytarabine",),
        classes=("chemotherapy",),
        start=date(2026, 10, 1),
        end=date(2026, 11, 9),
    )
    assert facts(therapies=(chemo,))("active_gvhd").value is False
    assert facts()("active_gvhd").value is None


def test_an_unrecognised_regimen_name_makes_the_line_count_unknown() -> None:
    # QA case: "DA-EPOCH-R" unrecognised would otherwise drop a whole line silently.
    known = TherapyExposure(
        resource="MedicationStatement/p",
        text="pembrolizumab",
        agents=("pembrolizumab",),
        classes=("anti_pd1",),
        start=date(2025, 6, 1),
    )
    odd = TherapyExposure(
        resource="MedicationStatement/x",
        text="XR-EPOCH-Q",
        start=date(2025, 1, 1),
        anticancer=False,
        unrecognised=True,
    )
    value = facts(therapies=(known, odd))("prior_lines")
    assert value.value is None and value.reason is not None and "XR-EPOCH-Q" in value.reason
    supportive = odd.model_copy(update={"text": "Acetaminophen 325 MG Oral Tablet"})
    counted = facts(therapies=(known, supportive))("prior_lines")
    assert counted.value == 1.0
    assert any("not recognised" in (e.note or "") for e in counted.evidence)
