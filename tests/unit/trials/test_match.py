"""Trial matching: structured criteria, verdict rule, needs-review display, geo, pre-filter, ranking.

Values come from the records they cite (ClinicalTrials.gov via the bundled offline records) or are
built here from first principles (haversine on known coordinates).
"""

from __future__ import annotations

from datetime import date

import pytest

from actnav.eligibility.engine import Result
from actnav.eligibility.facts import PatientFacts
from actnav.eligibility.report_model import Verdict
from actnav.errors import InputError
from actnav.knowledge.loader import load_facts
from actnav.knowledge.models import Criterion
from actnav.patient.models import Diagnosis, Finding, PatientRecord
from actnav.trials.criteria_text import CriterionText
from actnav.trials.geo import GeoPoint, haversine_km, nearest_site, parse_near, recruiting_sites
from actnav.trials.match import TrialIndex, match_trial, structured_criteria
from actnav.trials.models import Site, TrialRecord
from actnav.trials.parse import ParsedCriterion
from actnav.trials.recognition import ActClassification

AS_OF = date(2026, 11, 29)
CAR_T_CD19 = ActClassification(is_act=True, modality="CAR-T", targets=("CD19",), cell_source="autologous")
B_ALL = Diagnosis(resource="Condition/dx", concepts=("b_all", "all", "hematologic_malignancy"), text="B-ALL")
DLBCL = Diagnosis(
    resource="Condition/dx",
    concepts=("dlbcl_nos", "lbcl", "b_cell_lymphoma", "hematologic_malignancy"),
    text="DLBCL",
)


def facts(birth: date = date(1992, 5, 4), **kw: object) -> PatientFacts:
    record = PatientRecord(id="p1", birth_date=birth, **kw)  # type: ignore[arg-type]
    return PatientFacts(record, AS_OF, load_facts())


def record(nct: str = "NCT00000001", **kw: object) -> TrialRecord:
    base: dict[str, object] = {
        "nct_id": nct,
        "title": "A CD19 CAR-T trial",
        "source_format": "trialgpt_flat",
        "raw": {},
    }
    base.update(kw)
    return TrialRecord.model_validate(base)


def parsed(
    section: str, text: str, criterion: Criterion, status: str = "typed", index: int = 0
) -> ParsedCriterion:
    ct = CriterionText(section=section, text=text, index=index, span=(0, len(text)))  # type: ignore[arg-type]
    return ParsedCriterion(source=ct, criterion=criterion, status=status)  # type: ignore[arg-type]


def diagnosis_leaf(*concepts: str, cid: str = "inc0") -> Criterion:
    return Criterion(id=cid, text="Diagnosis", fact="diagnosis", op="has_any", value=concepts)


def review_leaf(text: str, cid: str = "inc1.r") -> Criterion:
    return Criterion(
        id=cid, text=text, fact="needs_review", op="eq", value=True, remarks=f"needs review: {text}"
    )


# --- structured criteria --------------------------------------------------------------------------


def test_structured_age_limits_are_inclusive_in_completed_years() -> None:
    crits = structured_criteria(record(minimum_age_years=18.0, maximum_age_years=34.0, sex="FEMALE"))
    assert [(c.fact, c.op, c.value) for c in crits] == [
        ("age_years", "ge", 18),
        ("age_years", "le", 34),
        ("sex", "eq", "female"),
    ]
    m = match_trial(
        facts(sex="female"), record(minimum_age_years=18.0, maximum_age_years=34.0), (), CAR_T_CD19
    )
    assert m.verdict is Verdict.ELIGIBLE  # 34 years old on 2026-11-29: the maximum age admits 34


def test_a_limit_in_months_is_unknown_only_in_the_year_it_falls_in() -> None:
    # "6 Months" = 0.5 years: a 0-year-old may be 3 or 9 months old.
    trial = record(minimum_age_years=0.5)
    baby = match_trial(facts(birth=date(2026, 5, 1)), trial, (), CAR_T_CD19)
    assert baby.verdict is Verdict.NEEDS_INFORMATION
    child = match_trial(facts(birth=date(2024, 5, 1)), trial, (), CAR_T_CD19)
    assert child.verdict is Verdict.ELIGIBLE


# --- verdict rule and what it shows -----------------------------------------------------------------


def test_a_diagnosis_criterion_not_met_makes_the_trial_not_eligible_and_is_named() -> None:
    crit = parsed("inclusion", "Relapsed or refractory DLBCL", diagnosis_leaf("dlbcl_nos", "lbcl"))
    m = match_trial(facts(diagnoses=(B_ALL,)), record(), (crit,), CAR_T_CD19)
    assert m.verdict is Verdict.NOT_ELIGIBLE
    assert m.reasons[0].startswith("Inclusion: Relapsed or refractory DLBCL: not met")


def test_a_criterion_actnav_could_not_read_is_unknown_and_shown_as_needs_review() -> None:
    text = "Ability to give informed consent"
    crit = parsed("inclusion", text, review_leaf(text), status="review")
    m = match_trial(facts(diagnoses=(B_ALL,)), record(), (crit,), CAR_T_CD19)
    assert m.verdict is Verdict.NEEDS_INFORMATION
    row = m.criteria[-1]
    assert row.result.result is Result.UNKNOWN
    assert row.result.needs == f"unknown: needs review: {text}"
    assert row.text == text and row.parse_status == "review"
    assert m.counts["needs_review"] == 1
    assert [w.id for w in m.workup] == ["criterion_review"]


def test_donor_criteria_are_shown_but_not_counted() -> None:
    ct = CriterionText(
        section="inclusion", text="Donor: HLA-identical sibling", index=0, span=(0, 1), population="donor"
    )
    crit = ParsedCriterion(source=ct, criterion=review_leaf("Donor: HLA-identical sibling"), status="review")
    m = match_trial(facts(diagnoses=(B_ALL,)), record(), (crit,), CAR_T_CD19)
    assert m.verdict is Verdict.ELIGIBLE
    assert not m.criteria[-1].counted


def test_a_deceased_patient_is_not_eligible() -> None:
    m = match_trial(facts(deceased=True), record(), (), CAR_T_CD19)
    assert m.verdict is Verdict.NOT_ELIGIBLE and "deceased" in m.reasons[0]


def test_a_trial_for_the_patients_disease_with_its_modality_and_target_is_fully_relevant() -> None:
    trial = record(conditions=("B Acute Lymphoblastic Leukemia",))
    m = match_trial(facts(diagnoses=(B_ALL,)), trial, (), CAR_T_CD19)
    # B-ALL: acute lymphoblastic leukaemia matches; CAR-T and CD19 are those of the approved B-ALL products.
    assert m.relevance == pytest.approx(1.0)
    assert m.score == pytest.approx(100.0)
    assert any(w.startswith("Diagnosis: the trial is for") for w in m.why_listed)
    assert any(w.startswith("Target: CD19") for w in m.why_listed)


def test_a_tested_antigen_decides_only_itself() -> None:
    cd19 = Finding(resource="Observation/f", key="antigen_cd19", value="positive", date=date(2026, 11, 1))
    f = facts(findings=(cd19,))

    def need(code: str) -> ParsedCriterion:
        leaf = Criterion(id="inc0", text=code, fact="tumor_antigens", op="has_all", value=(code,))
        return parsed("inclusion", f"{code} positive", leaf)

    assert match_trial(f, record(), (need("cd19"),), CAR_T_CD19).verdict is Verdict.ELIGIBLE
    assert match_trial(f, record(), (need("cd22"),), CAR_T_CD19).verdict is Verdict.NEEDS_INFORMATION


# --- geo --------------------------------------------------------------------------------------------


def test_haversine_between_two_known_points() -> None:
    # Big Ben (51.5007 N, 0.1246 W) to the Statue of Liberty (40.6892 N, 74.0445 W): about 5,575 km.
    assert haversine_km(51.5007, -0.1246, 40.6892, -74.0445) == pytest.approx(5575, abs=5)
    # One degree of latitude on the mean sphere: 2 * pi * 6371.0088 / 360 = 111.195 km.
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.195, abs=0.001)


def test_near_reads_coordinates_and_us_zip_codes_offline() -> None:
    point = parse_near("39.74,-104.98")
    assert (point.lat, point.lon) == (39.74, -104.98)
    denver = parse_near("80218")
    assert "Denver" in denver.label
    assert haversine_km(denver.lat, denver.lon, 39.73915, -104.9847) < 5


@pytest.mark.parametrize("value", ["00000", "not a place", "95,200"])
def test_an_unknown_near_is_an_input_error_naming_the_option(value: str) -> None:
    with pytest.raises(InputError) as err:
        parse_near(value)
    assert err.value.where == "--near"


def test_the_nearest_site_is_a_recruiting_one() -> None:
    sites = (
        Site(city="Denver", status="COMPLETED", lat=39.74, lon=-104.98),
        Site(city="Aurora", status="RECRUITING", lat=39.73, lon=-104.83),
        Site(city="Boston", status="RECRUITING", lat=42.36, lon=-71.06),
    )
    trial = record(sites=sites, overall_status="RECRUITING")
    found = nearest_site(GeoPoint(39.74, -104.98, "Denver"), recruiting_sites(trial))
    assert found is not None and found.site.city == "Aurora"


# --- the index: pre-filter, ranking -------------------------------------------------------------------


def _index() -> TrialIndex:
    lymphoma = (
        parsed("inclusion", "Relapsed DLBCL", diagnosis_leaf("dlbcl_nos")),
        parsed("inclusion", "Informed consent", review_leaf("Informed consent"), status="review", index=1),
    )
    all_trial = (parsed("inclusion", "Relapsed B-ALL", diagnosis_leaf("b_all")),)
    texts = {"lymphoma": lymphoma, "all": all_trial, "": ()}
    records = [
        (
            record("NCT00000001", eligibility_text="lymphoma", conditions=("Diffuse Large B-Cell Lymphoma",)),
            CAR_T_CD19,
        ),
        (
            record("NCT00000002", eligibility_text="all", conditions=("B Acute Lymphoblastic Leukemia",)),
            CAR_T_CD19,
        ),
        (record("NCT00000003", eligibility_text="", maximum_age_years=21.0), CAR_T_CD19),
        (
            record(
                "NCT00000004",
                eligibility_text="all",
                sites=(Site(status="RECRUITING", lat=39.7, lon=-105.0),),
                overall_status="RECRUITING",
                conditions=("B Acute Lymphoblastic Leukemia",),
            ),
            CAR_T_CD19,
        ),
    ]
    return TrialIndex.build(records, parse=lambda text: texts[text])


def test_the_pre_filter_gives_the_verdicts_of_the_full_evaluation() -> None:
    index = _index()
    for dx in (B_ALL, DLBCL):
        f = facts(diagnoses=(dx,))
        fast, full = index.rank(f), index.rank(facts(diagnoses=(dx,)), full=True)
        assert fast.verdicts.tolist() == full.verdicts.tolist()
        for m, pos in zip(index.matches(f, fast), fast.order.tolist(), strict=True):
            assert m.verdict is fast.verdict(pos)


def test_ranking_puts_eligible_first_then_the_nearest() -> None:
    index = _index()
    f = facts(diagnoses=(B_ALL,))
    ranked = index.rank(f, near=GeoPoint(39.74, -104.98, "Denver"))
    ids = [index.trials[p].record.nct_id for p in ranked.order.tolist()]
    # Both B-ALL trials are eligible and equally relevant: the one with a recruiting site nearby first;
    # the 21-year age limit and the lymphoma diagnosis make the other two not eligible.
    assert ids[:2] == ["NCT00000004", "NCT00000002"]
    assert [ranked.verdict(p) for p in ranked.order.tolist()] == [
        Verdict.ELIGIBLE,
        Verdict.ELIGIBLE,
        Verdict.NOT_ELIGIBLE,
        Verdict.NOT_ELIGIBLE,
    ]
    within = index.rank(f, near=GeoPoint(39.74, -104.98, "Denver"), radius_km=50)
    assert within.checked == 1


def test_status_and_modality_filters() -> None:
    index = _index()
    f = facts(diagnoses=(B_ALL,))
    assert index.rank(f, statuses=("RECRUITING",)).checked == 1
    assert index.rank(f, modality="TIL").checked == 0
    assert index.rank(f, modality="CAR-T").checked == 4
