"""The HTML, text and JSON renderings of an evaluation (actnav.care.report).

The evaluation is built by hand here, so these tests do not depend on the FHIR importer, the
engine or the packaged data: they check what the care team sees.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from actnav.care.report import (
    FITNESS_BANNER,
    render_html,
    render_json,
    render_summary,
    render_text,
)
from actnav.eligibility.engine import CriterionResult, Evidence, Result, SourceInfo
from actnav.eligibility.report_model import (
    Evaluation,
    FitnessResult,
    IndicationResult,
    PatientSummary,
    ProductNote,
    ProductResult,
    Verdict,
    WorkupItemResult,
)

LABEL = SourceInfo(
    citation="KYMRIAH (tisagenlecleucel) prescribing information, rev. 2024",
    section="1 INDICATIONS AND USAGE",
    url="https://example.org/kymriah-pi.pdf",
    verification="V",
    confirmed=True,
)
RECALLED = SourceInfo(citation="Recollection of the trial protocol", verification="R", confirmed=False)
TRIAL = SourceInfo(citation="ELIANA protocol", section="Inclusion", verification="S", confirmed=True)


def _leaf(cid: str, text: str, result: Result, **kw: object) -> CriterionResult:
    return CriterionResult.model_validate({"id": cid, "text": text, "result": result, **kw})


def make_evaluation(*, deceased: bool = False) -> Evaluation:
    """A small evaluation: one eligible, one not eligible, one needs-information indication."""
    age = _leaf(
        "tisa.ball.age",
        "Age 25 years or younger",
        Result.MET,
        evidence=[Evidence(resource="Patient/p1", value=24, unit="a", date="2026-06-01")],
        source=LABEL,
    )
    relapse = _leaf(
        "tisa.ball.relapse",
        "Second or later relapse <script>alert(1)</script>",
        Result.MET,
        evidence=[Evidence(resource=None, value="relapse", note="2 relapses counted")],
        source=LABEL,
    )
    ecog = _leaf(
        "fit.eliana.ecog",
        "ECOG 0 or 1",
        Result.UNKNOWN,
        needs="unknown: needs a current ECOG performance status",
        workup=["performance_status"],
        source=RECALLED,
        unconfirmed=True,
    )
    cns = _leaf(
        "axi.lbcl.lines",
        "Two or more prior lines",
        Result.NOT_MET,
        evidence=[Evidence(resource="MedicationStatement/m1", value=1.0, note="1 line counted")],
        source=LABEL,
    )
    hla = _leaf(
        "afami.hla",
        "HLA-A*02:01P, A*02:02P, A*02:03P or A*02:06P",
        Result.UNKNOWN,
        needs="unknown: needs high-resolution HLA-A typing",
        workup=["hla_typing"],
        source=RECALLED,
        unconfirmed=True,
    )
    group = _leaf(
        "tisa.ball",
        "B-cell ALL in second or later relapse, up to age 25",
        Result.MET,
        source=LABEL,
        children=[age, relapse],
    )
    ind_ok = IndicationResult(
        id="tisa-ball",
        name="B-cell precursor ALL, refractory or second or later relapse, up to 25 years",
        disease="b_all",
        label_revision="2024-04",
        effective_from=date(2017, 8, 30),
        approval="regular",
        verdict=Verdict.ELIGIBLE,
        reasons=[],
        criteria=[group],
        unconfirmed=False,
        source=LABEL,
    )
    ind_no = IndicationResult(
        id="axi-lbcl",
        name="Large B-cell lymphoma after two or more lines",
        disease="lbcl",
        label_revision="2022-04",
        effective_from=date(2017, 10, 18),
        approval="regular",
        verdict=Verdict.NOT_ELIGIBLE,
        reasons=["not met: Two or more prior lines"],
        criteria=[cns],
        unconfirmed=False,
        source=LABEL,
    )
    ind_unknown = IndicationResult(
        id="afami-ss",
        name="Synovial sarcoma, MAGE-A4 positive",
        disease="synovial_sarcoma",
        label_revision="2024-08",
        effective_from=date(2024, 8, 1),
        approval="accelerated",
        verdict=Verdict.NEEDS_INFORMATION,
        reasons=["unknown: needs high-resolution HLA-A typing"],
        criteria=[hla],
        unconfirmed=True,
        source=LABEL,
    )
    products = [
        ProductResult(
            product="tisagenlecleucel",
            id="tisagenlecleucel",
            brand="Kymriah",
            modality="CAR-T",
            target="CD19",
            approved_on_as_of=True,
            indications=[ind_ok],
            notes=[ProductNote(kind="boxed_warning", text="CRS and neurological toxicities.", source=LABEL)],
        ),
        ProductResult(
            product="axicabtagene ciloleucel",
            id="axicabtagene-ciloleucel",
            brand="Yescarta",
            modality="CAR-T",
            target="CD19",
            approved_on_as_of=True,
            indications=[ind_no],
        ),
        ProductResult(
            product="afamitresgene autoleucel",
            id="afamitresgene-autoleucel",
            brand="Tecelra",
            modality="TCR-T",
            target="MAGE-A4",
            approved_on_as_of=True,
            indications=[ind_unknown],
        ),
    ]
    fitness = [
        FitnessResult(
            id="eliana",
            trial="ELIANA",
            nct_id="NCT02435849",
            products=["tisagenlecleucel"],
            summary=Verdict.NEEDS_INFORMATION,
            criteria=[ecog],
            source=TRIAL,
        )
    ]
    # Deliberately out of step order: the report must put history before labs before HLA.
    workup = [
        WorkupItemResult(
            id="hla_typing",
            step="hla_typing",
            step_name="HLA typing",
            text="High-resolution HLA-A typing.",
            settles=["afami-ss/afami.hla"],
        ),
        WorkupItemResult(
            id="cbc",
            step="laboratory_tests",
            step_name="Laboratory tests",
            text="Complete blood count with differential.",
            settles=[],
        ),
        WorkupItemResult(
            id="performance_status",
            step="physical_examination",
            step_name="Physical examination",
            text="Record a current ECOG performance status.",
            settles=["eliana/fit.eliana.ecog"],
        ),
        WorkupItemResult(
            id="treatment_history",
            step="medical_history",
            step_name="Medical history",
            text="Complete the treatment history.",
            settles=["axi.lbcl.lines"],
        ),
    ]
    return Evaluation(
        as_of=date(2026, 11, 29),
        generated_by="actnav 0.1.0",
        patient=PatientSummary(
            id="p1",
            age_years=24,
            sex="female",
            deceased=deceased,
            deceased_date=date(2026, 10, 1) if deceased else None,
            diagnoses=["B-cell acute lymphoblastic leukaemia, in relapse"],
            prior_lines=3,
            skipped_resources={"Claim": 4},
        ),
        summary=["tisagenlecleucel (Kymriah): eligible"],
        products=products,
        fitness=fitness,
        workup=workup,
        knowledge_version="2026-11-29",
        disclaimer="Decision support only: a qualified clinician must confirm every verdict.",
    )


@pytest.fixture
def evaluation() -> Evaluation:
    return make_evaluation()


def test_html_shows_a_badge_for_every_verdict(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert 'class="badge v-eligible"' in page
    assert 'class="badge v-not_eligible"' in page
    assert 'class="badge v-needs_information"' in page
    assert ">not eligible<" in page and ">needs information<" in page


def test_html_puts_verdicts_before_the_criteria(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert page.index('id="verdicts"') < page.index('id="products"') < page.index('id="fitness"')
    assert page.index('id="fitness"') < page.index('id="workup"') < page.index('id="unknowns"')


def test_html_highlights_what_an_unknown_criterion_needs(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert '<div class="needs">unknown: needs high-resolution HLA-A typing' in page


def test_html_marks_criteria_resting_on_recollected_sources_as_unconfirmed(
    evaluation: Evaluation,
) -> None:
    page = render_html(evaluation)
    assert "unconfirmed (R/U)" in page
    assert "[R]" in page


def test_html_links_the_source_citation(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert '<a href="https://example.org/kymriah-pi.pdf">KYMRIAH' in page
    assert "1 INDICATIONS AND USAGE" in page


def test_html_shows_the_fitness_banner(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert FITNESS_BANNER in page
    assert "Trial-derived context — not label requirements" in page


def test_html_lists_the_work_up_steps_in_evaluation_order(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    steps = re.findall(r'data-step="([a-z_]+)"', page)
    assert steps == ["medical_history", "physical_examination", "laboratory_tests", "hla_typing"]


def test_html_work_up_item_names_the_criteria_it_settles(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    # Work-up items name criteria as "<indication or trial id>/<criterion id>" (or a bare id).
    hla_item = page[page.index("High-resolution HLA-A typing.") :][:700]
    assert "HLA-A*02:01P" in hla_item and "Tecelra" in hla_item
    ecog_item = page[page.index("Record a current ECOG performance status.") :][:700]
    assert "ECOG 0 or 1" in ecog_item and "ELIANA (trial fitness)" in ecog_item
    history_item = page[page.index("Complete the treatment history.") :][:700]
    assert "Two or more prior lines" in history_item


def test_work_up_names_only_the_indication_where_a_shared_criterion_is_unknown() -> None:
    # Indication ids repeat across products; the work-up reference "<indication>/<criterion>"
    # must name the product where the criterion is still unknown, not every namesake.
    ev = make_evaluation()
    known = ev.products[1].indications[0]  # Yescarta, not_met
    unknown = ev.products[2].indications[0]  # Tecelra, unknown
    shared = known.model_copy(update={"id": unknown.id})
    ev.products[1].indications[0] = shared
    ev.products[1].indications[0].criteria[0] = known.criteria[0].model_copy(update={"id": "afami.hla"})
    page = render_html(ev)
    item = page[page.index("High-resolution HLA-A typing.") :][:700]
    assert "Tecelra" in item and "Yescarta" not in item


def test_html_escapes_markup_in_criterion_text(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_has_no_external_assets(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert "<link" not in page and "<script" not in page and "src=" not in page


def test_html_shows_evidence_and_footer(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert "MedicationStatement/m1" in page and "1 line counted" in page
    assert "Knowledge version 2026-11-29" in page and "actnav 0.1.0" in page


def test_html_shows_the_disclaimer_and_a_deceased_banner_only_when_deceased() -> None:
    alive = render_html(make_evaluation())
    dead = render_html(make_evaluation(deceased=True))
    assert "supports clinicians, it does not replace them" in alive
    assert 'class="deceased"' not in alive
    assert 'class="deceased"' in dead and "2026-10-01" in dead


def test_html_lists_every_unknown_leaf_in_what_actnav_could_not_decide(
    evaluation: Evaluation,
) -> None:
    page = render_html(evaluation)
    section = page[page.index('id="unknowns"') :]
    assert "afami.hla" in section and "fit.eliana.ecog" in section
    assert "tisa.ball.age" not in section


def test_unknowns_of_not_eligible_indications_are_listed_apart(evaluation: Evaluation) -> None:
    moot = _leaf("axi.lbcl.lvef", "LVEF 40% or more", Result.UNKNOWN, needs="unknown: needs an LVEF")
    evaluation.products[1].indications[0].criteria.append(moot)
    page = render_html(evaluation)
    section = page[page.index('id="unknowns"') :]
    apart = section.index("Also unknown, in indications already not eligible")
    assert section.index("afami.hla") < apart < section.index("axi.lbcl.lvef")


def test_text_contains_the_disclaimer_and_each_verdict(evaluation: Evaluation) -> None:
    text = render_text(evaluation)
    assert "supports clinicians, it does not replace them" in text
    assert evaluation.disclaimer in text
    assert "[ELIGIBLE]" in text and "[NOT ELIGIBLE]" in text and "[NEEDS INFORMATION]" in text
    assert "- not met: Two or more prior lines" in text


def test_text_is_plain_and_not_html_escaped(evaluation: Evaluation) -> None:
    text = render_text(evaluation)
    assert "≥" not in text and "—" not in text
    assert "&lt;" not in text and "&amp;" not in text
    assert "Trial-derived context - not label requirements" in text
    assert 20 <= len(text.splitlines()) <= 60


def test_text_lists_work_up_in_step_order(evaluation: Evaluation) -> None:
    text = render_text(evaluation)
    positions = [text.index(name) for name in ("Medical history", "Laboratory tests", "HLA typing")]
    assert positions == sorted(positions)


def test_summary_names_the_possible_indications_and_counts_the_rest(evaluation: Evaluation) -> None:
    lines = render_summary(evaluation).splitlines()
    assert lines[0].startswith("Patient p1: 24 y, female")
    assert any("[eligible]" in line and "Kymriah" in line for line in lines)
    assert any("[needs information]" in line and "Tecelra" in line for line in lines)
    assert not any("Yescarta" in line for line in lines)
    assert "1 eligible, 1 need information, 1 not eligible; 4 work-up item(s)." in lines[-2]


def test_json_round_trips_to_the_same_evaluation(evaluation: Evaluation) -> None:
    text = render_json(evaluation)
    assert json.loads(text)["patient"]["id"] == "p1"
    assert Evaluation.model_validate_json(text) == evaluation


def test_json_matches_the_published_schema(evaluation: Evaluation) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = Path(__file__).resolve().parents[3] / "schemas" / "evaluation.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(render_json(evaluation)), schema)


def test_text_keeps_letters_of_any_script() -> None:
    from actnav.care.report import to_ascii

    assert to_ascii("Sarcome synovial — cuisse gauche, Σαρκώδες ≥ 2") == "Sarcome synovial - cuisse gauche, Σαρκώδες >= 2"
