"""Adoptive cell therapy recognition rules (actnav.trials.recognition), case by case.

Records are built by hand around one phrase each; the phrases are the wording real registry
records use (the record that uses it is named where there is one). The measured accuracy on the
real records is in tests/integration/trials/test_act_recognition_shared.py and docs/trials.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from actnav.errors import DataFileError
from actnav.trials.models import Intervention, TrialRecord
from actnav.trials.recognition import (
    ActClassification,
    classify,
    inclusion_text,
    load_vocabulary,
    phrase_regex,
)

VOCABULARY = (
    Path(__file__).resolve().parents[3] / "src" / "actnav" / "data" / "trials" / "act-vocabulary.yaml"
)


def trial(
    title: str = "A Study in Lymphoma",
    summary: str = "",
    criteria: str = "",
    conditions: tuple[str, ...] = (),
    interventions: tuple[str, ...] = (),
) -> TrialRecord:
    return TrialRecord(
        nct_id="NCT09999999",
        title=title,
        brief_summary=summary,
        eligibility_text=criteria,
        conditions=conditions,
        interventions=tuple(Intervention(name=n) for n in interventions),
        source_format="ctgov_v2",
        raw={},
    )


def act(record: TrialRecord) -> ActClassification:
    return classify(record)


# ---- what is not ACT ---------------------------------------------------------------------------


def test_criteria_alone_never_make_a_trial_act() -> None:
    record = trial(
        title="Pembrolizumab in Relapsed Hodgkin Lymphoma",
        criteria=(
            "Inclusion Criteria:\n* CD19 chimeric antigen receptor (CAR) T cells infused >= 90 days ago\n"
            "* Tumor infiltrating lymphocytes (TIL) present on biopsy\n* NK cells >= 100/uL\n"
            "Exclusion Criteria:\n* Prior CAR-T cell therapy\n* Prior adoptive cell therapy"
        ),
    )
    result = act(record)
    assert result.is_act is False
    assert (result.modality, result.targets, result.cell_source) == (None, (), "unknown")


def test_t_and_nk_cell_lymphomas_in_conditions_are_not_act() -> None:
    record = trial(
        title="Brentuximab Vedotin in CD30-positive Mature T-cell and NK-cell Neoplasms",
        conditions=("Extranodal NK/T-cell Lymphoma, Nasal Type", "Peripheral T-cell Lymphoma"),
        interventions=("brentuximab vedotin", "cyclophosphamide"),
    )
    assert act(record).is_act is False


@pytest.mark.parametrize(
    "summary",
    [
        "Glofitamab is a bispecific antibody for patients whose lymphoma relapsed after CAR T-cell therapy.",
        "This study enrolls patients ineligible for CAR-T cell therapy.",
        "Patients previously treated with chimeric antigen receptor T cells are eligible.",
        "For participants with CAR-T-exposed disease.",
        "Teclistamab is a T-cell engager that redirects T cells against BCMA.",
        "Stromal tumor-infiltrating lymphocytes (TILs) will be scored as a predictive biomarker.",
        "The vaccine may induce NY-ESO-1-specific T cells, measured by tetramer assay.",
        "NK cell activity and T-cell counts will be monitored.",
    ],
)
def test_mentions_of_other_or_prior_cell_therapy_are_not_act(summary: str) -> None:
    assert act(trial(title="A Study of an Investigational Agent", summary=summary)).is_act is False


def test_sipuleucel_t_is_a_vaccine_not_act() -> None:
    result = act(trial(title="Sipuleucel-T in Metastatic Prostate Cancer"))
    assert result.is_act is False
    assert [(e.kind, e.term) for e in result.evidence] == [("not_act", "sipuleucel-T (not ACT)")]


def test_donor_lymphocyte_infusion_counts_only_as_the_intervention() -> None:
    in_summary = trial(
        title="Reduced-intensity Allogeneic Transplant", summary="Relapse may be treated with DLI."
    )
    assert act(in_summary).is_act is False
    as_intervention = trial(title="Transplant for AML", interventions=("Donor lymphocyte infusion",))
    result = act(as_intervention)
    assert (result.is_act, result.modality, result.cell_source) == (True, "other cell therapy", "allogeneic")


# ---- modality --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "modality"),
    [
        ("Anti-CD22 Chimeric Receptor T Cells in Pediatric B-ALL", "CAR-T"),  # NCT02315612
        ("CAR T Cell Receptor Immunotherapy for Patients With B-cell Lymphoma", "CAR-T"),  # NCT00924326
        ("E7 TCR T Cells for Human Papillomavirus-Associated Cancers", "TCR-T"),  # NCT02858310
        ("Immunotherapy Using Tumor Infiltrating Lymphocytes for Metastatic Melanoma", "TIL"),  # NCT01993719
        ("CAR-NK Cells in Relapsed B-cell Lymphoma", "CAR-NK/NK"),
        ("Haploidentical NK Cell Infusion in Acute Myeloid Leukemia", "CAR-NK/NK"),
        ("Cytokine-induced Killer Cells After Resection of Hepatocellular Carcinoma", "other cell therapy"),
        ("EBV-specific Cytotoxic T Lymphocytes for Nasopharyngeal Carcinoma", "other cell therapy"),
    ],
)
def test_modality_from_the_title(title: str, modality: str) -> None:
    result = act(trial(title=title))
    assert result.is_act is True
    assert result.modality == modality


def test_nci_tcr_title_with_a_til_summary_is_til() -> None:
    # NCT02133196: "T Cell Receptor Immunotherapy" in the title, TIL in the summary (hand label TIL).
    result = act(
        trial(
            title="T Cell Receptor Immunotherapy for Patients With Metastatic Non-Small Cell Lung Cancer",
            summary="These cells are called Tumor Infiltrating Lymphocytes, or TIL.",
        )
    )
    assert (result.modality, result.cell_source) == ("TIL", "autologous")


def test_engineered_t_cells_take_their_targets_default_modality() -> None:
    car = act(trial(title="Gene Therapy Using Anti-Her-2 Cells to Treat Metastatic Cancer"))  # NCT00924287
    tcr = act(trial(title="Anti-MART-1 and Anti-gp100 Cells for Metastatic Melanoma", summary=""))
    assert (car.modality, car.targets) == ("CAR-T", ("HER2",))
    assert (tcr.modality, tcr.targets) == ("TCR-T", ("MART-1", "gp100"))


# ---- targets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "targets"),
    [
        ("Interleukin-2 With 4SCAR19/22 T Cells", ("CD19", "CD22")),
        ("Study of CAR-20/19-T Cells in Relapsed B Cell Lymphoma", ("CD20", "CD19")),  # NCT03019055
        ("CD19/CD22 Chimeric Antigen Receptor (CAR) T Cells in Adults", ("CD19", "CD22")),
        ("CART19 for B Cell Lymphoma", ("CD19",)),
        ("Study of T Cells Targeting B-Cell Maturation Antigen for Myeloma", ("BCMA",)),  # NCT02215967
        ("KRAS G12V mTCR Cells in Pancreatic Cancer", ("KRAS",)),
        ("Anti-NY-ESO-1 TCR-engineered T Cells in Synovial Sarcoma", ("NY-ESO-1",)),
    ],
)
def test_targets_are_normalised(title: str, targets: tuple[str, ...]) -> None:
    assert act(trial(title=title)).targets == targets


def test_a_negative_or_prior_target_is_not_a_target() -> None:
    # NCT03407859: CD20/CD22/CD10 CAR-T after CD19 CAR-T for CD19-negative relapse.
    result = act(
        trial(
            title="Sequential Treatment With CD20/CD22/CD10-CART After CD19-CART Treatment in B-ALL",
            summary="CD19-negative B-ALL relapses after CD19 CAR T-cell treatment have occurred.",
        )
    )
    assert result.targets == ("CD20", "CD22", "CD10")


def test_a_named_product_settles_targets_and_cell_source() -> None:
    result = act(
        trial(title="A Safety and Efficacy Study Evaluating CTX120 in Multiple Myeloma")
    )  # NCT04244656
    assert (result.modality, result.targets, result.cell_source) == ("CAR-T", ("BCMA",), "allogeneic")
    liso = act(
        trial(title="JCAR017 in Aggressive B-cell NHL", criteria="Inclusion Criteria:\n* CD20 positive")
    )
    assert liso.targets == ("CD19",)


def test_inclusion_criteria_refine_targets_of_a_recognised_trial_only() -> None:
    # NCT00182650: "Cellular Adoptive Immunotherapy"; the criteria name CD19-specific T cells.
    result = act(
        trial(
            title="Cellular Adoptive Immunotherapy in Relapsed Follicular Lymphoma",
            criteria="* Patients may receive chemotherapy while waiting for CD19-specific T cells to be made",
        )
    )
    assert (result.is_act, result.modality, result.targets) == (True, "CAR-T", ("CD19",))
    exclusion_only = act(
        trial(
            title="Cellular Adoptive Immunotherapy in Relapsed Follicular Lymphoma",
            criteria="Inclusion Criteria:\n* Follicular NHL\nExclusion Criteria:\n* CD19-specific T-cells",
        )
    )
    assert exclusion_only.targets == ()


def test_evidence_says_what_matched_and_where() -> None:
    result = act(trial(title="Anti-CD19 CAR-T Cells", interventions=("autologous anti-CD19 CAR T cells",)))
    fields = {(e.kind, e.field) for e in result.evidence}
    assert ("modality", "title") in fields
    assert ("target", "interventions[0].name") in fields
    assert ("cell_source", "interventions[0].name") in fields
    assert result.cell_source == "autologous"
    assert result.vocabulary_version == load_vocabulary().version


# ---- text helpers -----------------------------------------------------------------------------


def test_inclusion_text_drops_exclusion_sections() -> None:
    text = "INCLUSION CRITERIA: A\nEXCLUSION CRITERIA: B\nInclusion Criteria: C\nExclusion: D"
    kept = inclusion_text(text)
    assert "A" in kept and "C" in kept and "B" not in kept and "D" not in kept


def test_phrases_tolerate_spaces_and_hyphens() -> None:
    import re

    pattern = re.compile(phrase_regex("CAR T"), re.IGNORECASE)
    assert pattern.search("CAR-T cells") and pattern.search("CAR T cells") and not pattern.search("CART")


# ---- the vocabulary file ---------------------------------------------------------------------------


def _vocab_data() -> dict[str, Any]:
    data = yaml.safe_load(VOCABULARY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "act-vocabulary.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_the_packaged_vocabulary_loads() -> None:
    vocab = load_vocabulary()
    assert vocab.version
    assert {"CD19", "BCMA", "MAGE-A4", "NY-ESO-1", "GD2", "HPV-16 E7", "KRAS"} <= vocab.target_ids


def test_an_unknown_key_is_rejected_naming_the_entry(tmp_path: Path) -> None:
    data = _vocab_data()
    data["terms"][0]["colour"] = "red"
    with pytest.raises(DataFileError) as err:
        load_vocabulary(_write(tmp_path, data))
    assert "act-vocabulary.yaml" in str(err.value) and data["terms"][0]["id"] in str(err.value)
    assert "colour" in str(err.value)


def test_a_bad_regex_is_rejected_naming_the_term(tmp_path: Path) -> None:
    data = _vocab_data()
    data["terms"][0]["regex"] = ["chimeric("]
    with pytest.raises(DataFileError) as err:
        load_vocabulary(_write(tmp_path, data))
    assert f"term {data['terms'][0]['id']}: regex[0]" in str(err.value)


def test_a_product_naming_an_unknown_target_is_rejected(tmp_path: Path) -> None:
    data = _vocab_data()
    data["products"][0]["targets"] = ["CD999"]
    with pytest.raises(DataFileError) as err:
        load_vocabulary(_write(tmp_path, data))
    assert "CD999" in str(err.value)


def test_a_source_must_cite_a_declared_reference(tmp_path: Path) -> None:
    data = _vocab_data()
    data["terms"][0]["source"] = {"ref": "nowhere", "verification": "V"}
    with pytest.raises(DataFileError) as err:
        load_vocabulary(_write(tmp_path, data))
    assert "nowhere" in str(err.value)
