"""The note's facts as a FHIR Bundle: read back by the one importer as the facts the note states.

Extractions are built by hand here (the extractor's quality is tested elsewhere): each test note
is a synthetic referral letter and each fact names the words that state it.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from actnav.eligibility.facts import age_in_years
from actnav.errors import InputError
from actnav.patient.fhir import patient_from_bundle
from actnav.patient.models import Coding, PatientRecord
from actnav.patient.notes.bundle import (
    BIRTH_DATE_ESTIMATED_URL,
    NOTE_EVIDENCE_URL,
    Decision,
    add_fact,
    apply_review,
    estimated_birth_date,
    extracted_resources,
    extraction_bundle,
    fact_uses,
)
from actnav.patient.notes.model import NoteExtraction, NoteFact, Span
from actnav.patient.terminology import icd10cm_title, icd10cm_valid

AS_OF = dt.date(2026, 11, 29)
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

NOTE = (
    "64yo woman with multiple myeloma, s/p allogeneic transplant with recurrent disease. "
    "Initially treated with melphalan and prednisone, followed by VAD regimen. "
    "Refractory to lenalidomide. "
    "Platelets 85 x10^9/L. ECOG 1. No CNS involvement. No history of HIV. "
    "Her mother had breast cancer. HLA-A*02:01 positive. Would consider CAR-T if eligible."
)


def _span(words: str, text: str = NOTE) -> Span:
    start = text.index(words)
    return Span(start=start, end=start + len(words), text=words)


def _fact(fid: str, kind: str, words: str, **fields: Any) -> NoteFact:
    span = _span(words)
    return NoteFact.model_validate(
        {
            "id": fid,
            "kind": kind,
            "label": fields.pop("label", words),
            "span": span,
            "sentence": span,
            **fields,
        }
    )


def _extraction(*extra: NoteFact, text: str = NOTE) -> NoteExtraction:
    facts = (
        _fact("f1", "age", "64yo", number=64, unit="a", label="age 64 years"),
        _fact("f2", "sex", "woman", value="female"),
        _fact(
            "f3",
            "diagnosis",
            "multiple myeloma",
            concept="multiple_myeloma",
            codes=(
                Coding(
                    system=ICD10CM, code="C90.00", display="Multiple myeloma not having achieved remission"
                ),
            ),
        ),
        _fact("f4", "transplant", "allogeneic transplant", value="allogeneic", historical=True),
        _fact("f5", "disease_status", "recurrent disease", value="relapse"),
        _fact("f6", "therapy", "melphalan", concept="melphalan", historical=True, order=1),
        _fact("f7", "therapy", "prednisone", concept="prednisone", historical=True, order=1),
        _fact("f8", "therapy", "VAD", concept="VAD", historical=True, order=2),
        _fact("f9", "therapy", "lenalidomide", concept="lenalidomide", value="refractory"),
        _fact("f10", "lab", "Platelets 85 x10^9/L", concept="platelets", number=85, unit="10*9/L"),
        _fact("f11", "performance_status", "ECOG 1", concept="ecog", number=1, unit="{score}"),
        _fact("f12", "cns_involvement", "CNS involvement", negated=True),
        _fact("f13", "infection", "HIV", concept="hiv_infection", negated=True),
        _fact("f14", "diagnosis", "breast cancer", concept="breast_cancer", family=True),
        _fact("f15", "hla", "HLA-A*02:01", value="A*02:01"),
        _fact("f16", "therapy", "CAR-T", concept="car_t", hypothetical=True),
        *extra,
    )
    return NoteExtraction(text=text, as_of=AS_OF, facts=facts)


def _record(bundle: dict[str, Any]) -> PatientRecord:
    return patient_from_bundle(bundle, as_of=AS_OF)


def _resources(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in bundle["entry"]}


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return extraction_bundle(_extraction(), patient_id="p1")


@pytest.fixture(scope="module")
def record(bundle: dict[str, Any]) -> PatientRecord:
    return _record(bundle)


def test_the_icd_code_of_the_test_note_is_a_real_icd10cm_code() -> None:
    assert icd10cm_valid("C90.00")
    assert "myeloma" in (icd10cm_title("C90.00") or "").lower()


def test_the_importer_reads_the_stated_age_and_sex(record: PatientRecord) -> None:
    assert age_in_years(record.birth_date, AS_OF) == 64
    assert record.sex == "female"


def test_the_birth_date_is_marked_as_estimated_from_the_stated_age(bundle: dict[str, Any]) -> None:
    patient = _resources(bundle)["Patient/p1"]
    assert patient["_birthDate"]["extension"] == [
        {"url": BIRTH_DATE_ESTIMATED_URL, "valueString": "from stated age 64 years"}
    ]


@pytest.mark.parametrize(
    ("as_of", "years"),
    [
        (dt.date(2026, 11, 29), 64),
        (dt.date(2024, 2, 29), 70),
        (dt.date(2026, 1, 1), 18),
        (dt.date(2026, 7, 1), 90),
    ],
)
def test_an_estimated_birth_date_gives_exactly_the_stated_age(as_of: dt.date, years: int) -> None:
    assert age_in_years(estimated_birth_date(years, as_of), as_of) == years


def test_the_myeloma_diagnosis_keeps_its_code_and_maps_to_the_concept(record: PatientRecord) -> None:
    myeloma = [d for d in record.diagnoses if "multiple_myeloma" in d.concepts]
    assert len(myeloma) == 1
    assert "C90.00" in {c.code for c in myeloma[0].codings}
    assert myeloma[0].resource == "Condition/diagnosis-f3"


def test_platelets_are_read_in_the_canonical_unit(record: PatientRecord) -> None:
    (platelets,) = [m for m in record.measurements if m.key == "platelets"]
    assert platelets.value == pytest.approx(85)
    assert platelets.unit == "10*9/L"
    assert platelets.date == AS_OF  # undated in the note: stated as of the note's date


def test_performance_status_is_read(record: PatientRecord) -> None:
    (ecog,) = [m for m in record.measurements if m.key == "ecog"]
    assert ecog.value == 1


def test_the_allogeneic_transplant_and_the_relapse_are_read(record: PatientRecord) -> None:
    assert [t.type for t in record.transplants] == ["allogeneic"]
    assert [e.status for e in record.disease_status if e.focus is None] == ["relapse"]


def test_therapies_are_read_with_their_agents_and_no_dates(record: PatientRecord) -> None:
    agents = {a for t in record.therapies for a in t.agents}
    # VAD: vincristine, doxorubicin (Adriamycin), dexamethasone.
    assert {
        "melphalan",
        "prednisone",
        "vincristine",
        "doxorubicin",
        "dexamethasone",
        "lenalidomide",
    } <= agents
    assert all(t.start is None and t.end is None for t in record.therapies)


def test_refractory_to_a_therapy_is_a_status_about_it(record: PatientRecord) -> None:
    (refractory,) = [e for e in record.disease_status if e.status == "refractory"]
    assert refractory.focus == "MedicationStatement/therapy-f9"


def test_a_negated_cns_involvement_is_an_explicit_negative(record: PatientRecord) -> None:
    (cns,) = [f for f in record.findings if f.key == "cns_involvement"]
    assert cns.value == "negative"
    assert not any("cns_involvement" in d.concepts for d in record.diagnoses)


def test_negated_family_and_hypothetical_facts_are_absent(
    bundle: dict[str, Any], record: PatientRecord
) -> None:
    concepts = {c for d in record.diagnoses for c in d.concepts}
    assert "breast_cancer" not in concepts
    assert "hiv_infection" not in concepts
    assert not [f for f in record.findings if f.key == "hiv"]
    assert "car_t" not in {c for t in record.therapies for c in t.classes}
    facts_written = {e.fact for ev in extracted_resources(bundle).values() for e in ev}
    assert facts_written.isdisjoint({"f13", "f14", "f16"})


def test_hla_typing_is_read(record: PatientRecord) -> None:
    assert [(a.locus, a.p_group) for a in record.hla] == [("A", "A*02:01P")]


def test_every_resource_carries_its_evidence(bundle: dict[str, Any]) -> None:
    resources = _resources(bundle)
    found = extracted_resources(bundle)
    assert set(found) == set(resources)
    (condition,) = found["Condition/diagnosis-f3"]
    assert (condition.text, condition.origin, condition.fact) == ("multiple myeloma", "rules", "f3")
    assert NOTE[condition.start : condition.end] == "multiple myeloma"
    assert {e.fact for e in found["Patient/p1"]} == {"f1", "f2"}
    ext = resources["Condition/diagnosis-f3"]["extension"][0]
    assert ext["url"] == NOTE_EVIDENCE_URL
    assert {p["url"] for p in ext["extension"]} == {
        "text",
        "start",
        "end",
        "origin",
        "review",
        "fact",
        "kind",
    }


def test_the_note_is_absent_unless_asked(bundle: dict[str, Any]) -> None:
    assert not any(e["resource"]["resourceType"] == "DocumentReference" for e in bundle["entry"])
    assert "Her mother" not in str(bundle)


def test_the_note_can_be_included_and_evidence_points_to_it() -> None:
    bundle = extraction_bundle(_extraction(), patient_id="p1", include_note=True)
    doc = _resources(bundle)["DocumentReference/note"]
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"].startswith("text/plain")
    assert base64.b64decode(attachment["data"]).decode("utf-8") == NOTE
    ext = _resources(bundle)["Condition/diagnosis-f3"]["extension"][0]["extension"]
    assert {"url": "document", "valueReference": {"reference": "DocumentReference/note"}} in ext
    assert _record(bundle).skipped == {"DocumentReference": 1}


def test_a_note_without_an_age_needs_a_birth_date() -> None:
    text = "Woman with multiple myeloma."
    span = _span("multiple myeloma", text)
    fact = NoteFact(id="f1", kind="diagnosis", label="multiple myeloma", span=span, sentence=span,
                    concept="multiple_myeloma")  # fmt: skip
    extraction = NoteExtraction(text=text, as_of=AS_OF, facts=(fact,))
    with pytest.raises(InputError) as err:
        extraction_bundle(extraction)
    assert err.value.where == "age"
    assert "states no age" in err.value.message
    bundle = extraction_bundle(extraction, birth_date=dt.date(1960, 5, 4))
    assert _record(bundle).birth_date == dt.date(1960, 5, 4)
    assert "_birthDate" not in _resources(bundle)[next(iter(_resources(bundle)))]


def test_two_different_ages_are_an_error() -> None:
    extra = _fact("f20", "age", "64yo", number=65, unit="a")
    with pytest.raises(InputError) as err:
        extraction_bundle(_extraction(extra))
    assert err.value.where == "age"


def test_fact_uses_say_why_a_fact_is_not_used() -> None:
    uses = fact_uses(_extraction())
    assert uses["f3"] is None and uses["f12"] is None
    assert uses["f13"] == "negated"
    assert uses["f14"] == "about someone else"
    assert uses["f16"] == "hypothetical"


def test_review_rejects_and_corrects() -> None:
    decisions = {
        "f4": Decision(action="reject"),
        "f10": Decision(action="correct", number=95),
        "f3": Decision(action="accept"),
    }
    reviewed = apply_review(_extraction(), decisions)
    by_id = {f.id: f for f in reviewed.facts}
    assert (by_id["f10"].number, by_id["f10"].origin, by_id["f10"].review) == (95, "reviewer", "corrected")
    assert (by_id["f3"].origin, by_id["f3"].review) == ("rules", "accepted")
    record = _record(extraction_bundle(reviewed))
    assert record.transplants == ()
    assert [m.value for m in record.measurements if m.key == "platelets"] == [pytest.approx(95)]
    platelets = next(
        ev for ref, ev in extracted_resources(extraction_bundle(reviewed)).items() if "platelets" in ref
    )
    assert (platelets[0].origin, platelets[0].review) == ("reviewer", "corrected")


def test_correcting_the_concept_drops_the_old_codes() -> None:
    reviewed = apply_review(_extraction(), {"f3": Decision(action="correct", concept="dlbcl_nos")})
    record = _record(extraction_bundle(reviewed))
    concepts = {c for d in record.diagnoses for c in d.concepts}
    assert "dlbcl_nos" in concepts and "multiple_myeloma" not in concepts


def test_review_of_an_unknown_fact_names_it() -> None:
    with pytest.raises(InputError) as err:
        apply_review(_extraction(), {"f99": Decision(action="accept")})
    assert err.value.where == "decisions.f99"


@pytest.mark.parametrize(
    ("fact_id", "decision", "field"),
    [
        # labs.yaml age_years: plausible 0-125 years
        ("f1", Decision(action="correct", number=200), "number"),
        ("f1", Decision(action="correct", number=-1), "number"),
        ("f1", Decision(action="correct", unit="kg"), "unit"),
        ("f2", Decision(action="correct", value="woman"), "value"),  # sex: female / male
        ("f3", Decision(action="correct", concept="made_up_disease"), "concept"),
        ("f3", Decision(action="correct", concept="melphalan"), "concept"),  # an agent, not a disease
        ("f3", Decision(action="correct", value="positive"), "value"),  # a diagnosis has no value
        ("f4", Decision(action="correct", value="syngeneic"), "value"),  # autologous/allogeneic/unknown
        ("f5", Decision(action="correct", value="cured"), "value"),
        ("f5", Decision(action="correct", number=2.5), "number"),  # a count of relapses
        ("f6", Decision(action="correct", concept="wonderdrug"), "concept"),
        ("f10", Decision(action="correct", concept="made_up_analyte"), "concept"),
        # labs.yaml platelets: plausible 0-10000 x10^9/L; 85000 x10^9/L is a unit slip
        ("f10", Decision(action="correct", number=85000), "number"),
        ("f10", Decision(action="correct", unit="mg/dL"), "unit"),  # a count is not a mass
        ("f11", Decision(action="correct", number=7), "number"),  # ECOG 0-5 (Oken 1982)
        ("f11", Decision(action="correct", number=1.5), "number"),
        ("f12", Decision(action="correct", value="maybe"), "value"),
        ("f15", Decision(action="correct", value="not an allele"), "value"),
        ("f15", Decision(action="correct", concept="A*02:01P"), "concept"),  # HLA takes no concept
        ("f9", Decision(action="correct", date=AS_OF + dt.timedelta(days=1)), "date"),
        ("f9", Decision(action="correct", date=dt.date(1850, 1, 1)), "date"),
        ("f9", Decision(action="correct", number=3), "number"),  # a therapy takes no number
    ],
)
def test_a_correction_is_checked_like_the_extractors_check_facts(
    fact_id: str, decision: Decision, field: str
) -> None:
    with pytest.raises(InputError) as err:
        apply_review(_extraction(), {fact_id: decision})
    assert err.value.where == f"decisions.{fact_id}.{field}"


def test_the_error_of_an_implausible_age_names_the_value_and_the_range() -> None:
    with pytest.raises(InputError, match=r"200 is outside 0 to 125 years"):
        apply_review(_extraction(), {"f1": Decision(action="correct", number=200)})


@pytest.mark.parametrize(
    ("fact_id", "decision"),
    [
        ("f1", Decision(action="correct", number=125)),
        ("f1", Decision(action="correct", number=18, unit="mo")),
        ("f2", Decision(action="correct", value="male")),
        ("f3", Decision(action="correct", concept="dlbcl_nos")),
        ("f5", Decision(action="correct", value="refractory", number=2)),
        ("f6", Decision(action="correct", concept="bortezomib")),
        ("f8", Decision(action="correct", concept="R-CHOP")),
        ("f10", Decision(action="correct", number=85000, unit="/uL")),  # 85 x10^9/L
        ("f11", Decision(action="correct", concept="karnofsky", number=70)),
        ("f12", Decision(action="correct", value="negative")),
        ("f15", Decision(action="correct", value="A*24:02")),
        ("f9", Decision(action="correct", date=AS_OF)),
    ],
)
def test_plausible_corrections_are_taken(fact_id: str, decision: Decision) -> None:
    reviewed = apply_review(_extraction(), {fact_id: decision})
    fact = next(f for f in reviewed.facts if f.id == fact_id)
    assert fact.review == "corrected" and fact.origin == "reviewer"
    for name, value in decision.corrections().items():
        assert getattr(fact, name) == value


def test_a_decision_changes_fields_only_when_it_corrects() -> None:
    with pytest.raises(ValueError, match="only a correction"):
        Decision(action="accept", number=3)
    with pytest.raises(ValueError, match="at least one"):
        Decision(action="correct")


def test_a_reviewer_can_add_a_fact() -> None:
    added = add_fact(
        _extraction(),
        kind="lab",
        label="creatinine 1.1 mg/dL",
        concept="creatinine",
        number=1.1,
        unit="mg/dL",
    )
    fact = added.facts[-1]
    assert (fact.id, fact.origin, fact.review, fact.span.text) == ("r1", "reviewer", "accepted", "")
    (creatinine,) = [m for m in _record(extraction_bundle(added)).measurements if m.key == "creatinine"]
    assert creatinine.value == pytest.approx(1.1)
    with pytest.raises(InputError) as err:
        add_fact(_extraction(), kind="lab", label="x", start=5, end=len(NOTE) + 1)
    assert err.value.where == "start"


def test_a_fact_stated_twice_is_one_resource_with_both_words() -> None:
    again = _fact("f20", "diagnosis", "recurrent disease", concept="multiple_myeloma", label="myeloma")
    bundle = extraction_bundle(_extraction(again), patient_id="p1")
    conditions = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition"]
    assert len(conditions) == 1
    assert [e.fact for e in extracted_resources(bundle)["Condition/diagnosis-f3"]] == ["f3", "f20"]
    codes = [(c["system"], c["code"]) for c in conditions[0]["code"]["coding"]]
    assert len(codes) == len(set(codes))


def test_a_status_naming_a_drug_is_about_that_therapy() -> None:
    status = _fact(
        "f20", "disease_status", "Refractory to lenalidomide", value="refractory", detail="lenalidomide"
    )
    plain = _fact("f9", "therapy", "lenalidomide", concept="lenalidomide")
    facts = tuple(f for f in _extraction().facts if f.id != "f9")
    extraction = NoteExtraction(text=NOTE, as_of=AS_OF, facts=(*facts, status, plain))
    record = _record(extraction_bundle(extraction))
    assert [e.focus for e in record.disease_status if e.status == "refractory"] == [
        "MedicationStatement/therapy-f9"
    ]


def test_a_negated_present_finding_is_absent_and_a_double_negative_is_left_out() -> None:
    cns = _fact("f12", "cns_involvement", "CNS involvement", negated=True, value="positive")
    unclear = _fact("f12", "cns_involvement", "CNS involvement", negated=True, value="negative")
    facts = tuple(f for f in _extraction().facts if f.id != "f12")
    record = _record(extraction_bundle(NoteExtraction(text=NOTE, as_of=AS_OF, facts=(*facts, cns))))
    assert [f.value for f in record.findings if f.key == "cns_involvement"] == ["negative"]
    extraction = NoteExtraction(text=NOTE, as_of=AS_OF, facts=(*facts, unclear))
    assert not [f for f in _record(extraction_bundle(extraction)).findings if f.key == "cns_involvement"]
    assert fact_uses(extraction)["f12"] == "a negated negative result is unclear"


def test_a_lab_value_without_a_unit_is_never_written_in_the_canonical_unit() -> None:
    # "Platelets 85" with no unit: 85 could be x10^9/L or x10^3/uL or per mL; the bundle must
    # not read it as the canonical 10*9/L (keyfacts.lab_in_canonical_unit treats None so).
    lab = _fact("f9", "lab", "Platelets 85", concept="platelets", number=85.0, unit=None)
    extraction = _extraction(lab)
    assert fact_uses(extraction)["f9"] == "unit not stated"
    bundle = extraction_bundle(extraction, patient_id="p1")
    assert not [
        r
        for r in _resources(bundle).values()
        if r["resourceType"] == "Observation" and r["id"].startswith("lab-platelets-f9")
    ]


def test_a_negative_finding_is_quoted_with_its_negation() -> None:
    """'No CNS involvement' quoted as "CNS involvement" would read as the opposite (QA finding)."""
    from actnav.patient.notes.bundle import evidence_text, extracted_resources, extraction_bundle
    from actnav.patient.notes.extract import extract_note

    extraction = extract_note("62yo man with DLBCL. No CNS involvement.", as_of=dt.date(2026, 11, 29))
    resources = extracted_resources(extraction_bundle(extraction))
    quotes = {ref: evidence_text(found) for ref, found in resources.items()}
    cns = [words for ref, words in quotes.items() if any("CNS" in w for w in words)]
    assert cns == [["no CNS involvement"]]
    assert ["DLBCL"] in quotes.values()  # a positive fact is still quoted by its words
