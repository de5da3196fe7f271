"""The patient's plan (actnav.care.plan): topics, label periods, plain language, sources, rendering.

The example patients (examples/patients, synthetic) are evaluated as ``actnav evaluate`` does on
2026-11-29: label evaluation plus the bundled trial records (an absent database). Expected values
come from the sources, not from the code:

* topics and organisations: the patient-support specification (shared/reference/patient-support.md,
  sections 1 and 2);
* stay-near and no-driving periods: clinical-reference.md section 1.10 (CAR-T labels from June
  2025: 2 weeks and 2 weeks; before: 4 weeks and 8 weeks; lifileucel: no period in the label data,
  given in hospital per its boxed warning, section 1.7);
* lifileucel is eligible for the BRAF wild-type melanoma example (examples/patients/README.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import require_shared

from actnav.care import plan as plan_module
from actnav.care.plan import (
    ABBREVIATION,
    PatientPlan,
    PdfUnavailableError,
    build_plan,
    render_plan_html,
    render_plan_pdf,
)
from actnav.care.plan_data import (
    PLAN_CONTENT_FILE,
    PlanContent,
    load_plan_content,
    load_support_directory,
)
from actnav.eligibility.evaluate import evaluate_patient
from actnav.eligibility.report_model import Evaluation, TrialMatchResult, Verdict
from actnav.errors import DataFileError, InputError
from actnav.knowledge.loader import data_root, load_knowledge, load_workup, parse_file, read_yaml
from actnav.patient.fhir import read_bundle
from actnav.trials.search import LoadedIndex, add_trials, load_trial_index

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "patients"
AS_OF = date(2026, 11, 29)
BEFORE_JUNE_2025 = date(2024, 12, 1)
MELANOMA = "melanoma-braf-wt-42m"
MYELOMA = "myeloma-three-lines-63m"

# Words of capitals that are not abbreviations a patient must have explained.
ALLOWED_CAPITALS = {"US"}
ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.json"))
V600E = "melanoma-braf-v600e-no-braf-inhibitor-42m"

# The FDA-approved cell therapies for cancer (FDA list of approved cellular and gene therapy
# products; clinical reference section 1.0): brand and international non-proprietary name.
CAR_T_PRODUCTS = {
    "Kymriah": "tisagenlecleucel",
    "Yescarta": "axicabtagene ciloleucel",
    "Tecartus": "brexucabtagene autoleucel",
    "Breyanzi": "lisocabtagene maraleucel",
    "Abecma": "idecabtagene vicleucel",
    "Carvykti": "ciltacabtagene autoleucel",
    "Aucatzyl": "obecabtagene autoleucel",
}
PRODUCT_NAMES = [
    *CAR_T_PRODUCTS,
    *CAR_T_PRODUCTS.values(),
    "Amtagvi",
    "lifileucel",
    "Tecelra",
    "afamitresgene",
]
# British spellings the US-English plan must not use (the organisations and helplines are US).
BRITISH = re.compile(
    r"\b(tumours?|centres?|leukaemias?|diarrhoea|anaemia|counsell\w*|programmes?|recognis\w*|"
    r"specialis(?:e|es|ed|ing)|organisations?|pasteuris\w*|oedema|haem\w*|colour|behaviour|practise|"
    r"wholegrains|fridge|in hospital|into hospital)\b",
    re.IGNORECASE,
)


@cache
def _loaded() -> LoadedIndex:
    # An absent database: the bundled offline records, as `actnav evaluate` uses without a database.
    return load_trial_index("sqlite:////nonexistent/actnav-plan-tests/actnav.db")


@cache
def evaluation(name: str, as_of: date = AS_OF) -> Evaluation:
    patient = read_bundle(EXAMPLES / f"{name}.json", as_of=as_of)
    return add_trials(evaluate_patient(patient, as_of=as_of), patient, as_of=as_of, loaded=_loaded())


@cache
def plan_for(name: str, as_of: date = AS_OF) -> PatientPlan:
    return build_plan(evaluation(name, as_of))


@cache
def html_for(name: str, as_of: date = AS_OF) -> str:
    return render_plan_html(plan_for(name, as_of))


class _Text(HTMLParser):
    """The visible text of a page in document order (no <title>, <style>), block elements spaced."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title", "script"):
            self._hidden += 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "script"):
            self._hidden -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    text = re.sub(r"\s+", " ", "".join(parser.parts))
    return re.sub(r"https?://\S+", " ", text)  # addresses are not language


def all_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in all_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in all_strings(value)]
    return []


def require_weasyprint() -> None:
    """Skip when WeasyPrint's system libraries cannot be loaded (fail when CI=true)."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        message = f"WeasyPrint cannot be loaded here ({exc}): install its system libraries (Pango)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# --- what the melanoma plan says -------------------------------------------------------------------


def test_the_melanoma_plan_considers_lifileucel_as_may_be_suitable() -> None:
    plan = plan_for(MELANOMA)
    considered = plan.therapy.considered
    assert [(t.product_id, t.status, t.modality) for t in considered] == [
        ("lifileucel", "may_be_suitable", "TIL")
    ]
    assert considered[0].diseases == ["melanoma, a type of skin cancer"]
    assert "Amtagvi (lifileucel)" in considered[0].text
    assert plan.therapy.none_fits == []


def test_topic_1_what_the_therapy_is_collection_selection_expansion_infusion() -> None:
    # Spec 1.1: for TIL the cells come from a piece of the tumour and are selected, not changed.
    therapies = plan_for(MELANOMA).therapy.therapies
    assert [t.modality for t in therapies] == ["TIL"]
    steps = therapies[0].steps
    assert [s.id for s in steps] == ["collection", "selection", "expansion", "infusion"]
    assert "tumor" in steps[0].text
    assert "not changed" in steps[1].text


def test_topic_1_car_t_and_tcr_t_cells_are_collected_from_blood_and_changed() -> None:
    content = load_plan_content()
    for modality in ("CAR-T", "TCR-T"):
        steps = content.therapies[modality].steps
        assert [s.id for s in steps] == ["collection", "modification", "expansion", "infusion"]
        assert "blood" in steps[0].text


def test_topic_2_who_may_be_eligible_and_how_they_are_evaluated() -> None:
    section = plan_for(MELANOMA).evaluation
    text = " ".join([*section.paragraphs, *section.bullets])
    for cancer in ("leukemias", "lymphomas", "myeloma", "melanoma", "synovial sarcoma", "clinical trials"):
        assert cancer in text
    for step in (
        "medical history",
        "examination",
        "Blood tests",
        "CT",
        "MRI",
        "PET",
        "biopsy",
        "team meeting",
    ):
        assert step in text, step


def test_topic_2_the_work_up_ahead_is_the_evaluations_in_plain_words() -> None:
    # The BRAF-untested example needs BRAF testing (examples/patients/README.md).
    plan = plan_for("melanoma-braf-untested-42m")
    entries = {e.item_id: e for g in plan.workup.groups for e in g.entries}
    assert set(entries) == {w.id for w in evaluation("melanoma-braf-untested-42m").workup}
    assert "braf_testing" in entries
    assert entries["braf_testing"].text == "Testing the tumor for a change in the BRAF gene."
    assert entries["braf_testing"].why == ["This helps decide whether Amtagvi (lifileucel) fits you."]
    assert [t.status for t in plan.therapy.considered] == ["more_information_needed"]
    assert any("Amtagvi (lifileucel) fits you is not decided yet" in b for b in plan.undecided.bullets)


def test_topic_3_the_steps_ahead_for_til() -> None:
    journey = plan_for(MELANOMA).journey
    assert [j.modality for j in journey.journeys] == ["TIL"]
    steps = {s.id: s.text for s in journey.journeys[0].steps}
    assert list(steps) == [
        "checks",
        "collection",
        "waiting",
        "conditioning",
        "infusion",
        "monitoring",
        "follow-up",
    ]
    assert "bridging therapy" in steps["waiting"]
    assert "surgeon" in steps["collection"]  # TIL: an operation, not apheresis
    assert "hospital" in steps["monitoring"]


def test_topic_4_side_effects_and_when_to_call() -> None:
    plan = plan_for(MELANOMA)
    ids = [item.id for item in plan.side_effects.items]
    assert ids == ["til-reactions", "infections-low-counts", "organs", "tiredness-rash"]
    call = plan.when_to_call
    # The fever threshold of the CDC page the section cites: 100.4 °F (38 °C); US units first.
    assert "Fever of 100.4 °F (38.0 °C) or higher" in call.urgent_signs
    assert "cdc-infections" in call.source_ids
    assert "emergency number" in call.paragraphs[0]
    assert "do not send a message or ask for a consultation" in call.paragraphs[0]  # spec section 3
    assert any("Emergency number given by your treatment center" in f for f in call.fill_in)


def test_topic_4_car_t_side_effects_are_crs_and_neurotoxicity() -> None:
    # Spec 1.4: fever, chills, low blood pressure, breathing difficulty; confusion, trouble
    # speaking or writing, drowsiness, seizures.
    items = {i.id: i for i in plan_for("lbcl-primary-refractory-58m").side_effects.items}
    assert {"crs", "neurotoxicity", "infections-low-counts", "organs", "tiredness-rash"} <= set(items)
    crs = " ".join(items["crs"].signs).lower()
    for sign in ("fever", "chills", "low blood pressure", "breathing"):
        assert sign in crs
    neuro = " ".join(items["neurotoxicity"].signs).lower()
    for sign in ("confusion", "trouble speaking", "writing", "sleepiness", "seizure"):
        assert sign in neuro


def test_the_lifileucel_boxed_warning_in_plain_words() -> None:
    # Clinical reference 1.7: treatment-related mortality, prolonged severe cytopenia, severe
    # infection, cardiopulmonary and renal impairment.
    warnings = plan_for(MELANOMA).side_effects.label_warnings
    assert len(warnings) == 1 and warnings[0].product_id == "lifileucel"
    assert warnings[0].warnings == [
        "Some people have died from the treatment or its side effects.",
        "Low blood counts that can last a long time and lead to bleeding or infection.",
        "Serious infections.",
        "Heart and lung problems.",
        "Kidney problems.",
    ]
    plan = plan_for(MELANOMA)
    assert all(plan.source(s).title.startswith("Amtagvi label information") for s in warnings[0].source_ids)


# --- stay near the centre and do not drive (label data) ----------------------------------------------


def test_lifileucel_has_no_label_period_and_is_given_in_hospital() -> None:
    # Clinical reference 1.7: inpatient administration; no proximity or driving period encoded.
    stay = plan_for(MELANOMA).stay_near
    assert stay is not None
    (period,) = stay.periods
    assert (period.product_id, period.stay_near_weeks, period.no_driving_weeks) == ("lifileucel", None, None)
    text = " ".join(period.texts)
    assert "gives no fixed number of weeks" in text
    assert "given in the hospital" in text


@pytest.mark.parametrize(
    ("as_of", "weeks_near", "weeks_no_driving"),
    [
        (AS_OF, 2, 2),  # labels from the June 2025 change (clinical reference 1.10)
        (BEFORE_JUNE_2025, 4, 8),  # the earlier labels
    ],
)
def test_car_t_label_periods_are_those_of_the_label_in_force(
    as_of: date, weeks_near: int, weeks_no_driving: int
) -> None:
    # The myeloma example's record ends before 2023-06-01, so it can be evaluated on both dates;
    # idecabtagene vicleucel and ciltacabtagene autoleucel are eligible on both (README).
    stay = plan_for(MYELOMA, as_of).stay_near
    assert stay is not None
    periods = {p.product_id: p for p in stay.periods}
    assert set(periods) == {"idecabtagene_vicleucel", "ciltacabtagene_autoleucel"}
    for period in periods.values():
        assert (period.stay_near_weeks, period.no_driving_weeks) == (weeks_near, weeks_no_driving)
        assert f"for at least {weeks_near} weeks after the infusion" in period.texts[0]
        assert f"for at least {weeks_no_driving} weeks" in period.texts[1]
        label = [s for s in period.source_ids if s.startswith("label-")]
        assert label, "the label source is shown"
        plan = plan_for(MYELOMA, as_of)
        assert plan.source(label[0]).title.startswith(period.brand)
        assert plan.source(label[0]).url


@pytest.mark.shared
def test_the_reference_gives_the_same_car_t_periods() -> None:
    text = require_shared("reference", "clinical-reference.md").read_text(encoding="utf-8")
    near = re.search(r"stay-near-the-treatment-center period reduced\s+from (\d+) weeks to (\d+) weeks", text)
    drive = re.search(
        r"no-driving / hazardous-activity period reduced from (\d+) weeks to\s+(\d+) weeks", text
    )
    assert near and drive
    assert (int(near[1]), int(near[2])) == (4, 2)
    assert (int(drive[1]), int(drive[2])) == (8, 2)


# --- questions, trials, support, holistic care, self-advocacy ----------------------------------------


def test_topic_5_questions_to_ask() -> None:
    questions = " ".join(plan_for(MELANOMA).questions.bullets)
    for theme in (
        "type and stage of cancer",
        "Which treatment or trial",
        "benefits",
        "current health",
        "clinical trials",
        "How long",
        "cost",
        "insurance",
        "day and night",
        "second opinion",
    ):
        assert theme in questions, theme


def test_topic_6_clinical_trials_explained() -> None:
    section = plan_for(MELANOMA).trials
    text = " ".join(section.paragraphs)
    for words in ("research studies", "eligibility criteria", "ClinicalTrials.gov", "cancer doctor"):
        assert words in text
    # No bundled record is an open TIL study for melanoma (the bundled melanoma TIL study is
    # active, not recruiting), so none is offered.
    assert section.trials == []
    assert "found no open study" in section.found


def _trial(
    nct: str, status: str, relevance: float, verdict: Verdict = Verdict.NEEDS_INFORMATION
) -> TrialMatchResult:
    return TrialMatchResult(
        nct_id=nct,
        title="A study title with ABBREVIATIONS nobody explains",
        url=f"https://clinicaltrials.gov/study/{nct}",
        overall_status=status,
        is_act=True,
        modality="TIL",
        verdict=verdict,
        reasons=[],
        score=50.0,
        relevance=relevance,
        why_listed=[],
        counts={},
        criteria=[],
    )


def test_only_open_relevant_not_excluded_trials_are_offered() -> None:
    ev = evaluation(MELANOMA).model_copy(
        update={
            "trials": [
                _trial("NCT00000001", "RECRUITING", 0.8),
                _trial("NCT00000002", "COMPLETED", 0.8),
                _trial("NCT00000003", "RECRUITING", 0.2),
                _trial("NCT00000004", "RECRUITING", 0.8, Verdict.NOT_ELIGIBLE),
                _trial("NCT00000005", "NOT_YET_RECRUITING", 1.0),
            ]
        }
    )
    plan = build_plan(ev)
    assert [t.nct_id for t in plan.trials.trials] == ["NCT00000001", "NCT00000005"]
    assert (
        plan.trials.trials[0].text
        == "Study NCT00000001, testing a TIL therapy: looking for people to take part."
    )
    html = render_plan_html(plan)
    assert "ABBREVIATIONS" not in html  # registry titles are not shown
    assert "(ClinicalTrials.gov study number)" in visible_text(html)


def test_topics_7_and_8_emotional_financial_and_practical_support() -> None:
    support = plan_for(MELANOMA).support
    emotional = " ".join(support.emotional)
    financial = " ".join(support.financial)
    for words in ("anxious", "counselor", "Support groups", "Caregivers"):
        assert words in emotional
    for words in (
        "insurance",
        "financial counselor",
        "government programs",
        "grants",
        "travel",
        "place to stay",
    ):
        assert words in financial
    categories = [g.category for g in support.groups]
    assert categories == [
        "emotional_support",
        "financial_assistance",
        "caregiver_lodging",
        "patient_advocacy",
        "information",
        "clinical_trials",
    ]


def test_topic_9_holistic_care_from_nci_acs_or_wcrf() -> None:
    plan = plan_for(MELANOMA)
    blocks = {b.id: b for b in plan.holistic.blocks}
    assert list(blocks) == ["nutrition", "activity", "mind"]
    nutrition = " ".join([*blocks["nutrition"].paragraphs, *blocks["nutrition"].bullets])
    for words in (
        "balanced",
        "white blood cells are low",
        "Ask your team before",
        "supplements",
        "pasteurized",
    ):
        assert words in nutrition
    assert "No diet or food has been shown to cure cancer" in nutrition
    activity = " ".join([*blocks["activity"].paragraphs, *blocks["activity"].bullets])
    assert "walks" in activity and "yoga" in activity
    mind = " ".join(blocks["mind"].paragraphs)
    assert "Mindfulness" in mind and "counselor" in mind
    # Spec 1.9: guidance from the National Cancer Institute, the American Cancer Society or the
    # World Cancer Research Fund.
    reputable = (
        "National Cancer Institute",
        "American Cancer Society",
        "World Cancer Research Fund International",
    )
    for block in blocks.values():
        publishers = [plan.source(s).publisher for s in block.source_ids]
        assert any(p in reputable for p in publishers), (block.id, publishers)


def test_topic_10_self_advocacy() -> None:
    text = " ".join(plan_for(MELANOMA).self_advocacy.bullets)
    for words in ("basics", "questions", "caregiver", "second opinion", "copies of your records"):
        assert words in text


# --- sources, organisations, disclaimer ------------------------------------------------------------


@pytest.mark.parametrize("name", [MELANOMA, "hodgkin-lymphoma-30m", "lbcl-primary-refractory-58m"])
def test_every_section_cites_a_source_with_a_url(name: str) -> None:
    plan = plan_for(name)
    for section in plan.sections():
        urls = [plan.source(s).url for s in section.source_ids]
        assert any(u and u.startswith("https://") for u in urls), section.id
    for block in plan.holistic.blocks:
        assert any((plan.source(s).url or "").startswith("https://") for s in block.source_ids), block.id
    for item in plan.side_effects.items:
        assert any((plan.source(s).url or "").startswith("https://") for s in item.source_ids), item.id
    cited = {s for section in plan.sections() for s in section.source_ids}
    assert cited == {s.id for s in plan.sources}, "the sources list is exactly what the sections cite"
    html = html_for(name)
    for n in range(1, len(plan.sources) + 1):
        assert f'id="source-{n}"' in html


@pytest.mark.shared
def test_every_organisation_of_the_specification_appears() -> None:
    spec = require_shared("reference", "patient-support.md").read_text(encoding="utf-8")
    section = spec.split("## 2.", 1)[1].split("\n## ", 1)[0]
    rows = [
        line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and "---" not in line
    ]
    rows = [(name.strip(), address.strip()) for name, address in rows if name.strip() != "Organisation"]
    assert len(rows) == 8
    text = visible_text(html_for(MELANOMA))
    addresses = {o.address for o in load_support_directory().organisations}
    for name, address in rows:
        name = re.sub(r"\s*\((UK|US)\)$", "", name)
        assert name in text, name
        host = address.removeprefix("www.")
        assert any(
            a.startswith((f"https://{address}", f"https://www.{host}", f"https://{host}")) for a in addresses
        ), address


def test_every_directory_entry_has_its_source_and_last_checked_date() -> None:
    directory = load_support_directory()
    for org in directory.organisations:
        assert org.source.url and org.source.url.startswith("https://"), org.id
        assert org.source.seen
        assert org.last_checked <= AS_OF
        assert org.address.startswith("https://")
        assert org.country
        assert org.audience


def test_the_disclaimer_says_the_plan_does_not_replace_the_care_team() -> None:
    plan = plan_for(MELANOMA)
    assert "does not replace your care team" in plan.disclaimer
    assert visible_text(html_for(MELANOMA)).count("does not replace your care team") == 2  # top and bottom


# --- plain language ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
def test_every_abbreviation_is_explained_at_its_first_use(name: str) -> None:
    plan = plan_for(name)
    text = visible_text(html_for(name))
    glossary = {g.term: g for g in plan.glossary}
    words_at = text.index("Words used in this plan")
    seen: set[str] = set()
    for match in ABBREVIATION.finditer(text):
        token = match.group(0)
        if token in ALLOWED_CAPITALS:
            continue
        term = token if token in glossary else re.sub(r"\d+$", "", token)  # NCT01234567 -> NCT
        assert term in glossary, f"{token!r} is not in the word list ({name})"
        if term in seen:
            continue
        seen.add(term)
        after = text[match.end() : match.end() + len(glossary[term].short) + 3]
        assert after == f" ({glossary[term].short})", f"first use of {token!r} is not explained: {after!r}"
    assert seen == set(glossary), "the word list holds only the words the plan uses"
    for term in glossary:
        assert f" {term} " in text[words_at:]


def test_the_melanoma_plan_is_plain_language() -> None:
    """A crude readability guard on the melanoma plan's own sentences: short sentences, short words.

    Flesch-Kincaid grade with a vowel-group syllable count; the target is about grade 8.
    """
    plan = plan_for(MELANOMA)
    exclude = {"sources", "glossary", "generated_by", "content_version", "title"}
    strings = [s for s in all_strings(plan.model_dump(mode="json", exclude=exclude)) if len(s.split()) > 3]
    sentences = [s for text in strings for s in re.split(r"(?<=[.!?:;])\s+", text) if len(s.split()) > 2]
    words = [w for s in sentences for w in re.findall(r"[A-Za-z][A-Za-z'-]*", s)]

    def syllables(word: str) -> int:
        groups = len(re.findall(r"[aeiouy]+", word.lower()))
        return max(1, groups - (1 if word.lower().endswith("e") and groups > 1 else 0))

    grade = 0.39 * len(words) / len(sentences) + 11.8 * sum(map(syllables, words)) / len(words) - 15.59
    assert grade <= 9, f"reading grade {grade:.1f}"
    longest = max(sentences, key=lambda s: len(s.split()))
    assert len(longest.split()) <= 32, longest


def test_no_evaluation_wording_reaches_the_plan() -> None:
    # The evaluation's clinician texts (criteria, indication names, diagnoses) are not shown.
    ev = evaluation(MELANOMA)
    text = visible_text(html_for(MELANOMA))
    for product in ev.products:
        for ind in product.indications:
            assert ind.name not in text
    for diagnosis in ev.patient.diagnoses:
        assert diagnosis not in text
    assert ev.patient.id not in html_for(MELANOMA)


# --- none fits ---------------------------------------------------------------------------------------


def test_a_patient_with_no_eligible_product_gets_the_none_fits_text() -> None:
    # Hodgkin lymphoma: no approved product (examples/patients/README.md).
    plan = plan_for("hodgkin-lymphoma-30m")
    assert plan.therapy.considered == []
    # No approved product is for Hodgkin lymphoma: nothing would change that, so no product is named.
    assert plan.therapy.none_fits == list(load_plan_content().considered.none)
    assert plan.therapy.changes == []
    assert plan.therapy.none_fits[0].startswith("Today, no approved cell therapy fits your records.")
    assert "Your next step is to talk with your care team" in plan.therapy.none_fits[1]
    assert "Ask your team about trials" in plan.therapy.none_fits[1]
    # Cell therapy in general, not each kind of therapy with its products.
    assert plan.therapy.therapies == []
    assert plan.therapy.general is not None
    assert plan.stay_near is None
    assert plan.side_effects.label_warnings == []
    text = visible_text(html_for("hodgkin-lymphoma-30m"))
    assert "no approved cell therapy fits your records" in text
    assert "Cell therapy: how it works" in text
    assert "Staying near the center" not in text
    for name in PRODUCT_NAMES:
        assert name not in text, name


def test_a_deceased_patient_gets_the_none_fits_text() -> None:
    ev = evaluation(MELANOMA)
    dead = ev.model_copy(
        update={
            "products": [
                p.model_copy(
                    update={
                        "indications": [
                            i.model_copy(update={"verdict": Verdict.NOT_ELIGIBLE}) for i in p.indications
                        ]
                    }
                )
                for p in ev.products
            ]
        }
    )
    assert build_plan(dead).therapy.considered == []


# --- local services ------------------------------------------------------------------------------------


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


LOCAL = {
    "schema_version": 1,
    "version": "2026-11-01",
    "organisations": [
        {
            "id": "centre-lodging",
            "name": "Riverside Cell Therapy Centre guest house <b>",
            "address": "Building C, ground floor; ask the social work office",
            "phone": "555-0100",
            "services": ["Rooms for patients and one caregiver during the first weeks"],
            "audience": "Patients of the centre and their caregivers",
            "country": "United States",
            "categories": ["caregiver_lodging"],
            "last_checked": "2026-11-01",
            "source": {"title": "Centre social work office", "seen": "Leaflet of November 2026"},
        }
    ],
}


def test_a_programme_adds_its_local_services(tmp_path: Path) -> None:
    path = _write(tmp_path / "local.yaml", LOCAL)
    plan = build_plan(evaluation(MELANOMA), directory_extra=path)
    group = next(g for g in plan.support.groups if g.category == "caregiver_lodging")
    first = group.organisations[0]
    assert (first.id, first.local, first.phone) == ("centre-lodging", True, "555-0100")
    html = render_plan_html(plan)
    assert "guest house &lt;b&gt;" in html  # escaped
    assert "Service of your treatment program" in visible_text(html)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"categories": ["parking"]}, "unknown category parking"),
        ({"id": "cancercare"}, "already in the packaged directory"),
        ({"colour": "blue"}, "Extra inputs are not permitted"),
        ({"last_checked": "not a date"}, "date"),
    ],
)
def test_an_invalid_local_directory_is_an_input_error(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    data = {**LOCAL, "organisations": [{**LOCAL["organisations"][0], **change}]}
    path = _write(tmp_path / "local.yaml", data)
    with pytest.raises(InputError, match=message):
        build_plan(evaluation(MELANOMA), directory_extra=path)


def test_a_missing_local_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        build_plan(evaluation(MELANOMA), directory_extra=tmp_path / "absent.yaml")


# --- the data files ------------------------------------------------------------------------------------


def test_the_plan_explains_every_work_up_step_and_item() -> None:
    content = load_plan_content()
    workup = load_workup()
    assert set(content.workup.steps) == set(workup.steps)
    assert set(content.workup.items) == {i.id for i in workup.items}


def test_every_indication_disease_has_a_plain_name() -> None:
    diseases = {i.disease for p in load_knowledge().products for i in p.indications}
    assert diseases <= set(load_plan_content().diseases)


def test_every_content_source_records_what_was_seen() -> None:
    for key, source in load_plan_content().sources.items():
        assert source.url.startswith(("https://", "http://")), key
        assert source.seen.strip(), key
        assert source.checked <= AS_OF


def _content_data() -> dict[str, Any]:
    data: dict[str, Any] = read_yaml(data_root() / "care" / "plan-content.yaml")
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["questions"].update(sources=["no-such-page"]), "unknown source no-such-page"),
        (lambda d: d.update(disclaimer="Hello {name}"), "placeholder"),
        (lambda d: d["glossary"].append(dict(d["glossary"][0])), "listed twice"),
        (lambda d: d["therapies"].pop("TIL"), "no text for TIL"),
    ],
)
def test_the_content_file_is_checked(edit: Callable[[dict[str, Any]], object], message: str) -> None:
    data = _content_data()
    edit(data)
    with pytest.raises(DataFileError, match=message):
        parse_file(PlanContent, data, PLAN_CONTENT_FILE)


# --- rendering ----------------------------------------------------------------------------------------


def test_the_page_is_standalone_and_printable() -> None:
    html = html_for(MELANOMA)
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html
    assert "<link" not in html
    assert not re.search(r"\ssrc=", html)
    assert "@media print" in html and "@page" in html
    assert 'href="javascript' not in html


def test_the_body_partial_renders_inside_another_page() -> None:
    from actnav.care.plan import plan_context
    from actnav.care.report import _environment

    plan = plan_for(MELANOMA)
    context = {**plan_context(plan), "heading_level": 3}
    body = _environment().get_template("_plan_body.html.j2").render(context)
    assert body.lstrip().startswith('<div class="plan-body">')
    assert "<h3>" in body and "<h2>" not in body
    assert "<html" not in body


def test_the_plan_is_json() -> None:
    plan = plan_for(MELANOMA)
    assert PatientPlan.model_validate_json(plan.model_dump_json()) == plan


def test_the_pdf_renders() -> None:
    require_weasyprint()
    pdf = render_plan_pdf(plan_for(MELANOMA))
    assert pdf.startswith(b"%PDF")


def test_a_missing_weasyprint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = plan_module.importlib.import_module

    def fake(name: str, package: str | None = None) -> Any:
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real(name, package)

    monkeypatch.setattr(plan_module.importlib, "import_module", fake)
    with pytest.raises(PdfUnavailableError, match="cannot make a PDF") as caught:
        render_plan_pdf(plan_for(MELANOMA))
    assert caught.value.hint and "Pango" in caught.value.hint


# --- the QA reading of issue 5 (plain words, no unexplained jargon) --------------------------------


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_label_and_actnav_are_explained_at_their_first_use(name: str) -> None:
    text = visible_text(html_for(name))
    explained = "a computer program (actnav)"
    first = re.search(r"actnav", text, re.IGNORECASE)
    assert first is not None and text.find(explained) == first.start() - len("a computer program ("), (
        "actnav is named before the plan says what it is"
    )
    label_explained = (
        "comes with a document called the product's label. The label says who the product is for."
    )
    first_label = re.search(r"\blabels?\b", text, re.IGNORECASE)
    assert first_label is not None
    assert text.find(label_explained) == first_label.start() - len(
        "comes with a document called the product's "
    ), f"'label' is used before it is explained: {text[first_label.start() - 80 : first_label.end()]!r}"
    assert "official approval of a medicine by the FDA" in text


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_the_words_are_plain_and_us_english(name: str) -> None:
    text = visible_text(html_for(name))
    for jargon in (
        "human leukocyte antigen",
        "melanoma-associated antigen",
        "T-cell receptor T-cell",
        "openFDA",
        "immune effector cell-associated",
    ):
        assert jargon not in text, jargon
    for match in re.finditer(r"lymphocytes", text):
        # Only inside the explanation of TIL, which says what they are (T cells from a tumor).
        assert (
            "T cells taken from inside a tumor; the medical name is tumor-infiltrating"
            in text[match.start() - 80 : match.end()]
            or "Doctors call these white blood cells lymphocytes"
            in text[match.start() - 60 : match.end() + 1]
        ), text[match.start() - 80 : match.end()]
    found = sorted({m.group(0) for m in BRITISH.finditer(text)})
    assert found == [], f"British spellings: {found}"
    # Temperatures in °F first, °C in brackets.
    assert not re.search(r"\d °C \(", text)
    assert re.findall(r"\d+(?:\.\d)? °F \(\d+(?:\.\d)? °C\)", text)


def test_the_v600e_plan_names_no_product_for_another_cancer() -> None:
    # examples/patients/README.md: BRAF V600E melanoma without a BRAF inhibitor is not eligible for
    # lifileucel (label section 1: "if BRAF V600 mutation-positive, a BRAF inhibitor").
    plan = plan_for(V600E)
    assert plan.therapy.considered == []
    text = visible_text(html_for(V600E))
    for name in ["Tecelra", "afamitresgene", "MAGE-A4", *CAR_T_PRODUCTS, *CAR_T_PRODUCTS.values()]:
        assert name.lower() not in text.lower(), name
    assert "CAR-T cell therapy: how it works" not in text
    assert "TCR-T" not in text
    # No side effects of a product that is not considered.
    assert "In the main study of lifileucel" not in text
    assert [t.modality for t in plan.therapy.therapies] == []
    assert plan.therapy.general is not None
    assert "Cell therapy: how it works" in text


def test_the_v600e_plan_says_what_would_have_to_change_and_the_next_step() -> None:
    plan = plan_for(V600E)
    changes = " ".join(plan.therapy.changes)
    assert changes.startswith("Amtagvi (lifileucel) is approved for melanoma")
    assert "already had a BRAF inhibitor" in changes
    assert "Your records show no BRAF inhibitor" in changes
    none_fits = plan.therapy.none_fits
    assert none_fits[0].startswith("Today, no approved cell therapy fits your records.")
    assert none_fits[1 : 1 + len(plan.therapy.changes)] == plan.therapy.changes
    assert "Your next step is to talk with your care team" in none_fits[-1]
    assert "trials" in none_fits[-1]
    # The label is cited for what would have to change.
    titles = [plan.source(s).title for s in plan.therapy.source_ids]
    assert any(t.startswith("Amtagvi label information") for t in titles), titles


def test_a_product_whose_label_forbids_the_tissue_type_is_explained() -> None:
    # Synovial sarcoma with HLA-A*02:05: afamitresgene autoleucel is contraindicated (label section 4;
    # examples/patients/README.md).
    plan = plan_for("synovial-sarcoma-a0205-44m")
    assert plan.therapy.considered == []
    changes = " ".join(plan.therapy.changes)
    assert changes.startswith("Tecelra (afamitresgene autoleucel) is approved for synovial sarcoma")
    assert "must not be given" in changes
    assert "Amtagvi" not in visible_text(html_for("synovial-sarcoma-a0205-44m"))


def _paragraph_texts(plan: PatientPlan) -> list[str]:
    """The plan's running-text strings (not headings, list items of signs or names)."""
    th = plan.therapy
    texts = [plan.intro, plan.about, plan.disclaimer, *(c.text for c in th.considered), *th.none_fits]
    texts += [*(th.general.paragraphs if th.general else [])]
    for t in th.therapies:
        texts += [t.summary, *(s.text for s in t.steps)]
    texts += [plan.workup.intro, *([plan.workup.none] if plan.workup.none else [])]
    for g in plan.workup.groups:
        for e in g.entries:
            texts += [e.text, *e.why]
    texts += plan.undecided.bullets
    texts += [plan.journey.intro, *(s.text for j in plan.journey.journeys for s in j.steps)]
    texts += [plan.side_effects.intro, *(i.what for i in plan.side_effects.items)]
    texts += [w.intro for w in plan.side_effects.label_warnings]
    texts += plan.when_to_call.paragraphs
    if plan.stay_near:
        texts += [plan.stay_near.why, plan.stay_near.plan_ahead]
        texts += [line for p in plan.stay_near.periods for line in p.texts]
    texts += [*plan.questions.paragraphs, *plan.trials.paragraphs, plan.trials.found]
    texts += [t.text for t in plan.trials.trials]
    texts += [*plan.support.emotional, *plan.support.financial, plan.support.directory_intro]
    texts += [plan.holistic.intro, *(p for b in plan.holistic.blocks for p in b.paragraphs)]
    texts += plan.self_advocacy.paragraphs
    return texts


@pytest.mark.parametrize("name", [MELANOMA, V600E, "hodgkin-lymphoma-30m"])
def test_every_sentence_is_whole(name: str) -> None:
    texts = _paragraph_texts(plan_for(name))
    assert texts
    for text in texts:
        assert re.search(r"[.!?:]$", text.strip()), f"no closing punctuation: {text!r}"
        for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
            assert sentence[:1].isupper() or sentence[:1].isdigit() or sentence[:1] == '"', sentence
            assert len(sentence.split()) >= 3, sentence
    # The QA fragment: the reason under a check names its subject.
    why = [w for g in plan_for(name).workup.groups for e in g.entries for w in e.why]
    for line in why:
        assert line.startswith("This "), line
    if name == MELANOMA:
        assert "This is a general health check that the main study of Amtagvi (lifileucel) used." in why
