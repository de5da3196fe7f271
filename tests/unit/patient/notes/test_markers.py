"""Biomarkers and HLA alleles read from notes (actnav.patient.notes.markers).

Expected finding keys and codes come from data/terminology/observations.yaml and hla.yaml; HER2
IHC scores from ASCO/CAP 2018 (0 and 1+ negative, 2+ equivocal, 3+ positive).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from tests.conftest import require_shared

from actnav.patient.notes import markers
from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.pipeline import note_doc

AS_OF = dt.date(2026, 11, 29)


def biomarkers(text: str) -> list[NoteFact]:
    return markers.biomarker_facts(note_doc(text), AS_OF)


def hla(text: str) -> list[NoteFact]:
    return markers.hla_facts(note_doc(text), AS_OF)


@pytest.mark.parametrize(
    ("text", "concept", "value"),
    [
        ("BRAF V600E-mutant metastatic melanoma.", "braf_v600", "positive"),
        ("BRAF V600K mutation detected by NGS.", "braf_v600", "positive"),
        ("BRAF V600E negative.", "braf_v600", "negative"),
        ("BRAF wild-type.", "braf_v600", "negative"),
        ("MAGE-A4 expression positive by IHC.", "mage_a4", "positive"),
        ("Myeloma cells were BCMA positive by flow cytometry.", "antigen_bcma", "positive"),
        ("Lymphoma cells are CD19+ and CD20 negative.", "antigen_cd19", "positive"),
        ("HER2 3+ by IHC.", "antigen_her2", "positive"),
        ("HER2 1+.", "antigen_her2", "negative"),
        ("HER2 2+.", "antigen_her2", "indeterminate"),
    ],
)
def test_biomarker_results(text: str, concept: str, value: str) -> None:
    found = [f for f in biomarkers(text) if f.concept == concept]
    assert len(found) == 1
    assert found[0].value == value
    assert found[0].kind == "biomarker"
    assert found[0].about_patient


def test_braf_codes_are_those_of_observations_yaml() -> None:
    (fact,) = biomarkers("BRAF V600E-mutant melanoma.")
    assert [c.code for c in fact.codes] == ["69548-6", "HGNC:1097"]


def test_negative_for_is_a_negative_result_of_the_patient() -> None:
    (fact,) = biomarkers("Negative for BRAF V600E mutation.")
    assert fact.value == "negative"
    assert not fact.negated and fact.about_patient


def test_no_mutation_keeps_the_negation() -> None:
    (fact,) = biomarkers("No BRAF mutation was found.")
    assert fact.negated and not fact.about_patient


def test_gene_level_positive_does_not_show_v600() -> None:
    # A BRAF mutation may be non-V600 (K601E, G469A): nothing is read.
    assert biomarkers("BRAF mutated.") == []


def test_mention_without_result_gives_no_fact() -> None:
    assert biomarkers("BRAF testing was sent.") == []
    assert biomarkers("She received CD19-directed CAR-T and an anti-CD20 antibody.") == []


def test_list_after_expressing_is_positive_for_each() -> None:
    path = require_shared("data", "trialgpt-benchmarks", "trec_2021", "queries.jsonl")
    topics = {q["_id"]: q["text"] for q in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    # trec-20214: "monotypic B cells expressing FMC-7, CD19, CD20, and myc rearrangement"
    found = {f.concept: f.value for f in biomarkers(topics["trec-20214"])}
    assert found == {"antigen_cd19": "positive", "antigen_cd20": "positive"}
    # trec-202125: "The tumor was HER2-positive and ER/PR negative."
    assert {f.concept: f.value for f in biomarkers(topics["trec-202125"])} == {"antigen_her2": "positive"}


def test_markers_outside_observations_have_no_concept() -> None:
    found = biomarkers("EGFR exon 19 deletion. ALK negative. Alk P: 53 U/L.")
    assert [(f.label, f.concept, f.value) for f in found] == [
        ("EGFR mutation: positive", None, "positive"),
        ("ALK rearrangement: negative", None, "negative"),
    ]


def test_egfr_followed_by_a_number_is_the_filtration_rate() -> None:
    assert biomarkers("EGFR 45 mL/min/1.73m2.") == []


def test_every_finding_key_is_in_observations_yaml() -> None:
    known = markers.finding_keys()
    for m in markers.markers_vocabulary().markers:
        assert m.finding is None or m.finding in known


# -- HLA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "p_group", "code"),
    [
        ("HLA-A*02:01 positive.", "A*02:01", "A*02:01P", "57290-9"),
        ("HLA typing: HLA-A*0201.", "A*0201", "A*02:01P", "57290-9"),
        ("HLA-A*02:06 on high-resolution typing.", "A*02:06", "A*02:06P", "57290-9"),
        ("HLA-A*02 by low-resolution typing.", "A*02", None, "78014-8"),
        ("Patient is HLA-A2 positive.", "A2", None, "78014-8"),
    ],
)
def test_hla_alleles(text: str, value: str, p_group: str | None, code: str) -> None:
    (fact,) = hla(text)
    assert fact.kind == "hla"
    assert fact.value == value
    assert fact.concept == p_group
    assert [c.code for c in fact.codes] == [code]
    assert fact.about_patient


def test_hla_allele_list_and_other_loci() -> None:
    found = hla("HLA typing: A*02:01, A*24:02; B*07:02.")
    assert [(f.value, f.concept) for f in found] == [
        ("A*02:01", "A*02:01P"),
        ("A*24:02", None),
        ("B*07:02", None),
    ]
    assert found[2].codes == ()  # observations.yaml has HLA-A codes only


def test_hla_negative_is_kept_negated() -> None:
    (fact,) = hla("HLA-A2 negative.")
    assert fact.negated and not fact.about_patient
