"""The terminology tables and their pure matching functions (actnav.patient.terminology).

Expected values come from the cited sources, not from the code under test:
* regimen compositions: NCCN Guidelines for Patients (BR, R-CHOP, R-DHAP), the IELSG32 trial
  (MATRix = methotrexate, cytarabine, thiotepa, rituximab), CLL14 (venetoclax-obinutuzumab),
  ChemoExperts (FCR; DPd "Dara/Pom/Dex"), ASPIRE (KRd) and the other references of drugs.yaml;
* ICD-10-CM FY2026: C83.390 primary central nervous system lymphoma, C83.398 DLBCL of other
  extranodal and solid organ sites;
* plausibility: no count, concentration or activity is negative; a percentage is 0-100; ECOG is
  0-5 and Karnofsky 0-100 (both whole numbers).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from actnav.errors import DataFileError
from actnav.knowledge.loader import parse_file
from actnav.patient import terminology
from actnav.patient.models import Coding

DATA = Path(terminology.__file__).resolve().parents[1] / "data" / "terminology"


def _yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    return data


# -- plausibility bounds (labs.yaml) -------------------------------------------------------------


def test_every_analyte_has_a_cited_plausible_range() -> None:
    for a in terminology.labs().analytes:
        assert a.plausible is not None, a.key
        assert a.plausible.source.ref in terminology.labs().references, a.key
        assert 0 <= a.plausible.min < a.plausible.max, a.key


@pytest.mark.parametrize(
    ("key", "low", "high"),
    [("ecog", 0, 5), ("karnofsky", 0, 100), ("lvef", 0, 100), ("spo2", 0, 100)],
)
def test_scores_and_percentages_have_their_definitional_ranges(key: str, low: float, high: float) -> None:
    bound = terminology.analyte(key).plausible
    assert bound is not None
    assert (bound.min, bound.max) == (low, high)


def test_scores_are_whole_numbers() -> None:
    for key in ("ecog", "karnofsky"):
        bound = terminology.analyte(key).plausible
        assert bound is not None and bound.integer, key


def test_a_negative_lower_bound_is_rejected_by_the_schema() -> None:
    data = _yaml("labs.yaml")
    data["analytes"][0]["plausible"]["min"] = -1
    with pytest.raises(DataFileError, match="plausible"):
        parse_file(terminology.LabsFile, data, "terminology/labs.yaml")


def test_plausibility_check_reports_the_bound() -> None:
    assert terminology.implausible("anc", 1.5) is None
    message = terminology.implausible("anc", -5)
    assert message is not None and "0 to" in message and "10*9/L" in message
    assert terminology.implausible("ecog", 2.5) is not None
    assert terminology.implausible("anc", float("inf")) is not None
    assert terminology.implausible("anc", float("nan")) is not None


# -- regimens (drugs.yaml) -------------------------------------------------------------------------


def test_every_regimen_is_cited_and_names_known_agents() -> None:
    drugs = terminology.drugs()
    names = {a.name for a in drugs.agents}
    assert len(drugs.regimens) >= 30
    for r in drugs.regimens:
        assert r.source.ref in drugs.references, r.name
        assert set(r.agents) <= names, r.name


def test_two_regimens_cannot_share_a_spelling() -> None:
    data = _yaml("drugs.yaml")
    data["regimens"].append({**data["regimens"][0], "name": "R CHOP duplicate", "spellings": ["r chop"]})
    with pytest.raises(DataFileError, match="spelling"):
        parse_file(terminology.DrugsFile, data, "terminology/drugs.yaml")


@pytest.mark.parametrize(
    ("text", "agents"),
    [
        ("R-CHOP", ("rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone")),
        ("r chop", ("rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone")),
        ("R/CHOP", ("rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone")),
        ("Dara + Pd", ("daratumumab", "pomalidomide", "dexamethasone")),
        ("dara-pom-dex", ("daratumumab", "pomalidomide", "dexamethasone")),
        ("VEN+O", ("venetoclax", "obinutuzumab")),
        ("ven-obi", ("venetoclax", "obinutuzumab")),
        ("B-R", ("bendamustine", "rituximab")),
        ("Pola-R-CHP", ("polatuzumab vedotin", "rituximab", "cyclophosphamide", "doxorubicin", "prednisone")),
    ],
)
def test_regimen_spellings_are_robust_to_case_spaces_hyphens_plus_and_slash(
    text: str, agents: tuple[str, ...]
) -> None:
    assert set(terminology.match_drug([], [text]).agents) == set(agents)


def test_a_longer_regimen_wins_over_the_regimen_it_contains() -> None:
    # "R-CHOP" contains "CHOP"; "Dara-VRd" contains "VRd".
    assert "rituximab" in terminology.match_drug([], ["R-CHOP"]).agents
    assert "daratumumab" in terminology.match_drug([], ["Dara-VRd"]).agents


@pytest.mark.parametrize(
    "text", ["veno-occlusive disease", "anti-PD-1", "brentuximab", "3rd line", "rice water"]
)
def test_regimen_matching_needs_whole_words(text: str) -> None:
    found = terminology.match_drug([], [text])
    assert "venetoclax" not in found.agents and "daratumumab" not in found.agents
    if text == "brentuximab":
        assert found.agents == ("brentuximab vedotin",)
    if text == "rice water":
        assert found.agents == ()


def test_match_drug_says_which_regimen_it_read() -> None:
    assert terminology.match_drug([], ["DA-EPOCH-R"]).regimens == ("DA-EPOCH-R",)
    assert terminology.match_drug([], ["rituximab"]).regimens == ()


# -- diagnoses: refining text and negation ----------------------------------------------------------

ICD = "icd10cm"


def _map(code: str, text: str) -> terminology.ConditionMapping:
    return terminology.map_condition([(ICD, Coding(code=code))], [text])


def test_c83_390_is_pcnsl_by_code() -> None:
    assert terminology.map_condition([(ICD, Coding(code="C83.390"))]).concepts[0] == "primary_cns_lymphoma"


def test_refinement_adds_and_reports_what_it_added() -> None:
    m = _map("C83.39", "Primary central nervous system lymphoma (DLBCL of the CNS)")
    assert {"primary_cns_lymphoma", "dlbcl_nos", "cns_involvement"} <= set(m.concepts)
    assert "primary_cns_lymphoma" in m.refined
    assert not m.by_text


@pytest.mark.parametrize(
    "text",
    [
        "no CNS involvement",
        "negative for CNS involvement",
        "without evidence of CNS involvement",
        "CNS involvement absent",
        "CNS involvement: negative",
        "r/o PCNSL",
        "rule out primary CNS lymphoma",
        "possible primary CNS lymphoma",
        "non-primary CNS lymphoma",
    ],
)
def test_negated_or_uncertain_mentions_add_nothing(text: str) -> None:
    m = _map("C83.38", text)
    assert "cns_involvement" not in m.concepts
    assert "primary_cns_lymphoma" not in m.concepts
    assert m.negated


def test_negation_stops_at_the_clause() -> None:
    # "no" belongs to the first clause; the second clause asserts CNS involvement.
    m = _map("C83.38", "no B symptoms; CNS involvement confirmed by MRI")
    assert "cns_involvement" in m.concepts
    m = _map("C83.38", "no bulky disease but leptomeningeal involvement")
    assert "cns_involvement" in m.concepts


def test_negation_cues_are_data_and_compile() -> None:
    negation = terminology.diagnoses().negation
    assert negation is not None
    for pattern in (negation.before, negation.after, negation.clause_break):
        re.compile(pattern)


def test_refinements_name_the_concepts_they_may_refine() -> None:
    dx = terminology.diagnoses()
    refining = [t for t in (*dx.text_diseases, *dx.text_states) if t.refines]
    ids = {c.id for c in dx.concepts}
    refined = {c for t in refining for c in t.concepts}
    assert {
        "primary_cns_lymphoma",
        "cns_involvement",
        "dlbcl_transformed_fl",
        "pmbcl",
        "hgbcl",
        "b_all",
        "t_all",
    } <= refined
    for t in refining:
        assert set(t.refines) <= ids | {"*"}, t.pattern
