"""The HTML, text and JSON renderings of an evaluation (actnav.care.report).

The evaluation is built by hand here, so these tests do not depend on the FHIR importer, the
engine or the packaged data: they check what the care team sees.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
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
    TrialCriterionResult,
    TrialMatchResult,
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

    assert (
        to_ascii("Sarcome synovial — cuisse gauche, Σαρκώδες ≥ 2")
        == "Sarcome synovial - cuisse gauche, Σαρκώδες >= 2"
    )


# --- layout of the HTML report: order, collapsing, navigation ------------------------------------

_VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class _Node:
    """An element of the parsed page (just enough of a DOM for these tests)."""

    tag: str
    attrs: dict[str, str]
    parent: _Node | None = None
    children: list[_Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return re.sub(r"\s+", " ", "".join(parts)).strip()

    def iter(self) -> Iterator[_Node]:
        for child in self.children:
            if isinstance(child, _Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[_Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.classes)]

    def by_id(self, ident: str) -> _Node:
        (found,) = [n for n in self.iter() if n.attrs.get("id") == ident]
        return found

    def ancestors(self) -> Iterator[_Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def inside_closed_details(self) -> bool:
        """True when a closed <details> hides this element (a <summary> stays visible)."""
        child: _Node = self
        for node in self.ancestors():
            if node.tag == "details" and "open" not in node.attrs and child.tag != "summary":
                return True
            child = node
        return False


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#root", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_endtag(self, tag: str) -> None:
        node: _Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"unbalanced </{tag}>"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(page: str) -> _Node:
    tree = _Tree()
    tree.feed(page)
    tree.close()
    assert tree.current is tree.root, "unclosed elements"
    return tree.root


def _product(
    inn: str, brand: str, *inds: IndicationResult, notes: list[ProductNote] | None = None
) -> ProductResult:
    return ProductResult(
        product=inn,
        id=inn.replace(" ", "-"),
        brand=brand,
        modality="CAR-T",
        target="CD19",
        approved_on_as_of=True,
        indications=list(inds),
        notes=notes or [],
    )


def _indication(ind_id: str, verdict: Verdict, *criteria: CriterionResult) -> IndicationResult:
    failed = {Verdict.NOT_ELIGIBLE: Result.NOT_MET, Verdict.NEEDS_INFORMATION: Result.UNKNOWN}.get(verdict)
    label = {Result.NOT_MET: "not met", Result.UNKNOWN: "unknown"}
    return IndicationResult(
        id=ind_id,
        name=f"Indication {ind_id}",
        disease="b_all",
        label_revision="2024-01",
        effective_from=date(2020, 1, 1),
        approval="regular",
        verdict=verdict,
        reasons=[f"{c.text}: {label[c.result]}" for c in criteria if c.result is failed],
        criteria=list(criteria),
        unconfirmed=False,
        source=LABEL,
    )


def _mixed_evaluation() -> Evaluation:
    """Products listed out of order, with every verdict spread across them."""
    ev = make_evaluation()
    young = _leaf(
        "tisa.age",
        "Age 25 years or younger",
        Result.NOT_MET,
        evidence=[Evidence(resource="Patient/p1", value=34, unit="a", date="2026-06-01")],
    )
    relapse = _leaf("tisa.relapse", "Second or later relapse", Result.MET)
    cd19 = _leaf("zeta.cd19", "CD19-positive disease", Result.NOT_MET)
    ldh = _leaf("zeta.ldh", "LDH recorded", Result.UNKNOWN, needs="unknown: needs an LDH")
    boxed = ProductNote(kind="boxed_warning", text="Zeta boxed warning text.", source=LABEL)
    rems = ProductNote(kind="rems", text="Zeta REMS text.", source=LABEL)
    ev.products = [
        _product(
            "zeta-cel", "Zetara", _indication("z-all", Verdict.NOT_ELIGIBLE, cd19, ldh), notes=[boxed, rems]
        ),
        *ev.products,  # tisagenlecleucel eligible, axicabtagene not eligible, afamitresgene needs info
        _product("alpha-cel", "Alphia", _indication("a-all", Verdict.ELIGIBLE, relapse)),
        _product("beta-cel", "Betra", _indication("b-young", Verdict.NOT_ELIGIBLE, relapse, young)),
    ]
    return ev


def test_verdict_table_lists_eligible_then_needs_information_then_not_eligible_by_product() -> None:
    table = parse(render_html(_mixed_evaluation())).by_id("verdicts").find_all("table", "verdicts")[0]
    rows = [(r.attrs["data-verdict"], r.attrs["data-product"]) for r in table.find_all("tr", "v-row")]
    assert rows == [
        ("eligible", "alpha-cel"),
        ("eligible", "tisagenlecleucel"),
        ("needs_information", "afamitresgene-autoleucel"),
        ("not_eligible", "axicabtagene-ciloleucel"),
        ("not_eligible", "beta-cel"),
        ("not_eligible", "zeta-cel"),
    ]
    groups = [r.text() for r in table.find_all("tr", "group")]
    assert groups == ["Eligible (2)", "Needs information (1)", "Not eligible (3)"]


def test_products_without_an_indication_come_last_in_the_verdict_table() -> None:
    ev = _mixed_evaluation()
    ev.products.insert(
        0, _product("aardvark-cel", "Aardvark").model_copy(update={"approved_on_as_of": False})
    )
    table = parse(render_html(ev)).by_id("verdicts")
    rows = table.find_all("tr", "v-row")
    assert (rows[-1].attrs["data-verdict"], rows[-1].attrs["data-product"]) == ("none", "aardvark-cel")
    assert "Not yet approved on 2026-11-29." in rows[-1].text()


def test_not_eligible_indications_are_collapsed_behind_their_first_failed_criterion() -> None:
    page = parse(render_html(_mixed_evaluation()))
    block = page.by_id("ind-beta-cel-b-young")
    assert block.tag == "details" and "open" not in block.attrs
    (summary,) = [c for c in block.children if isinstance(c, _Node) and c.tag == "summary"]
    line = summary.text()
    assert "beta-cel (Betra): Indication b-young" in line
    assert "not eligible — Age 25 years or younger: not met" in line
    # Opening it shows every criterion, the met ones too, with evidence and source.
    inside = block.text()
    assert "tisa.age" in inside and "tisa.relapse" in inside and "Patient/p1" in inside
    assert "KYMRIAH (tisagenlecleucel) prescribing information" in inside


def test_a_collapsed_line_counts_the_further_reasons() -> None:
    ev = _mixed_evaluation()
    ind = ev.products[0].indications[0]
    ev.products[0].indications[0] = ind.model_copy(
        update={"reasons": [*ind.reasons, "Second reason: not met"]}
    )
    summary = parse(render_html(ev)).by_id("ind-zeta-cel-z-all").find_all("summary")[0]
    assert "CD19-positive disease: not met (+1 more)" in summary.text()


def test_eligible_and_needs_information_indications_stay_open() -> None:
    page = parse(render_html(_mixed_evaluation()))
    for ident in (
        "ind-alpha-cel-a-all",
        "ind-tisagenlecleucel-tisa-ball",
        "ind-afamitresgene-autoleucel-afami-ss",
    ):
        block = page.by_id(ident)
        assert block.tag == "div" and not block.inside_closed_details(), ident
    hla = [n for n in page.find_all("div", "needs") if "HLA-A typing" in n.text()]
    assert hla and not any(n.inside_closed_details() for n in hla)


def test_every_not_eligible_indication_and_only_those_are_collapsed() -> None:
    page = parse(render_html(_mixed_evaluation()))
    collapsed = page.by_id("products").find_all("details", "indication")
    assert {d.attrs["id"] for d in collapsed} == {
        "ind-zeta-cel-z-all",
        "ind-beta-cel-b-young",
        "ind-axicabtagene-ciloleucel-axi-lbcl",
    }
    assert {d.attrs["data-verdict"] for d in collapsed} == {"not_eligible"}


def test_label_notes_are_open_only_for_products_with_a_possible_indication() -> None:
    ev = _mixed_evaluation()
    page = parse(render_html(ev))
    kymriah = page.by_id("product-tisagenlecleucel")
    boxes = kymriah.find_all("div", "box")
    assert boxes and not any(b.inside_closed_details() for b in boxes)
    zeta = page.by_id("product-zeta-cel")
    notes = zeta.by_id("notes-zeta-cel")
    assert notes.tag == "details" and "open" not in notes.attrs
    assert "Boxed warning, REMS (2 notes)" in notes.find_all("summary")[0].text()
    zeta_boxes = zeta.find_all("div", "box")
    assert [b.text().split(" Source:")[0] for b in zeta_boxes] == [
        "Boxed warning Zeta boxed warning text.",
        "REMS Zeta REMS text.",
    ]
    assert all(b.inside_closed_details() for b in zeta_boxes)


def test_products_with_a_possible_indication_come_first_in_the_criteria_section() -> None:
    page = parse(render_html(_mixed_evaluation()))
    order = [a.attrs["id"] for a in page.by_id("products").find_all("article")]
    assert order == [
        "product-alpha-cel",
        "product-tisagenlecleucel",
        "product-afamitresgene-autoleucel",
        "product-axicabtagene-ciloleucel",
        "product-beta-cel",
        "product-zeta-cel",
    ]


def test_nothing_is_dropped_from_the_page_by_collapsing() -> None:
    ev = _mixed_evaluation()
    page = render_html(ev)
    for product in ev.products:
        for note in product.notes:
            assert note.text in page
        for ind in product.indications:
            for reason in ind.reasons:
                assert html.escape(reason, quote=False) in page
            for node in _walk_criteria(ind.criteria):
                assert f'<code class="cid">{node.id}</code>' in page


def _walk_criteria(criteria: list[CriterionResult]) -> Iterator[CriterionResult]:
    for c in criteria:
        yield c
        yield from _walk_criteria(c.children)


def test_the_jump_navigation_leads_to_every_section(evaluation: Evaluation) -> None:
    page = parse(render_html(evaluation))
    (nav,) = page.find_all("nav", "jump")
    targets = [a.attrs["href"] for a in nav.find_all("a")]
    assert targets == ["#verdicts", "#products", "#fitness", "#workup", "#unknowns"]
    for target in targets:
        assert page.by_id(target[1:]).tag == "section"
    labels = nav.text()
    assert "Verdicts" in labels and "Fitness (1)" in labels and "Work-up (4)" in labels
    assert "Could not decide (2)" in labels


def test_dates_do_not_wrap(evaluation: Evaluation) -> None:
    page = render_html(evaluation)
    assert '<td class="date">2026-06-01</td>' in page
    assert re.search(r"\.date[^{]*\{[^}]*white-space: nowrap", page)
    # ISO dates inside free text are kept on one line too (escaped text around them).
    evaluation.products[1].indications[0].reasons = ["Relapse after 2023-02-06 <b>: not met"]
    assert '<span class="date">2023-02-06</span> &lt;b&gt;' in render_html(evaluation)


def test_the_disclaimer_is_at_the_top_and_the_bottom(evaluation: Evaluation) -> None:
    page = parse(render_html(evaluation))
    (header,) = page.find_all("header", "report")
    (footer,) = page.find_all("footer")
    for part in (header, footer):
        assert "supports clinicians, it does not replace them" in part.text()
        assert evaluation.disclaimer in part.text()


def test_print_notes_say_that_collapsed_lines_print_as_one_line() -> None:
    page = render_html(_mixed_evaluation())
    assert "@media print" in page and ".print-only { display: block; }" in page
    notes = [n.text() for n in parse(page).iter() if "print-only" in n.classes]
    assert notes and all("HTML report" in n for n in notes)


def _trial(n: int, verdict: Verdict) -> TrialMatchResult:
    text = f"Trial {n} criterion text long enough to be quoted by the needs review mark"
    needs = f"unknown: needs review: {text} [not typed: x]"
    row = TrialCriterionResult(
        section="inclusion",
        text=text,
        parse_status="review",
        counted=True,
        result=_leaf(f"inc{n}.r", text, Result.UNKNOWN, needs=needs),
    )
    return TrialMatchResult(
        nct_id=f"NCT0000000{n}",
        title=f"Trial number {n}",
        url=f"https://clinicaltrials.gov/study/NCT0000000{n}",
        is_act=True,
        verdict=verdict,
        reasons=[f"Inclusion: {text}: {needs}"],
        score=60.0 - n,
        relevance=0.5,
        why_listed=["Adoptive cell therapy trial"],
        counts={"met": 0, "not_met": 0, "unknown": 1, "needs_review": 1},
        criteria=[row],
    )


def test_the_best_trials_are_shown_in_full_and_the_rest_collapsed(evaluation: Evaluation) -> None:
    verdicts = [Verdict.NOT_ELIGIBLE, *[Verdict.NEEDS_INFORMATION] * 5]
    evaluation.trials = [_trial(n, v) for n, v in enumerate(verdicts, 1)]
    page = parse(render_html(evaluation))
    section = page.by_id("trials")
    full = [a.attrs["id"] for a in section.find_all("article", "trial-match")]
    collapsed = [d.attrs["id"] for d in section.find_all("details", "trial-match")]
    # The first trial is not eligible: the three best still possible are shown in full.
    assert full == ["match-NCT00000002", "match-NCT00000003", "match-NCT00000004"]
    assert collapsed == ["match-NCT00000001", "match-NCT00000005", "match-NCT00000006"]
    summary = section.by_id("match-NCT00000005").find_all("summary")[0].text()
    assert "5. NCT00000005 Trial number 5" in summary and "needs information" in summary
    assert "Inclusion: Trial 5 criterion text" in summary
    # Every trial keeps its row in the overview table and its criteria on the page.
    assert len(section.find_all("table", "verdicts")[0].find_all("tr")) == 7
    assert all(section.by_id(f"match-NCT0000000{n}").find_all("table", "tcrit") for n in range(1, 7))


def test_the_match_page_shows_every_trial_in_full(evaluation: Evaluation) -> None:
    from actnav.care.report import render_match_html
    from actnav.eligibility.report_model import TrialMatchReport, TrialSearch

    rep = TrialMatchReport(
        as_of=evaluation.as_of,
        generated_by="actnav 0.1.0",
        patient=evaluation.patient,
        search=TrialSearch(source="bundled", trials_checked=5, trials_shown=5),
        trials=[_trial(n, Verdict.NEEDS_INFORMATION) for n in range(1, 6)],
        disclaimer=evaluation.disclaimer,
    )
    page = parse(render_match_html(rep))
    assert len(page.find_all("article", "trial-match")) == 5
    assert not page.find_all("details")


def test_a_trial_criterion_text_is_quoted_once_beside_its_needs() -> None:
    from actnav.care.report import AS_ABOVE, BESIDE

    trial = _trial(1, Verdict.NEEDS_INFORMATION)
    ev = make_evaluation()
    ev.trials = [trial]
    page = parse(render_html(ev))
    row = page.by_id("match-NCT00000001").find_all("table", "tcrit")[0].find_all("tr")[1]
    original, result = row.find_all("td")[1].text(), row.find_all("td")[2].text()
    assert original == trial.criteria[0].text
    assert f"unknown: needs review: {BESIDE} [not typed: x]" in result
    reasons = [li.text() for li in page.by_id("match-NCT00000001").find_all("li")]
    text = trial.criteria[0].text
    assert f"Inclusion: {text}: unknown: needs review: {AS_ABOVE} [not typed: x]" in reasons


def test_a_summary_reason_is_clipped_before_its_verdict() -> None:
    from actnav.care.report import _clip_reason

    histology = "Large B-cell lymphoma of a listed histology: " + "DLBCL not otherwise specified, " * 8
    reason = f"{histology.rstrip(', ')}: not met (found: B-ALL; second relapse)"
    clipped = _clip_reason(reason, 120)
    assert len(clipped) <= 120
    assert clipped.startswith("Large B-cell lymphoma of a listed histology: DLBCL")
    assert clipped.endswith("…: not met (found: B-ALL; second relapse)")
    assert _clip_reason("Short: not met", 120) == "Short: not met"


def test_the_page_stays_free_of_scripts_and_external_assets_with_collapsed_blocks() -> None:
    ev = _mixed_evaluation()
    ev.trials = [_trial(n, Verdict.NEEDS_INFORMATION) for n in range(1, 6)]
    page = render_html(ev)
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "@import" not in page and "url(" not in page
