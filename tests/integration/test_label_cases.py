"""Label boundaries, case by case: patients built directly as PatientRecord objects (no FHIR).

Each case sits at, just below or just above a boundary in an FDA label as recorded in the actnav
clinical reference, section 1 (shared/reference/clinical-reference.md). The expected verdict is
the label's, with the section cited beside it; the evaluator must use the label revision in force
on the evaluation date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from actnav.eligibility.engine import Result
from actnav.eligibility.evaluate import evaluate_patient
from actnav.eligibility.report_model import Evaluation, IndicationResult, Verdict
from actnav.patient.models import (
    Diagnosis,
    DiseaseStatusEvent,
    Finding,
    HlaAllele,
    PatientRecord,
    TherapyExposure,
)

AS_OF = date(2026, 11, 29)
ELIGIBLE, NOT_ELIGIBLE, NEEDS_INFO = Verdict.ELIGIBLE, Verdict.NOT_ELIGIBLE, Verdict.NEEDS_INFORMATION


# -- building blocks -----------------------------------------------------------------------------


def diagnosis(*concepts: str, text: str = "") -> Diagnosis:
    return Diagnosis(resource=f"Condition/{concepts[0]}", concepts=concepts, text=text or concepts[0])


def drug(agent: str, *classes: str, start: date, end: date | None = None) -> TherapyExposure:
    return TherapyExposure(
        resource=f"MedicationStatement/{agent}-{start.isoformat()}",
        text=agent,
        agents=(agent,),
        classes=classes,
        start=start,
        end=end,
    )


def status(kind: str, when: date, focus: str | None = None) -> DiseaseStatusEvent:
    return DiseaseStatusEvent(
        resource=f"Observation/{kind}-{when.isoformat()}",
        status=kind,
        date=when,  # type: ignore[arg-type]
        focus=focus,
    )


def record(birth: date = date(1970, 1, 1), **kw: Any) -> PatientRecord:
    return PatientRecord(id="label-case", birth_date=birth, sex="female", **kw)


def evaluation(patient: PatientRecord, as_of: date = AS_OF) -> Evaluation:
    return evaluate_patient(patient, as_of=as_of)


def indication(ev: Evaluation, product_id: str, disease: str, which: str | None = None) -> IndicationResult:
    """The one indication of ``product_id`` for ``disease`` in force on the evaluation date.

    ``which`` (the indication id, or a substring of it) picks one when a product has several indications
    for the same disease (e.g. second-line and third-line LBCL).
    """
    products = [p for p in ev.products if p.id == product_id]
    assert products, f"product {product_id} not evaluated; have {[p.id for p in ev.products]}"
    found = [i for i in products[0].indications if i.disease == disease and (which is None or which in i.id)]
    found = [i for i in found if i.id == which] or found  # an exact id wins over a substring
    assert len(found) == 1, (
        f"expected one {product_id} indication for {disease!r} (which={which!r}) on {ev.as_of}, found "
        f"{[i.id for i in found]} among {[(i.id, i.disease) for i in products[0].indications]}"
    )
    return found[0]


def failed(ind: IndicationResult) -> list[str]:
    return [c.id for c in ind.criteria if c.result is Result.NOT_MET]


def unknown(ind: IndicationResult) -> list[str]:
    return [c.id for c in ind.criteria if c.result is Result.UNKNOWN]


@dataclass(frozen=True)
class Case:
    """One label case: a patient, a date, the indication and the verdict the label gives."""

    name: str
    patient: Callable[[], PatientRecord]
    product: str
    disease: str
    expected: Verdict
    source: str  # the label fact the expected verdict rests on
    which: str | None = None
    as_of: date = AS_OF
    # Words naming the deciding criteria: each must be in a failed (or, for needs_information,
    # unknown) criterion id, and no other criterion may fail (the rest of the case is complete).
    failing: tuple[str, ...] = ()


# -- the patients --------------------------------------------------------------------------------


def refractory_b_all(birth: date) -> Callable[[], PatientRecord]:
    def build() -> PatientRecord:
        return record(
            birth=birth,
            diagnoses=(diagnosis("b_all", "all", "hematologic_malignancy"),),
            therapies=(drug("vincristine", "chemotherapy", start=date(2026, 6, 1)),),
            disease_status=(status("refractory", date(2026, 7, 1)),),
        )

    return build


def relapsed_dlbcl(lines: int) -> Callable[[], PatientRecord]:
    def build() -> PatientRecord:
        therapies = [
            drug("rituximab", "anti_cd20", start=date(2025, 1, 6), end=date(2025, 4, 21)),
            drug("doxorubicin", "chemotherapy", start=date(2025, 1, 6), end=date(2025, 4, 21)),
        ]
        events = [status("relapse", date(2025, 11, 3))]
        if lines >= 2:
            # R-ICE after the first relapse: a second line (new drugs after a relapse).
            therapies.append(
                drug("ifosfamide", "chemotherapy", start=date(2025, 11, 17), end=date(2026, 1, 5))
            )
            events.append(status("progression", date(2026, 9, 1)))
        return record(
            birth=date(1965, 3, 3),
            diagnoses=(diagnosis("dlbcl_nos", "lbcl", "b_cell_lymphoma", "hematologic_malignancy"),),
            therapies=tuple(therapies),
            disease_status=tuple(events),
        )

    return build


def myeloma_three_lines_triple_class() -> PatientRecord:
    """VRd, then daratumumab-pomalidomide-dex, then carfilzomib-dex: 3 lines, IMiD + PI + anti-CD38."""
    return record(
        birth=date(1960, 5, 5),
        diagnoses=(diagnosis("multiple_myeloma", "hematologic_malignancy"),),
        therapies=(
            drug("bortezomib", "proteasome_inhibitor", start=date(2019, 1, 7), end=date(2019, 6, 1)),
            drug("lenalidomide", "imid", start=date(2019, 1, 7), end=date(2020, 9, 1)),
            drug("daratumumab", "anti_cd38", start=date(2020, 10, 5), end=date(2022, 3, 1)),
            drug("pomalidomide", "imid", start=date(2020, 10, 5), end=date(2022, 3, 1)),
            drug("carfilzomib", "proteasome_inhibitor", start=date(2022, 4, 4), end=date(2023, 12, 1)),
        ),
        disease_status=(
            status("progression", date(2020, 9, 14)),
            status("progression", date(2022, 3, 14)),
            status("progression", date(2023, 12, 11)),
        ),
    )


def myeloma_four_lines_triple_class() -> PatientRecord:
    base = myeloma_three_lines_triple_class()
    extra = drug("selinexor", "xpo1_inhibitor", start=date(2024, 1, 8), end=date(2024, 2, 1))
    return base.model_copy(
        update={
            "therapies": (*base.therapies, extra),
            "disease_status": (*base.disease_status, status("progression", date(2024, 2, 12))),
        }
    )


def myeloma_one_line_len_refractory() -> PatientRecord:
    """VRd with lenalidomide maintenance, progressing on lenalidomide: 1 line, PI + IMiD, len-refractory."""
    maintenance = drug("lenalidomide", "imid", start=date(2022, 9, 5), end=date(2023, 11, 20))
    return record(
        birth=date(1968, 8, 8),
        diagnoses=(diagnosis("multiple_myeloma", "hematologic_malignancy"),),
        therapies=(
            drug("bortezomib", "proteasome_inhibitor", start=date(2022, 1, 10), end=date(2022, 5, 1)),
            drug("lenalidomide", "imid", start=date(2022, 1, 10), end=date(2022, 5, 1)),
            maintenance,
        ),
        disease_status=(status("refractory", date(2023, 11, 13), focus=maintenance.resource),),
    )


A0201 = HlaAllele(
    resource="Observation/hla", written="HLA-A*02:01:01:01", locus="A", fields=4, p_group="A*02:01P"
)
A0205 = HlaAllele(
    resource="Observation/hla", written="HLA-A*02:05:01", locus="A", fields=3, p_group="A*02:05P"
)
A0206 = HlaAllele(
    resource="Observation/hla", written="HLA-A*02:06:01", locus="A", fields=3, p_group="A*02:06P"
)
A2402 = HlaAllele(
    resource="Observation/hla", written="HLA-A*24:02:01", locus="A", fields=3, p_group_known_absent=True
)
A02_LOW = HlaAllele(resource="Observation/hla", written="HLA-A*02", locus="A", fields=1)
A24_LOW = HlaAllele(
    resource="Observation/hla", written="HLA-A*24", locus="A", fields=1, p_group_known_absent=True
)


def synovial_sarcoma(*alleles: HlaAllele) -> Callable[[], PatientRecord]:
    def build() -> PatientRecord:
        return record(
            birth=date(1986, 4, 4),
            diagnoses=(
                diagnosis("synovial_sarcoma", "sarcoma", "solid_tumor"),
                diagnosis("metastatic_disease", text="Secondary malignant neoplasm of lung"),
            ),
            therapies=(
                drug("doxorubicin", "chemotherapy", start=date(2025, 6, 2), end=date(2025, 9, 15)),
                drug("ifosfamide", "chemotherapy", start=date(2025, 6, 2), end=date(2025, 9, 15)),
            ),
            disease_status=(status("progression", date(2026, 9, 1)),),
            findings=(
                Finding(resource="Observation/mage", key="mage_a4", value="positive", date=date(2026, 10, 1)),
            ),
            hla=alleles,
        )

    return build


def metastatic_melanoma(*therapies: TherapyExposure, braf: str = "negative") -> Callable[[], PatientRecord]:
    def build() -> PatientRecord:
        return record(
            birth=date(1979, 2, 2),
            diagnoses=(
                diagnosis("cutaneous_melanoma", "melanoma", "solid_tumor"),
                diagnosis("metastatic_disease", text="Secondary malignant neoplasm of lung"),
            ),
            therapies=therapies,
            disease_status=(status("progression", date(2026, 9, 1)),),
            findings=(
                Finding(
                    resource="Observation/braf",
                    key="braf_v600",
                    value=braf,  # type: ignore[arg-type]
                    detail="p.V600E" if braf == "positive" else "",
                    date=date(2025, 1, 10),
                ),
            ),
        )

    return build


IPI = drug("ipilimumab", "anti_ctla4", start=date(2025, 3, 3), end=date(2025, 5, 5))
NIVO = drug("nivolumab", "anti_pd1", start=date(2025, 3, 3), end=date(2026, 8, 3))
DABRAFENIB = drug("dabrafenib", "braf_inhibitor", start=date(2025, 2, 3), end=date(2025, 12, 1))
TRAMETINIB = drug("trametinib", "mek_inhibitor", start=date(2025, 2, 3), end=date(2025, 12, 1))


# -- the cases -----------------------------------------------------------------------------------

CASES = [
    # Kymriah B-ALL: "up to 25 years of age" (clinical reference 1.1, indication 1; boundary [U],
    # encoded as completed years <= 25). Evaluated on 2026-11-29.
    Case(
        "tisa-all-age-25-on-the-day",
        refractory_b_all(date(2001, 11, 29)),
        "tisagenlecleucel",
        "b_all",
        ELIGIBLE,
        "1.1: up to 25 years; 25th birthday on the evaluation date -> 25",
    ),
    Case(
        "tisa-all-age-25-last-day",
        refractory_b_all(date(2000, 11, 30)),
        "tisagenlecleucel",
        "b_all",
        ELIGIBLE,
        "1.1: up to 25 years; the day before the 26th birthday is still 25",
    ),
    Case(
        "tisa-all-age-26",
        refractory_b_all(date(2000, 11, 29)),
        "tisagenlecleucel",
        "b_all",
        NOT_ELIGIBLE,
        "1.1: >25 years not established; 26th birthday on the evaluation date",
        failing=("age",),
    ),
    # Tecartus B-ALL: adults, "adult" = 18 years or older (1.3, indication 2).
    Case(
        "brexu-all-age-17-last-day",
        refractory_b_all(date(2008, 11, 30)),
        "brexucabtagene_autoleucel",
        "b_all",
        NOT_ELIGIBLE,
        "1.3: adults only; one day before the 18th birthday",
        failing=("age",),
    ),
    Case(
        "brexu-all-age-18-on-the-day",
        refractory_b_all(date(2008, 11, 29)),
        "brexucabtagene_autoleucel",
        "b_all",
        ELIGIBLE,
        "1.3: adults (>= 18 years); 18th birthday on the evaluation date",
    ),
    # Third-line LBCL: "after two or more lines of systemic therapy" (1.1 Kymriah, 1.2 Yescarta,
    # 1.4 Breyanzi (c)).
    *(
        Case(
            f"{product}-lbcl-3l-{lines}-line",
            relapsed_dlbcl(lines),
            product,
            "lbcl",
            ELIGIBLE if lines == 2 else NOT_ELIGIBLE,
            f"{section}: r/r LBCL after >= 2 lines; {lines} given",
            which="after-2-lines",
            failing=() if lines == 2 else ("lines",),
        )
        for product, section in (
            ("tisagenlecleucel", "1.1"),
            ("axicabtagene_ciloleucel", "1.2"),
            ("lisocabtagene_maraleucel", "1.4"),
        )
        for lines in (1, 2)
    ),
    # Abecma: >= 4 prior lines (2021 label) until April 2024, then >= 2 lines incl. IMiD, PI and
    # anti-CD38 (1.5, 1.11).
    Case(
        "ide-cel-3-lines-before-april-2024",
        myeloma_three_lines_triple_class,
        "idecabtagene_vicleucel",
        "multiple_myeloma",
        NOT_ELIGIBLE,
        "1.5/1.11: 2021 label needs >= 4 prior lines; 3 given",
        as_of=date(2024, 3, 1),
        failing=("lines",),
    ),
    Case(
        "ide-cel-4-lines-before-april-2024",
        myeloma_four_lines_triple_class,
        "idecabtagene_vicleucel",
        "multiple_myeloma",
        ELIGIBLE,
        "1.5: 2021 label, >= 4 prior lines incl. IMiD, PI, anti-CD38",
        as_of=date(2024, 3, 1),
    ),
    Case(
        "ide-cel-3-lines-after-april-2024",
        myeloma_three_lines_triple_class,
        "idecabtagene_vicleucel",
        "multiple_myeloma",
        ELIGIBLE,
        "1.5/1.11: from 4/2024 >= 2 prior lines incl. IMiD, PI, anti-CD38",
        as_of=date(2024, 6, 1),
    ),
    # Carvykti: >= 4 prior lines incl. PI, IMiD, anti-CD38 (2022) until April 2024, then >= 1 line
    # incl. PI and IMiD and refractory to lenalidomide (1.6, 1.11).
    Case(
        "cilta-cel-1-line-len-refractory-before-april-2024",
        myeloma_one_line_len_refractory,
        "ciltacabtagene_autoleucel",
        "multiple_myeloma",
        NOT_ELIGIBLE,
        "1.6/1.11: 2022 label needs >= 4 prior lines incl. anti-CD38; 1 line, no anti-CD38 given",
        as_of=date(2024, 3, 1),
        failing=("lines", "cd38"),
    ),
    Case(
        "cilta-cel-1-line-len-refractory-after-april-2024",
        myeloma_one_line_len_refractory,
        "ciltacabtagene_autoleucel",
        "multiple_myeloma",
        ELIGIBLE,
        "1.6/1.11: from 4/2024 >= 1 line incl. PI and IMiD, lenalidomide-refractory",
        as_of=date(2024, 6, 1),
    ),
    # Tecelra: HLA-A*02:01P/02:02P/02:03P/02:06P positive; contraindicated with A*02:05P in either
    # allele; matched at P-group level, so 1-field typing cannot decide (1.8).
    Case(
        "afami-cel-a0206",
        synovial_sarcoma(A0206, A2402),
        "afamitresgene_autoleucel",
        "synovial_sarcoma",
        ELIGIBLE,
        "1.8: A*02:06P is an eligible allele group",
    ),
    Case(
        "afami-cel-a0201-a0205",
        synovial_sarcoma(A0201, A0205),
        "afamitresgene_autoleucel",
        "synovial_sarcoma",
        NOT_ELIGIBLE,
        "1.8: contraindicated, A*02:05P in either allele",
        failing=("02-05",),
    ),
    Case(
        "afami-cel-a0205-homozygous",
        synovial_sarcoma(A0205, A0205),
        "afamitresgene_autoleucel",
        "synovial_sarcoma",
        NOT_ELIGIBLE,
        "1.8: A*02:05P homozygous: no eligible group and contraindicated",
        failing=("hla-a02-eligible", "02-05"),
    ),
    Case(
        "afami-cel-a02-low-resolution",
        synovial_sarcoma(A02_LOW, A24_LOW),
        "afamitresgene_autoleucel",
        "synovial_sarcoma",
        NEEDS_INFO,
        "1.8: P-group matching needs high-resolution typing",
        failing=("hla",),
    ),
    # Amtagvi: previously treated with a PD-1 blocking antibody; if BRAF V600-positive also a BRAF
    # inhibitor (1.7). Anti-CTLA-4 alone does not satisfy the anti-PD-1 requirement.
    Case(
        "lifileucel-anti-ctla4-alone",
        metastatic_melanoma(IPI),
        "lifileucel",
        "melanoma",
        NOT_ELIGIBLE,
        "1.7: prior anti-CTLA-4 alone is not a PD-1 blocking antibody",
        failing=("pd1",),
    ),
    Case(
        "lifileucel-ipilimumab-nivolumab",
        metastatic_melanoma(IPI, NIVO),
        "lifileucel",
        "melanoma",
        ELIGIBLE,
        "1.7: prior anti-PD-1, BRAF wild-type",
    ),
    Case(
        "lifileucel-braf-v600-no-braf-inhibitor",
        metastatic_melanoma(NIVO, braf="positive"),
        "lifileucel",
        "melanoma",
        NOT_ELIGIBLE,
        "1.7: BRAF V600-positive needs a prior BRAF inhibitor",
        failing=("braf",),
    ),
    Case(
        "lifileucel-braf-v600-after-dabrafenib-trametinib",
        metastatic_melanoma(DABRAFENIB, TRAMETINIB, NIVO, braf="positive"),
        "lifileucel",
        "melanoma",
        ELIGIBLE,
        "1.7: BRAF V600-positive after a BRAF inhibitor (+/- MEK inhibitor) and anti-PD-1",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_label_case(case: Case) -> None:
    ind = indication(evaluation(case.patient(), case.as_of), case.product, case.disease, case.which)
    assert ind.verdict is case.expected, f"{case.source}: got {ind.verdict} ({ind.reasons})"
    if case.expected is ELIGIBLE:
        assert ind.reasons == []
    else:
        assert ind.reasons, "a verdict other than eligible must give its reasons"
    culprits = failed(ind) if case.expected is NOT_ELIGIBLE else unknown(ind)
    for word in case.failing:
        assert any(word in c for c in culprits), (
            f"{case.source}: expected a criterion about {word!r} to decide, got {culprits}"
        )
    if case.expected is NOT_ELIGIBLE:
        others = [c for c in culprits if not any(word in c for word in case.failing)]
        assert not others, f"{case.source}: other criteria also failed: {others}"


def test_the_label_revision_in_force_is_the_one_evaluated() -> None:
    # 1.11: Abecma's and Carvykti's myeloma indications were replaced in April 2024; exactly one
    # myeloma indication per product is in force on each side of the change.
    for as_of in (date(2024, 3, 1), date(2024, 6, 1)):
        ev = evaluation(myeloma_three_lines_triple_class(), as_of)
        for product in ("idecabtagene_vicleucel", "ciltacabtagene_autoleucel"):
            ind = indication(ev, product, "multiple_myeloma")
            assert ind.effective_from <= as_of
    old = indication(
        evaluation(myeloma_three_lines_triple_class(), date(2024, 3, 1)),
        "idecabtagene_vicleucel",
        "multiple_myeloma",
    )
    new = indication(
        evaluation(myeloma_three_lines_triple_class(), date(2024, 6, 1)),
        "idecabtagene_vicleucel",
        "multiple_myeloma",
    )
    assert old.id != new.id
    assert old.effective_from < new.effective_from


def test_a_low_resolution_hla_type_sends_the_patient_for_hla_typing() -> None:
    ev = evaluation(synovial_sarcoma(A02_LOW, A24_LOW)())
    assert "hla_typing" in {w.id for w in ev.workup}
