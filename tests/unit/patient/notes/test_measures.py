"""Laboratory values and performance status read from notes (actnav.patient.notes.measures).

Expected values come from the sentences themselves, from data/terminology/labs.yaml (canonical
units, LOINC codes, plausible ranges) and from unit arithmetic (85,000/uL = 85 x10^9/L; 1 mm3 =
1 uL), never from the code's output.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from tests.conftest import require_shared

from actnav.patient.notes import measures
from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.pipeline import note_doc

AS_OF = dt.date(2026, 11, 29)


def labs(text: str) -> list[NoteFact]:
    return measures.lab_facts(note_doc(text), AS_OF)


def one_lab(text: str, concept: str | None = None) -> NoteFact:
    found = [f for f in labs(text) if concept is None or f.concept == concept]
    assert len(found) == 1, [f.label for f in found]
    return found[0]


@pytest.mark.parametrize(
    ("text", "concept", "number", "unit", "original"),
    [
        ("Platelets 85,000/uL.", "platelets", 85.0, "10*9/L", "85,000/uL"),
        ("Platelets 85 x 10^9/L.", "platelets", 85.0, "10*9/L", "85 x 10^9/L"),
        ("Plt 85K today.", "platelets", 85.0, "10*9/L", "85K"),
        ("Platelet: 110,000 /cu.mm", "platelets", 110.0, "10*9/L", "110,000 /cu.mm"),
        ("Creatinine 2.3 mg/dL.", "creatinine", 2.3, "mg/dL", "2.3 mg/dL"),
        ("Creatinine 203 umol/L.", "creatinine", 2.2964, "mg/dL", "203 umol/L"),
        ("Hb 9,1 g/dL.", "hemoglobin", 9.1, "g/dL", "9,1 g/dL"),
        ("LVEF 45%.", "lvef", 45.0, "%", "45%"),
        ("LVEF=45%.", "lvef", 45.0, "%", "45%"),
        ("eGFR 40 mL/min/1.73m2.", "egfr", 40.0, "mL/min/{1.73_m2}", "40 mL/min/1.73m2"),
        ("Creatinine clearance 55 mL/min.", "creatinine_clearance", 55.0, "mL/min", "55 mL/min"),
        ("LDH 450 U/L.", "ldh", 450.0, "U/L", "450 U/L"),
        ("CRP 12 mg/L.", "crp", 12.0, "mg/L", "12 mg/L"),
        ("Bilirubin 1.2 mg/dL.", "bilirubin", 1.2, "mg/dL", "1.2 mg/dL"),
        ("Bilirubin 20.5 umol/L.", "bilirubin", 1.1988, "mg/dL", "20.5 umol/L"),
        ("ANC 800/uL.", "anc", 0.8, "10*9/L", "800/uL"),
    ],
)
def test_value_and_unit_become_the_canonical_unit(
    text: str, concept: str, number: float, unit: str, original: str
) -> None:
    fact = one_lab(text, concept)
    assert fact.kind == "lab"
    assert fact.number == pytest.approx(number, rel=1e-3)
    assert fact.unit == unit
    assert fact.original == original
    assert fact.id == ""
    assert fact.about_patient


def test_codes_are_the_loinc_codes_of_labs_yaml() -> None:
    # labs.yaml: 777-3 Platelets [#/volume] in Blood by Automated count; 2160-0 creatinine.
    assert [c.code for c in one_lab("Platelets 85,000/uL.").codes] == ["777-3"]
    assert [c.code for c in one_lab("Creatinine 2.3 mg/dL.").codes] == ["2160-0"]
    assert one_lab("Creatinine 2.3 mg/dL.").codes[0].system == "http://loinc.org"


def test_slash_pair_gives_each_analyte_its_value() -> None:
    found = {f.concept: f for f in labs("ALT/AST 40/35 U/L.")}
    assert found["alt"].number == 40.0 and found["ast"].number == 35.0
    assert found["alt"].unit == found["ast"].unit == "U/L"


def test_abbreviation_in_brackets_is_one_value() -> None:
    # trec-202132: "lactate dehydrogenase (LDH): 881 IU/L (normal: 110-265 IU/L)"
    found = labs("lactate dehydrogenase (LDH): 881 IU/L (normal: 110-265 IU/L)")
    assert [(f.concept, f.number, f.unit) for f in found] == [("ldh", 881.0, "U/L")]


def test_flag_after_a_value_is_kept_as_detail() -> None:
    fact = one_lab("Hb 9.1 g/dL (L).")
    assert fact.number == 9.1 and fact.unit == "g/dL"
    assert fact.detail == "flagged L"


@pytest.mark.parametrize(
    ("text", "concept", "number"),
    [
        ("Hb 9.1 (L).", "hemoglobin", 9.1),  # g/dL, g/L and mmol/L are all in use
        ("ANC 0.8.", "anc", 0.8),  # 10^9/L or /uL
        ("Bilirubin 1.2.", "bilirubin", 1.2),  # mg/dL or umol/L
        ("WBC 25,000, with 25% eosinophils.", None, 25000.0),  # sigir-20159
    ],
)
def test_value_without_unit_is_kept_without_a_unit_when_ambiguous(
    text: str, concept: str | None, number: float
) -> None:
    fact = labs(text)[0]
    assert fact.concept == concept
    assert fact.number == number
    assert fact.unit is None
    assert "unit not stated" in (fact.detail or "")


@pytest.mark.parametrize(
    ("text", "concept", "number", "unit"),
    [
        ("creatinine 2.3", "creatinine", 2.3, "mg/dL"),  # 2.3 umol/L is not a serum creatinine
        ("LVEF 45", "lvef", 45.0, "%"),
        ("ferritin 800", "ferritin", 800.0, "ng/mL"),
        ("ALT 56", "alt", 56.0, "U/L"),
    ],
)
def test_value_without_unit_gets_the_unambiguous_unit(
    text: str, concept: str, number: float, unit: str
) -> None:
    fact = one_lab(text, concept)
    assert (fact.number, fact.unit) == (number, unit)
    assert fact.detail == f"unit not stated: read as {unit}"


def test_unitless_creatinine_outside_the_unambiguous_range_has_no_unit() -> None:
    # 180 is a umol/L value (2.0 mg/dL) or an impossible mg/dL: never guessed.
    fact = one_lab("creatinine 180")
    assert fact.unit is None and fact.number == 180.0


def test_unit_not_recognised_is_not_guessed() -> None:
    # trec-202138: "Plt: 300000 /ml" (per millilitre would be 0.0003 x10^9/L: a typing error).
    fact = one_lab("Plt: 300000 /ml")
    assert fact.unit is None
    assert fact.detail == "unit not recognised: /ml"


def test_implausible_value_gives_a_warning_and_no_fact() -> None:
    # labs.yaml: platelets plausible 0 to 10000 x10^9/L.
    doc = note_doc("Platelets 85,000,000,000/uL.")
    assert measures.lab_facts(doc, AS_OF) == []
    (warning,) = measures.note_warnings(doc)
    assert "outside the plausible range for platelets (0 to 10000 10*9/L)" in warning


def test_unit_that_cannot_be_converted_gives_a_warning() -> None:
    doc = note_doc("Neutrophils 70%.")
    assert measures.lab_facts(doc, AS_OF) == []
    assert "cannot be converted to 10*9/L" in measures.note_warnings(doc)[0]


def test_range_and_bound_have_no_number() -> None:
    ranged = one_lab("Platelets 80-90 x10^9/L.")
    assert ranged.number is None and ranged.unit == "10*9/L"
    assert "range" in (ranged.detail or "")
    # trec-202129: "eGFR >60 mL/min" is a bound, not a value.
    bound = one_lab("Creatinine: 0.9 mg/dL with eGFR >60 mL/min/1.73m2", "egfr")
    assert bound.number is None and "bound" in (bound.detail or "")


def test_direct_bilirubin_is_not_total_bilirubin() -> None:
    # trec-202139: "Serum total bilirubin: 21.02 mg/dL\nDirect bilirubin of 2.04 mg/dL"
    found = labs("Serum total bilirubin: 21.02 mg/dL\nDirect bilirubin of 2.04 mg/dL\n")
    assert [(f.concept, f.number) for f in found] == [("bilirubin", 21.02), (None, 2.04)]
    assert found[1].codes[0].code == "1968-7"  # LOINC Bilirubin.direct


def test_analyte_not_in_labs_yaml_has_no_concept_but_its_loinc_code() -> None:
    fact = one_lab("Albumin 2.1 g/dL.")
    assert fact.concept is None
    assert fact.codes[0].code == "1751-7"
    assert (fact.number, fact.unit) == (2.1, "g/dL")


def test_a_number_that_is_a_time_is_not_a_value() -> None:
    assert labs("Creatinine 2 weeks ago was normal.") == []


def test_conText_flags_apply_to_the_analyte() -> None:
    fact = one_lab("Her mother's creatinine was 2.3 mg/dL.")
    assert fact.family
    assert not fact.about_patient


def test_real_sentences_from_sigir_2015_topic_14() -> None:
    path = require_shared("data", "trialgpt-benchmarks", "sigir", "queries.jsonl")
    topics = {q["_id"]: q["text"] for q in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    text = topics["sigir-201514"]
    found = [(f.concept, f.number, f.unit) for f in labs(text)]
    # "hemoglobin (Hb) of 9.0 g/dL, white blood cell count 6.3 x 109/L, platelet count 119 x 109/L"
    assert ("hemoglobin", 9.0, "g/dL") in found
    assert (None, 6.3, "10*9/L") in found
    assert ("platelets", 119.0, "10*9/L") in found
    # "elevated LDH (2000 IU/L)"
    assert ("ldh", 2000.0, "U/L") in found


def test_real_lab_table_from_trec_2021_topic_45() -> None:
    path = require_shared("data", "trialgpt-benchmarks", "trec_2021", "queries.jsonl")
    topics = {q["_id"]: q["text"] for q in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    found = {f.concept: f for f in labs(topics["trec-202145"]) if f.concept}
    # "Hgb: 8 g/dl", "AST: 22 U/L", "ALT: 43 U/L", "Ferritin: 1200 ng/ml"
    assert (found["hemoglobin"].number, found["hemoglobin"].unit) == (8.0, "g/dL")
    assert found["ast"].number == 22.0 and found["alt"].number == 43.0
    assert (found["ferritin"].number, found["ferritin"].unit) == (1200.0, "ng/mL")
    assert found["platelets"].unit is None  # "Plt: 300000 /ml"


# -- performance status ------------------------------------------------------------------------


def performance(text: str) -> list[NoteFact]:
    return measures.performance_facts(note_doc(text), AS_OF)


@pytest.mark.parametrize(
    ("text", "concept", "number"),
    [
        ("ECOG PS 1.", "ecog", 1.0),
        ("ECOG performance status of 2.", "ecog", 2.0),
        ("WHO PS 0.", "ecog", 0.0),
        ("KPS 70%.", "karnofsky", 70.0),
        ("Karnofsky performance status 80.", "karnofsky", 80.0),
        ("Her performance status of 2 limits her activity.", "ecog", 2.0),
    ],
)
def test_performance_status(text: str, concept: str, number: float) -> None:
    (fact,) = performance(text)
    assert fact.kind == "performance_status"
    assert (fact.concept, fact.number, fact.unit) == (concept, number, "{score}")
    # labs.yaml: ECOG 89247-1, Karnofsky 89243-0.
    assert fact.codes[0].code == {"ecog": "89247-1", "karnofsky": "89243-0"}[concept]


def test_unnamed_performance_status_without_a_number_is_not_read() -> None:
    # trec-20218: "continued to have an excellent performance status"
    assert performance("He continued to have an excellent performance status.") == []
    assert performance("Performance status 70.") == []  # Karnofsky or Lansky: not named


def test_performance_status_range_and_impossible_scores() -> None:
    (ranged,) = performance("ECOG 0-1.")
    assert ranged.number is None and "range" in (ranged.detail or "")
    doc = note_doc("ECOG 7. ECOG 1.5.")
    assert measures.performance_facts(doc, AS_OF) == []
    assert len(measures.note_warnings(doc)) == 2


def test_measures_vocabulary_is_consistent_with_labs_yaml() -> None:
    from actnav.patient import terminology, units

    vocab = measures.measures_vocabulary()
    keys = {a.key for a in terminology.labs().analytes} | {a.key for a in vocab.extra_analytes}
    for rule in vocab.unstated_units:
        assert rule.analyte in keys
        assert units.known_unit(rule.unit) is not None
    for rule in vocab.unstated_units:
        if rule.analyte in {a.key for a in terminology.labs().analytes}:
            assert rule.unit == terminology.analyte(rule.analyte).unit
