"""The packaged product files: they load, every rule is sourced, and they say what the labels say.

Expected values come from the actnav clinical reference section 1 (label facts) and the approval
news confirmed while writing the files, never from the files themselves.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from actnav.eligibility.engine import FactValue, Result, evaluate
from actnav.errors import DataFileError
from actnav.knowledge import loader
from actnav.knowledge.loader import load_knowledge, parse_file, read_yaml
from actnav.knowledge.models import Criterion, Indication, Product

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "knowledge"

PRODUCT_IDS = {
    "tisagenlecleucel",
    "axicabtagene_ciloleucel",
    "brexucabtagene_autoleucel",
    "lisocabtagene_maraleucel",
    "idecabtagene_vicleucel",
    "ciltacabtagene_autoleucel",
    "lifileucel",
    "afamitresgene_autoleucel",
    "obecabtagene_autoleucel",
}
# The six BCMA/CD19 autologous CAR-Ts whose REMS FDA eliminated on 2025-06-26 (reference 1.10).
REMS_CAR_TS = [
    "tisagenlecleucel",
    "axicabtagene_ciloleucel",
    "brexucabtagene_autoleucel",
    "lisocabtagene_maraleucel",
    "idecabtagene_vicleucel",
    "ciltacabtagene_autoleucel",
]
REMS_REMOVED = dt.date(2025, 6, 26)


def product(product_id: str) -> Product:
    return load_knowledge().product(product_id)


def indication(product_id: str, indication_id: str) -> Indication:
    for ind in product(product_id).indications:
        if ind.id == indication_id:
            return ind
    raise KeyError(indication_id)


def node(ind: Indication, criterion_id: str) -> Criterion:
    for tree in (*ind.criteria, *ind.limitations_of_use):
        for item in tree.walk():
            if item.id == criterion_id:
                return item
    raise KeyError(criterion_id)


def leaves(ind: Indication) -> list[Criterion]:
    return [n for tree in ind.criteria for n in tree.walk() if n.fact is not None]


def leaf_for(ind: Indication, fact: str) -> Criterion:
    found = [n for n in leaves(ind) if n.fact == fact]
    assert len(found) == 1, f"{ind.id}: expected one leaf on {fact}, got {[n.id for n in found]}"
    return found[0]


def in_force(product_id: str, disease: str, on: dt.date) -> list[Indication]:
    return [i for i in product(product_id).indications if i.disease == disease and i.in_force(on)]


def evaluate_with(tree: Criterion, references: dict, **facts: object) -> Result:
    """Evaluate a tree with the given facts; facts not given are unknown (missing)."""

    def source(fact_id: str) -> FactValue:
        if fact_id in facts:
            return FactValue(fact=fact_id, value=facts[fact_id])
        return FactValue(fact=fact_id, reason="missing")

    return evaluate(tree, source, references, lambda fact_id: fact_id).result


# --- Loading and sourcing ---------------------------------------------------------------------


def test_load_knowledge_loads_the_nine_approved_products() -> None:
    assert {p.id for p in load_knowledge().products} == PRODUCT_IDS


@pytest.mark.parametrize("product_id", sorted(PRODUCT_IDS))
def test_every_indication_and_every_criterion_node_cites_a_declared_source(product_id: str) -> None:
    prod = product(product_id)
    trees = [c for i in prod.indications for c in (*i.criteria, *i.limitations_of_use)]
    trees += list(prod.contraindications)
    for ind in prod.indications:
        assert ind.source.ref in prod.references
    for tree in trees:
        for item in tree.walk():
            assert item.source is not None, f"{product_id}: {item.id} has no source"
            assert item.source.ref in prod.references
            assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", item.id), item.id
            assert item.text.strip()


@pytest.mark.parametrize("product_id", sorted(PRODUCT_IDS))
def test_every_product_file_has_version_history_and_dated_revisions(product_id: str) -> None:
    prod = product(product_id)
    assert prod.version == "2026-11-29"
    assert prod.history and prod.history[0].startswith("2026-11-29")
    assert prod.label_revisions[0].date == prod.first_approval
    assert {i.label_revision for i in prod.indications} <= {r.revision for r in prod.label_revisions}


# --- Kymriah ALL (reference 1.1) --------------------------------------------------------------


def test_kymriah_all_is_limited_to_age_25_and_the_boundary_is_flagged_uncertain() -> None:
    age = node(indication("tisagenlecleucel", "b-all-up-to-25"), "age-le-25")
    assert (age.fact, age.op, age.value, age.unit) == ("age_years", "le", 25, "a")
    assert age.source is not None and age.source.verification == "U"


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"refractory": True, "relapse_count": 0}, Result.MET),
        ({"refractory": False, "relapse_count": 2}, Result.MET),
        ({"refractory": False, "relapse_count": 3}, Result.MET),
        ({"refractory": False, "relapse_count": 1}, Result.NOT_MET),  # first relapse: off-label
        ({"relapse_count": 1}, Result.UNKNOWN),
    ],
)
def test_kymriah_all_needs_refractory_disease_or_a_second_relapse(facts: dict, expected: Result) -> None:
    prod = product("tisagenlecleucel")
    tree = node(indication("tisagenlecleucel", "b-all-up-to-25"), "refractory-or-second-relapse")
    assert evaluate_with(tree, prod.references, **facts) is expected


def test_kymriah_lbcl_lists_its_histologies_and_excludes_primary_cns_lymphoma() -> None:
    ind = indication("tisagenlecleucel", "lbcl-after-2-lines")
    histology = node(ind, "histology-lbcl-listed")
    assert set(histology.value) == {"dlbcl_nos", "hgbcl", "dlbcl_transformed_fl"}
    assert leaf_for(ind, "prior_lines").value == 2
    (limitation,) = ind.limitations_of_use
    assert (limitation.fact, limitation.op, limitation.value) == (
        "diagnosis",
        "has_none",
        ("primary_cns_lymphoma",),
    )


def test_yescarta_third_line_histologies_include_pmbcl() -> None:
    histology = node(indication("axicabtagene_ciloleucel", "lbcl-after-2-lines"), "histology-lbcl-listed")
    assert set(histology.value) == {"dlbcl_nos", "pmbcl", "hgbcl", "dlbcl_transformed_fl"}


@pytest.mark.parametrize(
    ("product_id", "indication_id"),
    [
        ("axicabtagene_ciloleucel", "lbcl-second-line"),
        ("lisocabtagene_maraleucel", "lbcl-second-line"),
    ],
)
@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"refractory_to_first_line": True, "relapse_within_12_months_of_first_line": False}, Result.MET),
        ({"refractory_to_first_line": False, "relapse_within_12_months_of_first_line": True}, Result.MET),
        (
            {"refractory_to_first_line": False, "relapse_within_12_months_of_first_line": False},
            Result.NOT_MET,
        ),
        ({"refractory_to_first_line": False}, Result.UNKNOWN),
    ],
)
def test_second_line_lbcl_needs_primary_refractory_disease_or_relapse_within_12_months(
    product_id: str, indication_id: str, facts: dict, expected: Result
) -> None:
    tree = node(indication(product_id, indication_id), "primary-refractory-or-early-relapse")
    assert evaluate_with(tree, product(product_id).references, **facts) is expected


def test_breyanzi_transplant_ineligible_second_line_needs_one_prior_line_and_ineligibility() -> None:
    ind = indication("lisocabtagene_maraleucel", "lbcl-second-line-transplant-ineligible")
    assert leaf_for(ind, "prior_lines").op == "ge" and leaf_for(ind, "prior_lines").value == 1
    assert leaf_for(ind, "transplant_ineligible").value is True
    assert leaf_for(ind, "relapsed_or_refractory").value is True


# --- Indications approved after the product (approval dates) ----------------------------------


@pytest.mark.parametrize(
    ("product_id", "indication_id", "approved"),
    [
        ("axicabtagene_ciloleucel", "lbcl-second-line", dt.date(2022, 4, 1)),
        ("brexucabtagene_autoleucel", "b-all-adult", dt.date(2021, 10, 1)),
        ("lisocabtagene_maraleucel", "cll-sll-after-2-lines", dt.date(2024, 3, 14)),
        ("lisocabtagene_maraleucel", "fl-after-2-lines", dt.date(2024, 5, 15)),
        ("lisocabtagene_maraleucel", "mcl-after-2-lines", dt.date(2024, 5, 30)),
        ("lisocabtagene_maraleucel", "mzl-after-2-lines", dt.date(2025, 12, 4)),
    ],
)
def test_a_later_indication_is_in_force_from_its_approval_date(
    product_id: str, indication_id: str, approved: dt.date
) -> None:
    ind = indication(product_id, indication_id)
    assert ind.effective_from == approved
    assert not ind.in_force(approved - dt.timedelta(days=1))
    assert ind.in_force(approved)


# --- Myeloma label versions (reference 1.5, 1.6; April 2024) -----------------------------------


@pytest.mark.parametrize(
    ("product_id", "on", "min_prior_lines"),
    [
        ("idecabtagene_vicleucel", dt.date(2021, 3, 26), 4),
        ("idecabtagene_vicleucel", dt.date(2024, 4, 3), 4),
        ("idecabtagene_vicleucel", dt.date(2024, 4, 4), 2),
        ("idecabtagene_vicleucel", dt.date(2026, 11, 29), 2),
        ("ciltacabtagene_autoleucel", dt.date(2022, 2, 28), 4),
        ("ciltacabtagene_autoleucel", dt.date(2024, 4, 4), 4),
        ("ciltacabtagene_autoleucel", dt.date(2024, 4, 5), 1),
        ("ciltacabtagene_autoleucel", dt.date(2026, 11, 29), 1),
    ],
)
def test_exactly_one_myeloma_indication_is_in_force_and_it_switches_in_april_2024(
    product_id: str, on: dt.date, min_prior_lines: int
) -> None:
    (current,) = in_force(product_id, "multiple_myeloma", on)
    prior_lines = leaf_for(current, "prior_lines")
    assert (prior_lines.op, prior_lines.value, prior_lines.unit) == ("ge", min_prior_lines, "1")


def test_no_myeloma_indication_is_in_force_before_first_approval() -> None:
    assert in_force("idecabtagene_vicleucel", "multiple_myeloma", dt.date(2021, 3, 25)) == []
    assert in_force("ciltacabtagene_autoleucel", "multiple_myeloma", dt.date(2022, 2, 27)) == []


@pytest.mark.parametrize("indication_id", ["mm-after-4-lines-2021", "mm-after-2-lines-2024"])
def test_abecma_needs_prior_imid_pi_and_anti_cd38(indication_id: str) -> None:
    classes = leaf_for(indication("idecabtagene_vicleucel", indication_id), "prior_drug_classes")
    assert classes.op == "has_all"
    assert set(classes.value) == {"imid", "proteasome_inhibitor", "anti_cd38"}


def test_carvykti_2024_needs_pi_and_imid_and_lenalidomide_refractory_disease_not_anti_cd38() -> None:
    ind = indication("ciltacabtagene_autoleucel", "mm-after-1-line-len-refractory-2024")
    refractory = leaf_for(ind, "refractory_to")
    assert (refractory.op, refractory.value) == ("has_any", ("lenalidomide",))
    classes = leaf_for(ind, "prior_drug_classes")
    assert classes.op == "has_all" and set(classes.value) == {"proteasome_inhibitor", "imid"}


def test_carvykti_2022_needs_anti_cd38_as_well() -> None:
    classes = leaf_for(indication("ciltacabtagene_autoleucel", "mm-after-4-lines-2022"), "prior_drug_classes")
    assert set(classes.value) == {"proteasome_inhibitor", "imid", "anti_cd38"}


# --- Breyanzi CLL/SLL and MCL (reference 1.4) --------------------------------------------------


def test_breyanzi_cll_needs_two_lines_including_btk_and_bcl2_inhibitors() -> None:
    ind = indication("lisocabtagene_maraleucel", "cll-sll-after-2-lines")
    assert leaf_for(ind, "prior_lines").value == 2
    classes = leaf_for(ind, "prior_drug_classes")
    assert classes.op == "has_all" and set(classes.value) == {"btk_inhibitor", "bcl2_inhibitor"}


def test_breyanzi_mcl_needs_two_lines_including_a_btk_inhibitor() -> None:
    ind = indication("lisocabtagene_maraleucel", "mcl-after-2-lines")
    assert leaf_for(ind, "prior_lines").value == 2
    assert leaf_for(ind, "prior_drug_classes").value == ("btk_inhibitor",)


# --- Amtagvi BRAF rule (reference 1.7) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"braf_v600": "negative", "prior_drug_classes": ("anti_pd1",)}, Result.MET),
        (
            {"braf_v600": "positive", "prior_drug_classes": ("anti_pd1", "braf_inhibitor", "mek_inhibitor")},
            Result.MET,
        ),
        ({"braf_v600": "positive", "prior_drug_classes": ("anti_pd1",)}, Result.NOT_MET),
        ({"braf_v600": "positive", "prior_drug_classes": ("anti_pd1", "mek_inhibitor")}, Result.NOT_MET),
        ({"prior_drug_classes": ("anti_pd1",)}, Result.UNKNOWN),  # BRAF untested
        ({"prior_drug_classes": ("anti_pd1", "braf_inhibitor")}, Result.MET),
    ],
)
def test_amtagvi_braf_positive_patients_need_a_braf_inhibitor(facts: dict, expected: Result) -> None:
    ind = indication("lifileucel", "melanoma-after-anti-pd1")
    tree = node(ind, "braf-v600-positive-requires-braf-inhibitor")
    assert evaluate_with(tree, product("lifileucel").references, **facts) is expected


@pytest.mark.parametrize(
    ("classes", "expected"),
    [(("anti_pd1",), Result.MET), (("anti_ctla4",), Result.NOT_MET), (("anti_pdl1",), Result.NOT_MET)],
)
def test_amtagvi_needs_a_pd1_antibody_and_anti_ctla4_alone_does_not_count(
    classes: tuple[str, ...], expected: Result
) -> None:
    tree = node(indication("lifileucel", "melanoma-after-anti-pd1"), "prior-anti-pd1")
    assert evaluate_with(tree, product("lifileucel").references, prior_drug_classes=classes) is expected


# --- Tecelra HLA (reference 1.8) ----------------------------------------------------------------


def test_tecelra_allows_four_hla_a02_p_groups() -> None:
    hla = leaf_for(indication("afamitresgene_autoleucel", "synovial-sarcoma-mage-a4"), "hla_a_p_groups")
    assert hla.op == "has_any"
    assert set(hla.value) == {"A*02:01P", "A*02:02P", "A*02:03P", "A*02:06P"}


@pytest.mark.parametrize(
    ("p_groups", "expected"),
    [
        (("A*02:01P", "A*01:01P"), Result.MET),
        (("A*02:01P", "A*02:05P"), Result.NOT_MET),  # heterozygous A*02:05P
        (("A*02:05P",), Result.NOT_MET),  # homozygous
    ],
)
def test_tecelra_is_contraindicated_with_hla_a_02_05p_in_either_allele(
    p_groups: tuple[str, ...], expected: Result
) -> None:
    prod = product("afamitresgene_autoleucel")
    (contraindication,) = prod.contraindications
    assert (contraindication.op, contraindication.value) == ("has_none", ("A*02:05P",))
    assert evaluate_with(contraindication, prod.references, hla_a_p_groups=p_groups) is expected


# --- Doses (reference 1.1-1.9) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product_id", "indication_id", "expected"),
    [
        ("axicabtagene_ciloleucel", "lbcl-second-line", {"per_kg_max": 2e6, "total_max": 2e8}),
        ("brexucabtagene_autoleucel", "mcl", {"per_kg_max": 2e6, "total_max": 2e8}),
        ("brexucabtagene_autoleucel", "b-all-adult", {"per_kg_max": 1e6, "total_max": 1e8}),
        (
            "ciltacabtagene_autoleucel",
            "mm-after-1-line-len-refractory-2024",
            {"per_kg_min": 0.5e6, "per_kg_max": 1.0e6, "total_max": 1e8},
        ),
        ("idecabtagene_vicleucel", "mm-after-4-lines-2021", {"total_min": 300e6, "total_max": 460e6}),
        ("idecabtagene_vicleucel", "mm-after-2-lines-2024", {"total_min": 300e6, "total_max": 510e6}),
        ("tisagenlecleucel", "lbcl-after-2-lines", {"total_min": 0.6e8, "total_max": 6.0e8}),
        ("lisocabtagene_maraleucel", "cll-sll-after-2-lines", {"total_min": 90e6, "total_max": 110e6}),
        ("lifileucel", "melanoma-after-anti-pd1", {"total_min": 7.5e9, "total_max": 72e9}),
        ("afamitresgene_autoleucel", "synovial-sarcoma-mage-a4", {"total_min": 2.68e9, "total_max": 10e9}),
        ("obecabtagene_autoleucel", "b-all-adult", {"total_min": 410e6, "total_max": 410e6}),
    ],
)
def test_single_dose_band_per_indication_matches_the_label(
    product_id: str, indication_id: str, expected: dict[str, float]
) -> None:
    (band,) = [b for b in product(product_id).dose if indication_id in b.applies_to]
    for field, value in expected.items():
        assert getattr(band, field) == pytest.approx(value), field


@pytest.mark.parametrize(
    ("weight_kg", "expected"),
    [
        (50.0, {"per_kg_min": 0.2e6, "per_kg_max": 5.0e6, "total_min": None, "total_max": None}),
        (50.1, {"per_kg_min": None, "per_kg_max": None, "total_min": 0.1e8, "total_max": 2.5e8}),
        (20.0, {"per_kg_min": 0.2e6, "per_kg_max": 5.0e6, "total_min": None, "total_max": None}),
        (80.0, {"per_kg_min": None, "per_kg_max": None, "total_min": 0.1e8, "total_max": 2.5e8}),
    ],
)
def test_kymriah_all_dose_is_per_kg_up_to_50_kg_and_flat_above(
    weight_kg: float, expected: dict[str, float | None]
) -> None:
    bands = [b for b in product("tisagenlecleucel").dose if "b-all-up-to-25" in b.applies_to]
    (band,) = [
        b
        for b in bands
        if (b.weight_kg_max_inclusive is None or weight_kg <= b.weight_kg_max_inclusive)
        and (b.weight_kg_min_exclusive is None or weight_kg > b.weight_kg_min_exclusive)
    ]
    for field, value in expected.items():
        actual = getattr(band, field)
        assert actual is None if value is None else actual == pytest.approx(value), field


@pytest.mark.parametrize("product_id", sorted(PRODUCT_IDS))
def test_every_indication_has_a_dose_and_a_lymphodepletion_rule(product_id: str) -> None:
    prod = product(product_id)
    for ind in prod.indications:
        assert any(ind.id in b.applies_to for b in prod.dose), ind.id
        assert any(ind.id in ld.applies_to for ld in prod.lymphodepletion), ind.id


# --- REMS and monitoring (reference 1.10) -------------------------------------------------------


@pytest.mark.parametrize("product_id", REMS_CAR_TS)
def test_rems_car_ts_switch_from_4_and_8_weeks_to_2_weeks_on_26_june_2025(product_id: str) -> None:
    prod = product(product_id)
    before = " ".join(m.text for m in prod.monitoring if m.in_force(REMS_REMOVED - dt.timedelta(days=1)))
    after = " ".join(m.text for m in prod.monitoring if m.in_force(REMS_REMOVED))
    assert "4 weeks" in before and "8 weeks" in before
    assert "2 weeks" in after and "4 weeks" not in after and "8 weeks" not in after
    (rems_before,) = [r for r in prod.rems if r.in_force(REMS_REMOVED - dt.timedelta(days=1))]
    (rems_after,) = [r for r in prod.rems if r.in_force(REMS_REMOVED)]
    assert "tocilizumab" in rems_before.text
    assert rems_after.text.startswith("REMS eliminated")


def test_aucatzyl_proximity_and_driving_periods_are_secondary_not_the_car_t_2_week_values() -> None:
    (proximity,) = [m for m in product("obecabtagene_autoleucel").monitoring if "proximity" in m.text]
    assert "4 weeks" in proximity.text and "8 weeks" in proximity.text
    assert proximity.source.verification == "S"


# --- Broken files fail loudly, naming file and rule ----------------------------------------------


def _data_root_with(tmp_path: Path, broken: Path) -> Path:
    real = loader.data_root()
    root = tmp_path / "data"
    (root / "products").mkdir(parents=True)
    (root / "fitness").mkdir()
    for name in ("facts.yaml", "workup.yaml"):
        (root / name).write_text((real / name).read_text(encoding="utf-8"), encoding="utf-8")
    fitness = (real / "fitness" / "pivotal-trials.yaml").read_text(encoding="utf-8")
    (root / "fitness" / "pivotal-trials.yaml").write_text(fitness, encoding="utf-8")
    shutil.copy(broken, root / "products" / "broken_product.yaml")
    return root


def test_a_product_file_with_an_unknown_key_names_the_file_rule_and_field() -> None:
    path = FIXTURES / "product-unknown-key.yaml"
    with pytest.raises(DataFileError) as caught:
        parse_file(Product, read_yaml(path), "products/broken_product.yaml")
    message = str(caught.value)
    assert "products/broken_product.yaml" in message
    assert "rule age-ge-18" in message
    assert "operator" in message


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("product-unknown-key.yaml", ["products/broken_product.yaml", "rule age-ge-18", "operator"]),
        (
            "product-unknown-fact.yaml",
            ["products/broken_product.yaml", "rule diagnosis-melanoma", "unknown fact 'tumour_type'"],
        ),
    ],
)
def test_load_knowledge_rejects_a_broken_product_file(
    fixture: str, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _data_root_with(tmp_path, FIXTURES / fixture)
    monkeypatch.setattr(loader, "data_root", lambda: root)
    with pytest.raises(DataFileError) as caught:
        loader.load_knowledge.__wrapped__()  # bypass the process cache
    message = str(caught.value)
    for part in expected:
        assert part in message
