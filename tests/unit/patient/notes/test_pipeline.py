"""The medspacy pipeline: sentences, target rules from every file, ConText additions of context.yaml."""

from __future__ import annotations

import pytest
from spacy.tokens import Doc

from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.pipeline import flags, note_doc, target_rules


@pytest.fixture(scope="module")
def doc() -> Doc:
    return note_doc(
        "64yo woman with multiple myeloma, s/p allogeneic transplant. Her mother had breast cancer. "
        "Rule out lymphoma. She was referred for CAR-T therapy. She did not respond to bortezomib."
    )


def _ent(doc: Doc, text: str) -> dict[str, bool]:
    found = [e for e in doc.ents if e.text == text]
    assert found, f"{text!r} not found in {[e.text for e in doc.ents]}"
    return flags(found[0])


def test_sentences_and_labels(doc: Doc) -> None:
    assert len(list(doc.sents)) == 5
    labels = {e.text: e.label_ for e in doc.ents}
    assert labels["multiple myeloma"] == "diagnosis"
    assert labels["allogeneic transplant"] == "transplant"
    assert labels["bortezomib"] == "therapy"
    assert labels["64yo"] == "age"


def test_rules_come_from_every_target_file_and_the_lexicon() -> None:
    kinds = {r.kind for r in target_rules()}
    assert {"age", "sex", "diagnosis", "disease_status", "transplant", "therapy"} <= kinds
    assert any(r.concept == "type_2_diabetes" and r.literal == "T2DM" for r in target_rules())


def test_drug_mentions_carry_their_agents(doc: Doc) -> None:
    ent = next(e for e in doc.ents if e.text == "bortezomib")
    assert ent._.target_rule.metadata["agents"] == ("bortezomib",)


def test_context_additions(doc: Doc) -> None:
    assert _ent(doc, "allogeneic transplant")["historical"]  # s/p
    assert _ent(doc, "breast cancer")["family"]  # mother
    assert _ent(doc, "lymphoma")["uncertain"]  # rule out
    assert _ent(doc, "CAR-T therapy")["hypothetical"]  # referred for
    assert not _ent(doc, "bortezomib")["negated"]  # did not respond to: given, not denied
    assert not any(_ent(doc, "multiple myeloma").values())


def test_a_donor_is_someone_else() -> None:
    d = note_doc(
        "Allogeneic transplant from a matched sibling donor. The CMV-positive donor was HLA-matched."
    )
    assert not flags(next(e for e in d.ents if e.label_ == "transplant"))["family"]


def test_a_therapy_for_consideration_is_hypothetical() -> None:
    doc = note_doc("She is seen for consideration of CAR-T cell therapy.")
    car_t = [e for e in doc.ents if e.label_ == "therapy"]
    assert car_t and flags(car_t[0])["hypothetical"]


def test_free_fluid_does_not_negate_the_sentence() -> None:
    # trec-202158: medspacy's "free" (as in "pain free") negated everything before it.
    doc = note_doc("CT scan showed evidence of acute perforated appendicitis with free fluid in the pelvis.")
    found = [e for e in doc.ents if e.label_ == "diagnosis"]
    assert found and not flags(found[0])["negated"]


# -- ConText stays in its sentence and its referral cues stay on the plan ---------------------


def _facts(text: str) -> dict[str, NoteFact]:
    import datetime as dt

    from actnav.patient.notes.extract import extract_note

    return {f.span.text: f for f in extract_note(text, as_of=dt.date(2026, 11, 29)).facts}


def test_a_referral_heading_does_not_make_the_patient_hypothetical() -> None:
    facts = _facts("Referral: 47-year-old woman with follicular lymphoma.")
    assert facts["47-year-old"].about_patient and facts["woman"].about_patient
    assert facts["follicular lymphoma"].about_patient


def test_referred_for_marks_the_therapy_not_the_reason() -> None:
    facts = _facts(
        "This 47-year-old woman is referred for CAR-T therapy for her relapsed follicular lymphoma."
    )
    assert facts["CAR-T therapy"].hypothetical
    assert facts["follicular lymphoma"].about_patient and facts["relapsed"].about_patient


@pytest.mark.parametrize("tail", ["", " "])  # PyRuSH kept both in one sentence with a trailing blank
def test_a_negation_does_not_cross_into_the_next_sentence(tail: str) -> None:
    doc = note_doc("Denies hepatitis B. Mother had breast cancer." + tail)
    assert [s.text.strip() for s in doc.sents] == ["Denies hepatitis B.", "Mother had breast cancer."]
    assert _ent(doc, "hepatitis B")["negated"]
    assert _ent(doc, "breast cancer") == {**_ent(doc, "breast cancer"), "negated": False, "family": True}


def test_a_plan_does_not_cross_into_the_next_sentence() -> None:
    doc = note_doc("Relapsed DLBCL; we would like to consider CAR-T. Hypothyroidism? No CNS involvement.")
    assert _ent(doc, "CAR-T")["hypothetical"]  # the span leaves the full stop out
    hypothyroidism = _ent(doc, "Hypothyroidism")
    assert hypothyroidism["uncertain"] and not hypothyroidism["hypothetical"]


@pytest.mark.parametrize(
    "text", ["She denies hepatitis.", "She never had a transplant.", "She never had a stem cell transplant."]
)
def test_a_denied_history_never_becomes_a_positive_fact(text: str) -> None:
    for fact in _facts(text).values():
        if fact.kind in {"infection", "transplant", "diagnosis"}:
            assert fact.negated and not fact.about_patient
