"""Diagnoses and disease states from notes; the conditions lexicon's codes.

Expected concepts and codes are read from the sentences and from the code tables (ICD-10-CM via
simple-icd-10-cm), not from the extractor.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from tests.conftest import require_shared

from actnav.patient.notes.conditions import condition_lexicon, icd10cm_title
from actnav.patient.notes.extract import extract_note
from actnav.patient.notes.model import NoteFact
from actnav.patient.terminology import icd10cm_valid

AS_OF = dt.date(2026, 11, 29)
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def _facts(text: str, kind: str) -> list[NoteFact]:
    return [f for f in extract_note(text, as_of=AS_OF).facts if f.kind == kind]


def _patient(text: str, kind: str) -> list[NoteFact]:
    return [f for f in extract_note(text, as_of=AS_OF).patient_facts() if f.kind == kind]


def test_every_lexicon_icd10cm_code_is_a_valid_code() -> None:
    lexicon = condition_lexicon()
    assert len(lexicon.conditions) >= 60
    for entry in lexicon.conditions:
        for code in entry.site_codes.values():
            assert icd10cm_valid(code), (entry.key, code)
        if entry.icd10cm is not None:
            assert icd10cm_valid(entry.icd10cm), entry.key
        else:
            assert entry.concept is not None, f"{entry.key}: no ICD-10-CM code and no concept"


def test_icd10cm_titles_come_from_the_code_table() -> None:
    assert icd10cm_title("E11.9") == "Type 2 diabetes mellitus without complications"
    assert icd10cm_title("N18.6") == "End stage renal disease"
    assert icd10cm_title("X99.999") is None


@pytest.mark.parametrize(
    ("text", "concept", "icd"),
    [
        ("64yo woman with multiple myeloma.", "multiple_myeloma", "C90.0"),
        ("This is a 57-year-old gentleman with CLL and large cell transformation.", "cll", "C91.1"),
        ("History of DLBCL treated in 2015.", "dlbcl_nos", "C83.3"),
        ("Known stage IV NSCLC.", "nsclc", "C34"),  # diagnoses.yaml codes lung cancer as C34
        ("She has pancreatic adenocarcinoma.", "other_malignancy", "C25.9"),
    ],
)
def test_cancer_diagnoses_with_concept_and_icd10cm(text: str, concept: str, icd: str) -> None:
    found = _patient(text, "diagnosis")
    assert [f.concept for f in found] == [concept]
    assert icd in [c.code for c in found[0].codes if c.system == ICD]


@pytest.mark.parametrize(
    ("text", "label", "icd"),
    [
        ("48 M with a h/o HTN.", "Hypertension", "I10"),
        ("She has type 2 diabetes and COPD.", "Type 2 diabetes mellitus", "E11.9"),
        ("On hemodialysis for ESRD.", "End-stage renal disease", "N18.6"),
        ("A 60 yo man with atrial fibrillation.", "Atrial fibrillation", "I48.91"),
    ],
)
def test_common_conditions_carry_icd10cm(text: str, label: str, icd: str) -> None:
    found = _patient(text, "diagnosis")
    assert found[0].label == label
    assert [c.code for c in found[0].codes if c.system == ICD] == [icd]


def test_family_history_never_becomes_the_patients() -> None:
    """Acceptance: "Her mother had breast cancer." never is breast cancer of the patient."""
    text = "Her mother had breast cancer."
    mentioned = _facts(text, "diagnosis")
    assert [f.concept for f in mentioned] == ["breast_cancer"]
    assert mentioned[0].family and not mentioned[0].about_patient
    assert _patient(text, "diagnosis") == []
    assert _patient("Family history of colon cancer.", "diagnosis") == []


def test_no_history_of_hiv_is_no_patient_fact() -> None:
    """Acceptance: "No history of HIV." gives no HIV fact about the patient."""
    facts = extract_note("No history of HIV.", as_of=AS_OF).patient_facts()
    assert facts == ()


@pytest.mark.parametrize(
    "text", ["She denies diabetes.", "Rule out lymphoma.", "Possible lupus.", "No evidence of myeloma."]
)
def test_negated_and_uncertain_diagnoses_are_not_the_patients(text: str) -> None:
    assert _facts(text, "diagnosis")
    assert _patient(text, "diagnosis") == []


def test_st_depression_is_not_depression() -> None:
    assert _facts("ECG showed ST depression in V4.", "diagnosis") == []


def test_histology_and_stage_in_detail() -> None:
    found = _patient("Stage IIIB adenocarcinoma of the lung.", "diagnosis")
    assert found[0].concept == "lung_cancer"
    assert found[0].detail is not None
    assert "adenocarcinoma" in found[0].detail and "Stage IIIB" in found[0].detail
    tnm = _patient("Breast cancer, T2N1M0, on letrozole.", "diagnosis")
    assert tnm[0].detail is not None and "T2N1M0" in tnm[0].detail


@pytest.mark.parametrize(
    ("text", "value", "count"),
    [
        ("Relapsed multiple myeloma.", "relapse", None),
        ("s/p allogeneic transplant with recurrent disease.", "relapse", None),
        ("With relapse of her myeloma, she received thalidomide.", "relapse", None),
        ("Refractory DLBCL.", "refractory", None),
        ("She has progressive disease.", "progression", None),
        ("Second relapse of myeloma.", "relapse", 2),
        ("Myeloma with 3 prior relapses.", "relapse", 3),
    ],
)
def test_disease_states(text: str, value: str, count: int | None) -> None:
    states = _patient(text, "disease_status")
    assert [s.value for s in states] == [value]
    assert states[0].number == (float(count) if count is not None else None)


@pytest.mark.parametrize(
    "text",
    [
        "He had recurrent pneumonia.",
        "Complicated by progressive lower extremity weakness and urinary retention.",
        "Proximity to trachea and recurrent laryngeal nerve in thyroid cancer.",
        "No evidence of relapse of the lymphoma.",
    ],
)
def test_states_not_about_a_cancer_or_denied_are_not_patient_facts(text: str) -> None:
    assert _patient(text, "disease_status") == []


def test_real_topic_diagnoses() -> None:
    path = require_shared("data", "trialgpt-benchmarks", "trec_2021", "queries.jsonl")
    topics = {d["_id"]: d["text"] for d in map(json.loads, path.read_text().splitlines())}
    # trec-20211: "anaplastic astrocytoma of the spine ... hypertension"; its "progressive lower
    # extremity weakness" is not a disease state.
    facts = extract_note(topics["trec-20211"], as_of=AS_OF).patient_facts()
    labels = {f.label for f in facts if f.kind == "diagnosis"}
    assert {"Glioma", "Hypertension"} <= labels
    assert not [f for f in facts if f.kind == "disease_status" and f.value == "progression"]
    # trec-202111: "metastatic papillary thyroid cancer" (C73).
    facts = extract_note(topics["trec-202111"], as_of=AS_OF).patient_facts()
    thyroid = [f for f in facts if f.label == "Thyroid cancer"]
    assert thyroid and "C73" in [c.code for c in thyroid[0].codes]
    assert not [f for f in facts if f.kind == "disease_status"]


def test_a_biopsy_negative_for_a_cancer_negates_the_cancer() -> None:
    # trec-202164: "The recent biopsy was negative for hepatocellular carcinoma and ..."
    text = "The recent biopsy was negative for hepatocellular carcinoma and was only remarkable for inflammation."
    assert _facts(text, "diagnosis")[0].negated
    assert not _patient(text, "diagnosis")


def test_a_question_mark_after_a_condition_makes_it_uncertain() -> None:
    # trec-202115 past medical history: "7. Hypothyroidism? (TSH 10 in [**3-17**])"
    text = "Past Medical History:\n5. Hypertension\n7. Hypothyroidism? (TSH 10 in [**3-17**])\n8. Anemia"
    found = {f.label: f for f in _facts(text, "diagnosis")}
    assert found["Hypothyroidism"].uncertain
    assert not found["Hypertension"].uncertain and not found["Anaemia"].uncertain


def test_symptoms_of_a_condition_do_not_assert_it() -> None:
    # trec-20214: "presented with symptoms of cholecystitis"
    assert not _patient("She presented with symptoms of cholecystitis.", "diagnosis")


def test_a_mass_is_a_finding_not_a_cancer() -> None:
    # sigir-20143: "found to have a left lung mass on chest x-ray"
    assert not _facts("She is found to have a left lung mass on chest x-ray.", "diagnosis")
    words = set(condition_lexicon().finding_words.words)
    assert {"mass", "nodule", "lesion", "opacity"} <= words


def test_the_site_written_after_a_tumour_chooses_its_code() -> None:
    # trec-20211: "anaplastic astrocytoma of the spine" is C72.0 (spinal cord), not C71.9 (brain);
    # the later "unresectable anaplastic astrocytoma" is the same tumour.
    text = (
        "History of anaplastic astrocytoma of the spine. "
        "The tumor is located in the T-L spine, unresectable anaplastic astrocytoma s/p radiation."
    )
    found = _facts(text, "diagnosis")
    assert len(found) == 2
    for fact in found:
        assert [c.code for c in fact.codes if c.system == ICD] == ["C72.0"]
        assert icd10cm_title("C72.0") == "Malignant neoplasm of spinal cord"


def test_a_site_the_entry_has_no_code_for_leaves_icd10cm_out() -> None:
    # ICD-10-CM codes melanoma of the rectum to C20 (index: Melanoma, site not skin - see
    # Neoplasm, malignant): the skin code C43.9 would be wrong, so no code is guessed.
    found = _facts("Melanoma of the rectum was resected.", "diagnosis")
    assert [c for c in found[0].codes if c.system == ICD] == []
    assert found[0].concept == "melanoma"


def test_common_conditions_named_in_referral_letters() -> None:
    text = (
        "PMH: hypercalcemia, leukocytosis, iron deficiency anemia, pleural effusion, gallstone pancreatitis."
    )
    codes = {c.code for f in _patient(text, "diagnosis") for c in f.codes if c.system == ICD}
    assert codes == {"E83.52", "D72.829", "D50.9", "J90", "K85.10"}
    assert icd10cm_title("E83.52") == "Hypercalcemia"


# -- uncertainty: "might have had" ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("She believes she might have had a heart attack some years ago.", "heart attack"),
        ("He may have had a stroke in his forties.", "stroke"),
        ("The family says he could have had pneumonia last winter.", "pneumonia"),
        ("Possibly had a myocardial infarction in 2010.", "myocardial infarction"),
        ("He may have diabetes.", "diabetes"),
    ],
)
def test_might_may_or_could_have_had_makes_the_diagnosis_uncertain(text: str, words: str) -> None:
    found = [f for f in _facts(text, "diagnosis") if f.span.text == words]
    assert found and all(f.uncertain for f in found)
    assert not _patient(text, "diagnosis")


def test_a_stated_diagnosis_next_to_an_uncertain_one_stays_asserted() -> None:
    text = "He had a stroke in 2015. She thinks he may have had a heart attack too."
    assert [f.span.text for f in _patient(text, "diagnosis")] == ["stroke"]


# -- a qualifier that names another disease ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "icd"),
    [
        # ICD-10-CM: O24.4- gestational diabetes; O13 gestational [pregnancy-induced] hypertension;
        # O16 unspecified maternal hypertension; E09 drug or chemical induced diabetes; I15
        # secondary hypertension; P70.2 neonatal diabetes; M32.0 drug-induced SLE.
        ("She developed gestational diabetes mellitus during her first pregnancy.", "O24.4"),
        ("Known GDM, diet controlled.", "O24.4"),
        ("History of pregnancy-induced hypertension.", "O13"),
        ("Gestational hypertension at 30 weeks.", "O13"),
        ("Hypertension with pregnancy.", "O16"),
        ("She had hypertension during pregnancy.", "O16"),
        ("He has steroid-induced diabetes since his transplant.", "E09"),
        ("Secondary hypertension from renal artery stenosis.", "I15"),
        ("Neonatal diabetes mellitus diagnosed at birth.", "P70.2"),
        ("Drug-induced lupus after hydralazine.", "M32.0"),
    ],
)
def test_a_qualified_disease_has_its_own_code(text: str, icd: str) -> None:
    (fact,) = _facts(text, "diagnosis")
    codes = [c.code for c in fact.codes if c.system == ICD]
    assert len(codes) == 1 and codes[0].startswith(icd) and icd10cm_valid(codes[0])
    assert not codes[0].startswith(("E11", "I10"))


@pytest.mark.parametrize(
    ("text", "unqualified"),
    [
        ("She has type 2 diabetes in pregnancy.", "E11"),
        ("Post-transplant diabetes mellitus.", "E11"),
        ("Maternal diabetes noted.", "E11"),
        ("Chemotherapy-induced cardiomyopathy.", "I42"),
        ("History of secondary AML after chemotherapy.", "C92"),
    ],
)
def test_a_qualifier_without_its_own_entry_leaves_the_code_out(text: str, unqualified: str) -> None:
    (fact,) = _facts(text, "diagnosis")
    assert fact.codes == () and fact.concept is None
    assert not any(c.code.startswith(unqualified) for c in fact.codes)
    assert fact.detail is not None and "another disease" in fact.detail


def test_the_qualifier_must_touch_the_mention() -> None:
    # "secondary to" names the cause of the anaemia, not a kind of myeloma.
    text = "Anemia secondary to multiple myeloma."
    myeloma = next(f for f in _facts(text, "diagnosis") if "myeloma" in f.span.text)
    assert myeloma.concept == "multiple_myeloma"


def test_unqualified_diabetes_and_hypertension_keep_their_codes() -> None:
    facts = _facts("She has type 2 diabetes and hypertension.", "diagnosis")
    codes = {c.code for f in facts for c in f.codes if c.system == ICD}
    assert codes == {"E11.9", "I10"}
