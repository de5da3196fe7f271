"""ASTCT 2019 ICANS grading: every domain boundary, the ICE-0 rule, CAPD for children aged 12 or under.

Expected grades are read from Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638:
Table 8 (ICANS consensus grading for adults, with footnotes) and Table 10 (children aged 12 or
under, CAPD), as given in the actnav clinical reference sections 2.3 and 2.4.
"""

from __future__ import annotations

from typing import Any

import pytest

from actnav.errors import InputError
from actnav.toxicity import grade_icans

ADULT = {"age_years": 45}
CHILD = {"age_years": 12}

# (case id, grade_icans keyword arguments, expected grade, expected deciding domain)
GRADE_TABLE: list[tuple[str, dict[str, Any], int | None, str | None]] = [
    # ICE row (Table 8): 10 none; 7-9 grade 1; 3-6 grade 2; 0-2 grade 3; 0 unarousable grade 4.
    ("ICE 10 is no ICANS", {**ADULT, "ice_score": 10}, 0, None),
    ("ICE 9 is grade 1", {**ADULT, "ice_score": 9}, 1, "ice"),
    ("ICE 7 is grade 1", {**ADULT, "ice_score": 7}, 1, "ice"),
    ("ICE 6 is grade 2", {**ADULT, "ice_score": 6}, 2, "ice"),
    ("ICE 3 is grade 2", {**ADULT, "ice_score": 3}, 2, "ice"),
    ("ICE 2 is grade 3", {**ADULT, "ice_score": 2}, 3, "ice"),
    ("ICE 1 is grade 3", {**ADULT, "ice_score": 1}, 3, "ice"),
    (
        "ICE 0 awake (global aphasia) is grade 3",
        {**ADULT, "ice_score": 0, "consciousness": "alert"},
        3,
        "ice",
    ),
    ("ICE 0 with consciousness not recorded is grade 3", {**ADULT, "ice_score": 0}, 3, "ice"),
    ("ICE 0 unarousable is grade 4", {**ADULT, "ice_score": 0, "consciousness": "unarousable"}, 4, "ice"),
    # Depressed level of consciousness (Table 8).
    ("alert is no ICANS", {**ADULT, "consciousness": "alert"}, 0, None),
    (
        "awakens spontaneously is grade 1",
        {**ADULT, "consciousness": "awakens_spontaneously"},
        1,
        "consciousness",
    ),
    ("awakens to voice is grade 2", {**ADULT, "consciousness": "awakens_to_voice"}, 2, "consciousness"),
    ("awakens only to touch is grade 3", {**ADULT, "consciousness": "awakens_to_touch"}, 3, "consciousness"),
    ("unarousable is grade 4", {**ADULT, "consciousness": "unarousable"}, 4, "consciousness"),
    (
        "depressed consciousness explained by sedation is not counted",
        {**ADULT, "ice_score": 10, "consciousness": "awakens_to_touch", "consciousness_other_cause": True},
        0,
        None,
    ),
    # Seizure (Table 8).
    ("no seizure", {**ADULT, "seizure": "none"}, 0, None),
    ("seizure that resolves rapidly is grade 3", {**ADULT, "seizure": "resolved_rapidly"}, 3, "seizure"),
    (
        "non-convulsive seizure resolved with intervention is grade 3",
        {**ADULT, "seizure": "nonconvulsive_resolved_with_intervention"},
        3,
        "seizure",
    ),
    ("seizure over 5 minutes is grade 4", {**ADULT, "seizure": "prolonged_over_5_min"}, 4, "seizure"),
    (
        "repetitive seizures without return is grade 4",
        {**ADULT, "seizure": "repetitive_without_return"},
        4,
        "seizure",
    ),
    # Motor findings (Table 8).
    ("no motor weakness", {**ADULT, "motor_weakness": "none"}, 0, None),
    ("deep focal motor weakness is grade 4", {**ADULT, "motor_weakness": "deep_focal"}, 4, "motor"),
    # Raised ICP / cerebral oedema (Table 8).
    ("no oedema", {**ADULT, "cerebral_edema": "none"}, 0, None),
    ("focal oedema is grade 3", {**ADULT, "cerebral_edema": "focal"}, 3, "raised_icp"),
    ("diffuse oedema is grade 4", {**ADULT, "cerebral_edema": "diffuse"}, 4, "raised_icp"),
    ("posturing is grade 4", {**ADULT, "raised_icp_signs": ["posturing"]}, 4, "raised_icp"),
    (
        "cranial nerve VI palsy is grade 4",
        {**ADULT, "raised_icp_signs": ["cranial_nerve_vi_palsy"]},
        4,
        "raised_icp",
    ),
    ("papilloedema is grade 4", {**ADULT, "raised_icp_signs": ["papilledema"]}, 4, "raised_icp"),
    ("Cushing's triad is grade 4", {**ADULT, "raised_icp_signs": ["cushings_triad"]}, 4, "raised_icp"),
    (
        "focal oedema with papilloedema is grade 4",
        {**ADULT, "cerebral_edema": "focal", "raised_icp_signs": ["papilledema"]},
        4,
        "raised_icp",
    ),
    # The worst domain sets the grade (rule 1), e.g. ICE 3 with a generalised seizure is grade 3.
    (
        "ICE 3 with a seizure is grade 3",
        {**ADULT, "ice_score": 3, "seizure": "resolved_rapidly"},
        3,
        "seizure",
    ),
    (
        "ICE 8 with diffuse oedema is grade 4",
        {**ADULT, "ice_score": 8, "cerebral_edema": "diffuse"},
        4,
        "raised_icp",
    ),
    (
        "ICE 9 awakening to voice is grade 2",
        {**ADULT, "ice_score": 9, "consciousness": "awakens_to_voice"},
        2,
        "consciousness",
    ),
    (
        "a tie names the first domain in table order",
        {**ADULT, "ice_score": 5, "consciousness": "awakens_to_voice"},
        2,
        "ice",
    ),
    # Tremor and myoclonus alone are not ICANS (Table 8 footnote).
    ("tremor alone is not ICANS", {**ADULT, "tremor": True}, 0, None),
    ("myoclonus alone is not ICANS", {**ADULT, "myoclonus": True}, 0, None),
    (
        "ICE 10 with tremor and myoclonus is grade 0",
        {**ADULT, "ice_score": 10, "tremor": True, "myoclonus": True},
        0,
        None,
    ),
    # Children aged 12 or under: CAPD (Table 10).
    ("age 12, CAPD 0 is no ICANS", {**CHILD, "capd_score": 0}, 0, None),
    ("age 12, CAPD 1 is grade 1", {**CHILD, "capd_score": 1}, 1, "capd"),
    ("age 12, CAPD 8 is grade 1", {**CHILD, "capd_score": 8}, 1, "capd"),
    ("age 12, CAPD 9 is grade 3", {**CHILD, "capd_score": 9}, 3, "capd"),
    ("age 12, CAPD 10 is grade 3", {**CHILD, "capd_score": 10}, 3, "capd"),
    (
        "age 12, CAPD 8 awakening to voice is grade 2",
        {**CHILD, "capd_score": 8, "consciousness": "awakens_to_voice"},
        2,
        "consciousness",
    ),
    (
        "age 12, CAPD 5 awakening spontaneously is grade 1",
        {**CHILD, "capd_score": 5, "consciousness": "awakens_spontaneously"},
        1,
        "capd",
    ),
    (
        "age 6, unarousable (cannot do the CAPD) is grade 4",
        {"age_years": 6, "consciousness": "unarousable"},
        4,
        "consciousness",
    ),
    ("age 12.9 is 12 in completed years: CAPD", {"age_years": 12.9, "capd_score": 9}, 3, "capd"),
    ("age 13 uses the ICE", {"age_years": 13, "ice_score": 8}, 1, "ice"),
    (
        "age 13 with developmental delay may use the CAPD",
        {"age_years": 13, "developmental_delay": True, "capd_score": 9},
        3,
        "capd",
    ),
    # Nothing neurological recorded: no grade.
    ("nothing recorded is unknown", {**ADULT}, None, None),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "grade", "domain"), GRADE_TABLE, ids=[row[0] for row in GRADE_TABLE]
)
def test_icans_grade_follows_the_astct_tables(
    case: str, kwargs: dict[str, Any], grade: int | None, domain: str | None
) -> None:
    result = grade_icans(**kwargs)
    assert (result.grade, result.deciding_domain) == (grade, domain), case


@pytest.mark.parametrize(("age", "field"), [(12, "ice_score"), (12.9, "ice_score"), (4, "ice_score")])
def test_the_ice_is_refused_for_children_aged_12_or_under(age: float, field: str) -> None:
    with pytest.raises(InputError) as caught:
        grade_icans(age_years=age, ice_score=9)
    assert caught.value.where == field
    assert "12 or under" in caught.value.message


def test_the_capd_is_refused_at_13_without_developmental_delay() -> None:
    with pytest.raises(InputError) as caught:
        grade_icans(age_years=13, capd_score=4)
    assert caught.value.where == "capd_score"


def test_ice_and_capd_together_need_the_age() -> None:
    with pytest.raises(InputError) as caught:
        grade_icans(ice_score=9, capd_score=4)
    assert caught.value.where == "age_years"


@pytest.mark.parametrize(
    ("kwargs", "grade", "tool", "note"),
    [
        # Both scores recorded: the age decides (clinical reference 2.4: 12 uses the CAPD, 13 the ICE).
        ({"age_years": 12, "ice_score": 5, "capd_score": 10}, 3, "capd", "ICE score 5 not used"),
        ({"age_years": 13, "ice_score": 5, "capd_score": 10}, 2, "ice", "CAPD score 10 not used"),
        (
            {"age_years": 13, "developmental_delay": True, "ice_score": 5, "capd_score": 10},
            3,
            "capd",
            "ICE score 5 not used",
        ),
    ],
)
def test_when_both_scores_are_given_the_age_decides(
    kwargs: dict[str, Any], grade: int, tool: str, note: str
) -> None:
    result = grade_icans(**kwargs)
    assert (result.grade, result.tool) == (grade, tool)
    assert any(n.startswith(note) for n in result.notes)


def test_ice_items_are_added_up_and_kept_as_inputs() -> None:
    items = {"orientation": 2, "naming": 3, "commands": 1, "writing": 0, "attention": 0}
    result = grade_icans(age_years=60, ice=items)
    assert result.grade == 2  # ICE 6
    assert result.inputs["ice_score"] == 6
    assert result.inputs["ice.orientation"] == 2


def test_unarousable_ice_zero_uses_the_grade_4_rule() -> None:
    result = grade_icans(age_years=60, ice_score=0, consciousness="unarousable")
    assert result.domain_grades == {"ice": 4, "consciousness": 4}
    assert "icans-ice-zero-unarousable" in result.rows
    assert result.inputs == {"ice_score": 0, "consciousness": "unarousable"}


def test_awake_ice_zero_notes_that_unarousable_would_be_grade_4() -> None:
    result = grade_icans(age_years=60, ice_score=0)
    assert result.grade == 3
    assert any("would be grade 4" in note for note in result.notes)


def test_tremor_is_noted_but_does_not_grade() -> None:
    result = grade_icans(age_years=60, ice_score=8, tremor=True)
    assert result.grade == 1
    assert any(note.startswith("tremor recorded") for note in result.notes)


def test_sedation_is_noted_and_not_counted() -> None:
    result = grade_icans(
        age_years=60, consciousness="unarousable", consciousness_other_cause=True, ice_score=9
    )
    assert result.grade == 1
    assert "consciousness" not in result.domain_grades
    assert any("explained by another cause" in note for note in result.notes)


def test_the_worst_domain_and_the_lower_ones_are_named_in_the_reason() -> None:
    result = grade_icans(age_years=60, ice_score=5, seizure="prolonged_over_5_min")
    assert result.grade == 4
    assert result.reason.startswith("grade 4: seizure:")
    assert "ICE score grade 2" in result.reason
    assert result.inputs == {"seizure": "prolonged_over_5_min"}


def test_domains_not_assessed_are_listed() -> None:
    result = grade_icans(age_years=60, ice_score=10)
    assert result.not_assessed == ("consciousness", "seizure", "motor", "raised_icp")
    assert grade_icans(age_years=60).not_assessed == (
        "ice_or_capd",
        "consciousness",
        "seizure",
        "motor",
        "raised_icp",
    )


def test_missing_age_is_noted() -> None:
    assert any("age not recorded" in note for note in grade_icans(ice_score=8).notes)
    assert grade_icans(capd_score=9).tool == "capd"
