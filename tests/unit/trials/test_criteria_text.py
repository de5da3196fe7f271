"""Splitting eligibility text into criteria, on real ClinicalTrials.gov text (public domain)."""

from __future__ import annotations

from actnav.trials.criteria_text import split_criteria, unescape

# NCT00924326 (API v2 markdown: "* INCLUSION CRITERIA:", numbered items, nested "Hematology:" lists)
NCT00924326 = """* INCLUSION CRITERIA:

  1. Greater than or equal to 18 years of age and less than or equal to age 70.
  2. Clinical performance status of Eastern Cooperative Oncology Group (ECOG) 0 or 1.
  3. Hematology:

      * Absolute neutrophil count greater than or equal to 1000/mm\\^3 without the support of filgrastim.
      * Platelet count greater than or equal to 50,000/mm\\^3.

EXCLUSION CRITERIA:

1. Patients that have active hemolytic anemia.
2. Patients with active brain metastases, or with a history of any central nervous system (CNS) metastases.

   Note: patients who are asymptomatic will be considered eligible.
3. History of allogeneic stem cell transplantation
"""

# NCT01087294 (donor subsection, escaped comparator)
NCT01087294 = """Inclusion Criteria: Donor

1. Donors must be HIV negative, hepatitis B surface antigen negative, and hepatitis C antibody negative.

EXCLUSION CRITERIA:

Exclusion Criteria: Recipients

1. Serum total bilirubin \\> 2.5 mg/dl
"""

# HINT-style legacy text: hanging indents, "-" bullets
LEGACY = """
        Inclusion Criteria:

          -  Age >= 18 years.

          -  Histological or cytological diagnosis of metastatic Stage IV or locally advanced,
             unresectable confirmed Stage IIIB nonsquamous Non-Small Cell Lung Cancer (NSCLC).

        Exclusion Criteria:

          -  Hearing impairment
"""


def test_unescape_markdown() -> None:
    assert (
        unescape("ANC \\>= 1000/mm\\^3, bilirubin =\\< 1.5, \\[ECHO\\]")
        == "ANC >= 1000/mm^3, bilirubin =< 1.5, [ECHO]"
    )


def test_v2_sections_nesting_and_parent() -> None:
    cts = split_criteria(NCT00924326)
    texts = [c.text for c in cts]
    assert texts[0].startswith("Greater than or equal to 18 years")
    anc = next(c for c in cts if c.text.startswith("Absolute neutrophil"))
    assert anc.section == "inclusion" and anc.parent == "Hematology:" and anc.depth == 1
    assert "1000/mm^3" in anc.text  # unescaped
    assert not any(c.text == "Hematology:" for c in cts)  # a header item is context, not a criterion
    brain = next(c for c in cts if "brain metastases" in c.text)
    assert brain.section == "exclusion" and "Note: patients who are asymptomatic" in brain.text
    assert cts[-1].text == "History of allogeneic stem cell transplantation"
    # spans point into the original (escaped) text
    start, end = anc.span
    assert NCT00924326[start:end].startswith("Absolute neutrophil") and "\\^3" in NCT00924326[start:end]


def test_donor_heading_and_escapes() -> None:
    cts = split_criteria(NCT01087294)
    assert cts[0].population == "donor" and cts[0].section == "inclusion"
    assert cts[1].population == "patient" and cts[1].section == "exclusion"
    assert cts[1].text == "Serum total bilirubin > 2.5 mg/dl"


def test_legacy_hanging_indent() -> None:
    cts = split_criteria(LEGACY)
    assert [c.section for c in cts] == ["inclusion", "inclusion", "exclusion"]
    assert cts[1].text.endswith("Non-Small Cell Lung Cancer (NSCLC).")
    assert "locally advanced, unresectable" in cts[1].text


def test_one_paragraph_legacy_text() -> None:
    cts = split_criteria(
        "Inclusion Criteria: Age 18 years or older. ECOG 0-1. Exclusion Criteria: Pregnant women."
    )
    assert [(c.section, c.text) for c in cts] == [
        ("inclusion", "Age 18 years or older."),
        ("inclusion", "ECOG 0-1."),
        ("exclusion", "Pregnant women."),
    ]


def test_key_and_caps_headings() -> None:
    cts = split_criteria(
        "Key Inclusion Criteria:\n\n* LVEF ≥ 50%\n\nKEY EXCLUSION CRITERIA\n\n* Prior CAR-T therapy\n"
    )
    assert [(c.section, c.text) for c in cts] == [
        ("inclusion", "LVEF ≥ 50%"),
        ("exclusion", "Prior CAR-T therapy"),
    ]


# NCT00003005 (legacy PDQ text, ClinicalTrials.gov): headings and fields run on in one paragraph
PDQ_PARAGRAPH = """
        DISEASE CHARACTERISTICS: TdT positive acute lymphocytic leukemia or blastic chronic
        myelogenous leukemia Failed at least one standard treatment

        PATIENT CHARACTERISTICS: Age: 18 and over Performance status: Karnofsky greater than 70%
        Life expectancy: At least 3 months Hematopoietic: Not specified Hepatic: Bilirubin no
        greater than 2.0 mg/dL Transaminases no greater than 2.5 times normal Renal: Creatinine no
        greater than 1.5 mg/dL Creatinine clearance greater than 60 mL/min Cardiovascular: Ejection
        fraction greater than 40% Other: Not pregnant or nursing No serious concurrent illness

        PRIOR CONCURRENT THERAPY: Biologic therapy: Not specified Chemotherapy: At least 3 weeks
        since chemotherapy No concurrent chemotherapy Endocrine therapy: Not specified
"""

# NCT00379080 (legacy text, ClinicalTrials.gov): a list headed only "Criteria:"
CRITERIA_ONLY = """
        Criteria:

          -  Histologically confirmed glioblastoma:

               -  Progressive or recurrent disease after prior radiotherapy (with or without
                  chemotherapy)

          -  Karnofsky performance status 60-100%

          -  Absolute neutrophil count >= 1,500/mm^3
"""


def test_pdq_paragraph_split_by_field() -> None:
    cts = split_criteria(PDQ_PARAGRAPH)
    assert all(c.section == "inclusion" for c in cts)
    texts = [c.text for c in cts]
    assert texts[0].startswith("TdT positive acute lymphocytic leukemia")
    assert "Age: 18 and over" in texts
    assert "Performance status: Karnofsky greater than 70%" in texts
    assert "Life expectancy: At least 3 months" in texts
    assert "Renal: Creatinine no greater than 1.5 mg/dL Creatinine clearance greater than 60 mL/min" in texts
    assert "Chemotherapy: At least 3 weeks since chemotherapy No concurrent chemotherapy" in texts
    age = next(c for c in cts if c.text == "Age: 18 and over")
    assert age.heading == "PATIENT CHARACTERISTICS"
    assert PDQ_PARAGRAPH[age.span[0] : age.span[1]] == "Age: 18 and over"


def test_criteria_heading_alone_is_inclusion() -> None:
    cts = split_criteria(CRITERIA_ONLY)
    assert [c.section for c in cts] == ["inclusion"] * 3
    assert cts[0].parent == "Histologically confirmed glioblastoma:"
    assert cts[-1].text == "Absolute neutrophil count >= 1,500/mm^3"
