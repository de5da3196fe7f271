"""Every clinical data file shipped in the package is read and validated by some loader.

A file no loader reads would be a rule nobody applies; a file that fails validation must fail
here, not in front of a user.
"""

from __future__ import annotations

from pathlib import Path

from actnav.knowledge import loader

DATA = Path(loader.__file__).resolve().parents[1] / "data"


def _load_everything() -> None:
    from actnav.care import plan_data
    from actnav.eligibility import facts
    from actnav.logistics import data as logistics_data
    from actnav.patient import lines, terminology
    from actnav.patient.notes import findings as note_findings
    from actnav.patient.notes import markers as note_markers
    from actnav.patient.notes import measures as note_measures
    from actnav.patient.notes import pipeline as note_pipeline
    from actnav.screen import omop
    from actnav.toxicity import crs, ctcae, guidance, icaht, icans, ice, iec_hs, risk
    from actnav.trials import parse, recognition

    loader.load_knowledge()
    lines.line_rule()
    facts.diagnosis_specificity()
    terminology.load_all()
    note_measures.measures_vocabulary()
    note_markers.markers_vocabulary()
    note_findings.findings_vocabulary()
    note_pipeline.target_rules()
    note_pipeline.context_rules()
    omop.omop_tables()
    crs.load_crs_table()
    icans.load_icans_table()
    icans.load_capd_table()
    ice.load_ice_table()
    ctcae.load_ctcae()
    icaht.load_icaht()
    iec_hs.load_iec_hs()
    risk.load_risk_scores()
    guidance.load_management()
    recognition.load_vocabulary()
    parse.load_rules()
    parse.trial_facts()
    plan_data.load_plan_content()
    plan_data.load_support_directory()
    logistics_data.load_vein_to_vein()


def test_every_shipped_yaml_file_is_read_by_a_loader() -> None:
    _load_everything()
    read = {Path(p).resolve() for p in loader.READ_FILES}
    shipped = {p.resolve() for p in DATA.rglob("*.yaml")}
    assert shipped, "no data files found"
    assert shipped - read == set(), "data files no loader reads"
