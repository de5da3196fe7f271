"""Age and sex from case summaries: real TREC / SIGIR wordings and synthetic sentences.

Expected values are read from the sentences themselves (a "3-month-old" is 0.25 years).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from tests.conftest import require_shared

from actnav.patient.notes.extract import extract_note
from actnav.patient.notes.model import NoteFact

AS_OF = dt.date(2026, 11, 29)


def _patient(text: str, kind: str) -> list[NoteFact]:
    return [f for f in extract_note(text, as_of=AS_OF).patient_facts() if f.kind == kind]


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("64yo woman with multiple myeloma.", 64),
        ("Patient is a 45-year-old man with a history of anaplastic astrocytoma.", 45),
        ("48 M with a h/o HTN hyperlipidemia.", 48),
        ("A 32 yo woman who presents following a fall.", 32),
        ("70 y/o with COPD on 2.5-3.5L O2 at baseline.", 70),
        ("A 57-year old farmer was diagnosed with lymphoma.", 57),
        ("Fernandez is a 41 year man who is a professional athlete.", 41),
        ("She is aged 64 and lives alone.", 64),
        ("A 3-month-old boy with fever.", 0.25),
        ("A 5 months old male brought to the clinic.", 5 / 12),
        ("A 3-day-old Asian female infant with jaundice.", 3 / 365.25),
        ("A 15-week-old infant brought to the clinic.", 15 * 7 / 365.25),
    ],
)
def test_age_in_years(text: str, years: float) -> None:
    ages = _patient(text, "age")
    assert len(ages) == 1
    assert ages[0].number == pytest.approx(years, abs=1e-4)
    assert ages[0].unit == "a"


@pytest.mark.parametrize(
    "text",
    [
        "She was diagnosed at age 50 with breast cancer.",  # the age at an event
        "Temperature was 101 F on admission.",  # a temperature, not "101 F" age and sex
        "The lesion measured 5 m on the tape.",  # lower-case m is not male
    ],
)
def test_no_patient_age_when_the_number_is_something_else(text: str) -> None:
    assert _patient(text, "age") == []


def test_age_of_a_relative_is_not_the_patients() -> None:
    text = "A 45-year-old man. His 70-year-old father has diabetes."
    ages = _patient(text, "age")
    assert [a.number for a in ages] == [45]
    father = [f for f in extract_note(text, as_of=AS_OF).facts if f.kind == "age" and f.number == 70]
    assert father and father[0].family


@pytest.mark.parametrize(
    ("text", "sex"),
    [
        ("64yo woman with multiple myeloma.", "female"),
        ("This is a 57-year-old gentleman with CLL.", "male"),
        ("60 yo M with Hep C cirrhosis.", "male"),
        ("Pt is a 22yo F otherwise healthy.", "female"),
        ("A 17 year old boy complains of vomiting.", "male"),
        ("A 12 year old girl came to the clinic.", "female"),
        ("A 5 months old male brought to the clinic.", "male"),
        ("This is a 44 year old female with PMH of asthma.", "female"),
    ],
)
def test_sex_words(text: str, sex: str) -> None:
    found = _patient(text, "sex")
    assert [f.value for f in found] == [sex]


def test_pronouns_decide_only_alone_and_unambiguous() -> None:
    assert [f.value for f in _patient("70 y/o with COPD. She was admitted. Her sats were low.", "sex")] == [
        "female"
    ]
    # One pronoun is not enough, and mixed pronouns decide nothing.
    assert _patient("70 y/o with COPD. She was admitted.", "sex") == []
    assert _patient("70 y/o with COPD. She was admitted; his wife called. Her sats were low.", "sex") == []


def test_sex_of_a_relative_is_not_the_patients() -> None:
    assert _patient("Her sister, a 40-year-old woman, has lupus.", "sex") == []


def test_real_topics_age_and_sex() -> None:
    path = require_shared("data", "trialgpt-benchmarks", "trec_2021", "queries.jsonl")
    topics = {d["_id"]: d["text"] for d in map(json.loads, path.read_text().splitlines())}
    # Read from the topics: trec-202110 "Pt is a 22yo F", trec-202117 "64yo woman",
    # trec-20212 "48 M with", trec-202150 is trec_2021 "A 5 months old male".
    expected = {
        "trec-202110": (22, "female"),
        "trec-202117": (64, "female"),
        "trec-20212": (48, "male"),
        "trec-202150": (5 / 12, "male"),
    }
    for topic, (years, sex) in expected.items():
        facts = extract_note(topics[topic], as_of=AS_OF).patient_facts()
        assert [f.number for f in facts if f.kind == "age"] == [pytest.approx(years, abs=1e-4)], topic
        assert [f.value for f in facts if f.kind == "sex"] == [sex], topic
