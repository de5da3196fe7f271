"""CNS involvement, infections, pregnancy and lactation read from notes
(actnav.patient.notes.findings).

Expected keys from data/facts.yaml and docs/fhir-input.md; ICD-10-CM codes checked against
simple_icd_10_cm; real sentences from ../shared/data/trialgpt-benchmarks.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from tests.conftest import require_shared

from actnav.patient.notes import findings
from actnav.patient.notes.conditions import icd10cm_title
from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.pipeline import note_doc

AS_OF = dt.date(2026, 11, 29)


def read(text: str) -> list[NoteFact]:
    return findings.finding_facts(note_doc(text), AS_OF)


def one(text: str) -> NoteFact:
    found = read(text)
    assert len(found) == 1, [f.label for f in found]
    return found[0]


def topics(name: str) -> dict[str, str]:
    path = require_shared("data", "trialgpt-benchmarks", name, "queries.jsonl")
    return {q["_id"]: q["text"] for q in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_no_history_of_hiv_is_negated_and_not_about_the_patient() -> None:
    fact = one("No history of HIV.")
    assert (fact.kind, fact.concept) == ("infection", "hiv")
    assert fact.negated is True
    assert fact.about_patient is False


def test_relative_with_hiv_is_not_about_the_patient() -> None:
    fact = one("Her mother had HIV.")
    assert fact.family and not fact.about_patient


def test_hiv_positive_carries_icd10cm_and_snomed_codes() -> None:
    fact = one("He is HIV positive on antiretroviral therapy.")
    assert (fact.concept, fact.value) == ("hiv", "positive")
    assert fact.about_patient
    assert ("http://hl7.org/fhir/sid/icd-10-cm", "B20") in [(c.system, c.code) for c in fact.codes]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HIV, HBV and HCV negative.", {"hiv": "negative", "hbv": "negative", "hcv": "negative"}),
        ("HBsAg negative, HCV RNA not detected.", {"hbv": "negative", "hcv": "negative"}),
        ("HIV test is negative.", {"hiv": "negative"}),
    ],
)
def test_negative_tests_are_negative_results_of_the_patient(text: str, expected: dict[str, str]) -> None:
    found = read(text)
    assert {f.concept: f.value for f in found} == expected
    assert all(f.about_patient and f.codes == () for f in found)


def test_antibody_tests_do_not_show_a_current_infection() -> None:
    # CDC: anti-HBc and anti-HCV show past or present infection; HBsAg / HCV RNA current infection.
    found = read("Anti-HBc positive, anti-HCV positive.")
    assert [f.concept for f in found] == [None, None]


def test_a_test_without_a_result_gives_no_fact() -> None:
    assert read("HIV test was sent.") == []


def test_chronic_hepatitis_c_real_sentence() -> None:
    text = topics("trec_2021")["trec-202127"]
    # "A 53-year-old man presents with chronic HCV infection for the past 2 years."
    fact = next(f for f in read(text) if f.span.text == "chronic HCV infection")
    assert (fact.concept, fact.value) == ("hcv", "positive")
    assert [c.code for c in fact.codes] == ["B18.2"]


def test_cns_involvement() -> None:
    negative = one("No CNS involvement.")
    assert (negative.kind, negative.concept, negative.negated) == ("cns_involvement", "cns_involvement", True)
    assert negative.label == "no CNS involvement"
    mets = one("MRI showed brain metastases.")
    assert mets.concept == "cns_involvement" and mets.about_patient
    assert [c.code for c in mets.codes] == ["C79.31"]
    lepto = one("Leptomeningeal carcinomatosis on MRI.")
    assert [c.code for c in lepto.codes] == ["C79.32"]


def test_infections_without_a_finding_key() -> None:
    tb = one("A 65-year-old male with a history of tuberculosis.")  # sigir-201522
    assert tb.concept is None and tb.historical and [c.code for c in tb.codes] == ["A15.9"]
    assert one("Active infection requiring IV antibiotics.").concept == "active_infection"
    assert one("No active infection.").negated
    assert read("He had not received the TB vaccination.") == []
    assert read("She received her COVID-19 vaccine.") == []


def test_covid_test_real_sentence() -> None:
    # trec-202246: "The PCR test for Covid is positive."
    fact = one("The PCR test for Covid is positive.")
    assert fact.value == "positive" and [c.code for c in fact.codes] == ["U07.1"]


def test_not_pregnant_is_negated() -> None:
    fact = one("She is not pregnant.")
    assert (fact.kind, fact.concept, fact.negated) == ("pregnancy", "pregnant", True)
    assert fact.label == "not pregnant"
    assert not fact.about_patient


def test_pregnancy_and_breastfeeding_real_sentences() -> None:
    t21 = topics("trec_2021")
    # trec-202157: "Her pregnancy test is negative and she is not breastfeeding."
    found = {f.concept: f for f in read(t21["trec-202157"])}
    assert found["pregnant"].value == "negative" and found["pregnant"].about_patient
    assert found["breastfeeding"].negated
    # trec-202150: an infant boy "is breast feeding": not a breastfeeding woman.
    assert all(f.concept != "breastfeeding" for f in read(t21["trec-202150"]))
    sigir = topics("sigir")
    # sigir-201514: "A 27-year-old woman at 11 weeks gestation in her second pregnancy"
    assert [(f.concept, f.value) for f in read(sigir["sigir-201514"])] == [("pregnant", "positive")]
    # sigir-201428: "would like to become pregnant soon" ... "Urine human chorionic gonadotropin (hCG) is negative"
    assert [(f.concept, f.value) for f in read(sigir["sigir-201428"])] == [("pregnant", "negative")]


def test_born_at_weeks_of_gestation_is_not_a_pregnancy() -> None:
    assert read("She was born at 38 weeks of gestation.") == []


def test_every_code_is_valid_icd10cm_and_every_key_a_fact() -> None:
    from actnav.knowledge.loader import load_knowledge

    facts = set(load_knowledge().facts)
    for entry in findings.findings_vocabulary().entries:
        for code in entry.icd10cm:
            assert icd10cm_title(code) is not None, code
        assert entry.finding is None or entry.finding in facts
