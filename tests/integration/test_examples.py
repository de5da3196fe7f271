"""The example patients in examples/patients/: read from FHIR, evaluated, verdicts as the labels say.

Each expected verdict rests on a label fact recorded in the actnav clinical reference, section 1
(shared/reference/clinical-reference.md); the section is cited in the table beside the verdict and
in examples/patients/README.md. The examples are evaluated as of 2026-11-29 (the myeloma
three-lines patient also as of 2023-06-01, before the April 2024 label changes).
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from actnav.eligibility.engine import Result
from actnav.eligibility.evaluate import evaluate_patient
from actnav.eligibility.report_model import Evaluation, IndicationResult, Verdict
from actnav.patient.fhir import read_bundle

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "patients"
AS_OF = date(2026, 11, 29)
BEFORE_APRIL_2024 = date(2023, 6, 1)
ELIGIBLE, NOT_ELIGIBLE, NEEDS_INFO = Verdict.ELIGIBLE, Verdict.NOT_ELIGIBLE, Verdict.NEEDS_INFORMATION

TISA, AXI, BREXU, LISO = (
    "tisagenlecleucel",
    "axicabtagene_ciloleucel",
    "brexucabtagene_autoleucel",
    "lisocabtagene_maraleucel",
)
IDE, CILTA, LIFI, AFAMI, OBE = (
    "idecabtagene_vicleucel",
    "ciltacabtagene_autoleucel",
    "lifileucel",
    "afamitresgene_autoleucel",
    "obecabtagene_autoleucel",
)


@cache
def evaluation(name: str, as_of: date = AS_OF) -> Evaluation:
    patient = read_bundle(EXAMPLES / f"{name}.json", as_of=as_of)
    return evaluate_patient(patient, as_of=as_of)


def indication(ev: Evaluation, product_id: str, disease: str, which: str | None = None) -> IndicationResult:
    """The one indication of ``product_id`` for ``disease`` in force on the evaluation date.

    ``which`` (the indication id, or a substring of it) picks one when a product has several indications
    for the same disease (second-line and third-line LBCL).
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


# (example, product, disease, which, expected verdict, the label fact it rests on)
# fmt: off
EXPECTED: list[tuple[str, str, str, str | None, Verdict, str]] = [
    # 34-year-old woman, B-ALL in second relapse after hyper-CVAD/POMP and blinatumomab.
    ("all-second-relapse-34f", BREXU, "b_all", None, ELIGIBLE,
     "1.3: adults (>= 18) with r/r B-cell precursor ALL"),
    ("all-second-relapse-34f", OBE, "b_all", None, ELIGIBLE, "1.9: adults with r/r B-cell precursor ALL"),
    ("all-second-relapse-34f", TISA, "b_all", None, NOT_ELIGIBLE, "1.1: ALL only up to 25 years of age"),
    # 19-year-old man, primary refractory B-ALL (induction failure, then refractory to blinatumomab).
    ("all-refractory-19m", TISA, "b_all", None, ELIGIBLE,
     "1.1: up to 25 years, refractory B-cell precursor ALL"),
    ("all-refractory-19m", BREXU, "b_all", None, ELIGIBLE, "1.3: adults with r/r B-cell precursor ALL"),
    ("all-refractory-19m", OBE, "b_all", None, ELIGIBLE, "1.9: adults with r/r B-cell precursor ALL"),
    # 22-year-old woman, first relapse of B-ALL, never refractory.
    ("all-first-relapse-22f", TISA, "b_all", None, NOT_ELIGIBLE,
     "1.1: first relapse, not refractory, is off-label"),
    ("all-first-relapse-22f", BREXU, "b_all", None, ELIGIBLE, "1.3: adults with r/r B-cell precursor ALL"),
    ("all-first-relapse-22f", OBE, "b_all", None, ELIGIBLE, "1.9: adults with r/r B-cell precursor ALL"),
    # 58-year-old man, DLBCL refractory to first-line R-CHOP.
    ("lbcl-primary-refractory-58m", AXI, "lbcl", "lbcl-second-line", ELIGIBLE,
     "1.2: LBCL refractory to first-line chemoimmunotherapy (ZUMA-7 indication)"),
    ("lbcl-primary-refractory-58m", LISO, "lbcl", "lbcl-second-line", ELIGIBLE,
     "1.4(a): LBCL refractory to first-line chemoimmunotherapy"),
    ("lbcl-primary-refractory-58m", AXI, "lbcl", "after-2-lines", NOT_ELIGIBLE,
     "1.2: the third-line indication needs >= 2 lines; 1 given"),
    ("lbcl-primary-refractory-58m", TISA, "lbcl", None, NOT_ELIGIBLE,
     "1.1: LBCL after >= 2 lines only; 1 given"),
    # 66-year-old man, MCL relapsed after BR (+ rituximab maintenance), progressing on ibrutinib.
    ("mcl-after-btki-66m", BREXU, "mcl", None, ELIGIBLE, "1.3: adults with r/r mantle cell lymphoma"),
    ("mcl-after-btki-66m", LISO, "mcl", None, ELIGIBLE,
     "1.4(4): r/r MCL after >= 2 lines including a BTK inhibitor"),
    # 61-year-old woman, CLL relapsed after ibrutinib, then venetoclax-obinutuzumab.
    ("cll-after-btki-venetoclax-61f", LISO, "cll_sll", None, ELIGIBLE,
     "1.4(2): r/r CLL/SLL after >= 2 lines including a BTK inhibitor and a BCL-2 inhibitor"),
    # 63-year-old man, myeloma after VRd + ASCT + lenalidomide maintenance, DPd, KCd (3 lines).
    ("myeloma-three-lines-63m", IDE, "multiple_myeloma", None, ELIGIBLE,
     "1.5: from 4/2024, >= 2 prior lines including an IMiD, a PI and an anti-CD38 antibody"),
    ("myeloma-three-lines-63m", CILTA, "multiple_myeloma", None, ELIGIBLE,
     "1.6: from 4/2024, >= 1 prior line including a PI and an IMiD, lenalidomide-refractory"),
    # 57-year-old woman, myeloma progressing on lenalidomide maintenance after VRd + ASCT (1 line).
    ("myeloma-len-refractory-57f", CILTA, "multiple_myeloma", None, ELIGIBLE,
     "1.6: >= 1 prior line including a PI and an IMiD, refractory to lenalidomide"),
    ("myeloma-len-refractory-57f", IDE, "multiple_myeloma", None, NOT_ELIGIBLE,
     "1.5: >= 2 prior lines and an anti-CD38 antibody needed; 1 line, no anti-CD38"),
    # 70-year-old woman, myeloma after VRd-lite/Rd and KPd, never an anti-CD38 antibody.
    ("myeloma-no-anti-cd38-70f", IDE, "multiple_myeloma", None, NOT_ELIGIBLE,
     "1.5: prior anti-CD38 antibody required"),
    ("myeloma-no-anti-cd38-70f", CILTA, "multiple_myeloma", None, ELIGIBLE,
     "1.6: anti-CD38 exposure is not required by the current indication; PI + IMiD, len-refractory"),
    # 42-year-old man, metastatic cutaneous melanoma progressing after nivolumab and ipilimumab.
    ("melanoma-braf-wt-42m", LIFI, "melanoma", None, ELIGIBLE,
     "1.7: unresectable/metastatic melanoma after a PD-1 blocking antibody; BRAF wild-type"),
    ("melanoma-braf-v600e-no-braf-inhibitor-42m", LIFI, "melanoma", None, NOT_ELIGIBLE,
     "1.7: BRAF V600-positive melanoma must also have had a BRAF inhibitor"),
    ("melanoma-braf-untested-42m", LIFI, "melanoma", None, NEEDS_INFO,
     "1.7: the BRAF rule cannot be decided without a BRAF V600 result"),
    # Synovial sarcoma after doxorubicin + ifosfamide, MAGE-A4 positive.
    ("synovial-sarcoma-a0201-mage-a4-39f", AFAMI, "synovial_sarcoma", None, ELIGIBLE,
     "1.8: metastatic synovial sarcoma, prior chemotherapy, HLA-A*02:01P, MAGE-A4 positive"),
    ("synovial-sarcoma-a0205-44m", AFAMI, "synovial_sarcoma", None, NOT_ELIGIBLE,
     "1.8: contraindicated with HLA-A*02:05P in either allele"),
]
# fmt: on


@pytest.mark.parametrize(
    ("example", "product", "disease", "which", "expected", "label"),
    EXPECTED,
    ids=[f"{e}-{p}-{w or d}" for e, p, d, w, _, _ in EXPECTED],
)
def test_example_verdict(
    example: str, product: str, disease: str, which: str | None, expected: Verdict, label: str
) -> None:
    ind = indication(evaluation(example), product, disease, which)
    assert ind.verdict is expected, f"{label}: got {ind.verdict}: {ind.reasons}"
    if expected is ELIGIBLE:
        assert not failed(ind) and not unknown(ind)
    else:
        assert ind.reasons


# (example, product, disease, words naming the only failed criteria, the label fact)
DECIDING: list[tuple[str, str, str, tuple[str, ...], str]] = [
    ("all-second-relapse-34f", TISA, "b_all", ("age",), "1.1: up to 25 years"),
    ("all-first-relapse-22f", TISA, "b_all", ("relapse",), "1.1: refractory or second or later relapse"),
    (
        "melanoma-braf-v600e-no-braf-inhibitor-42m",
        LIFI,
        "melanoma",
        ("braf",),
        "1.7: BRAF V600-positive needs a BRAF inhibitor",
    ),
    ("myeloma-no-anti-cd38-70f", IDE, "multiple_myeloma", ("cd38",), "1.5: IMiD, PI and anti-CD38"),
    ("synovial-sarcoma-a0205-44m", AFAMI, "synovial_sarcoma", ("02-05",), "1.8: A*02:05P contraindication"),
]


@pytest.mark.parametrize(
    ("example", "product", "disease", "words", "label"), DECIDING, ids=[f"{e}-{p}" for e, p, *_ in DECIDING]
)
def test_a_failing_example_fails_for_its_reason_only(
    example: str, product: str, disease: str, words: tuple[str, ...], label: str
) -> None:
    ind = indication(evaluation(example), product, disease)
    culprits = failed(ind)
    for word in words:
        assert any(word in c for c in culprits), (
            f"{label}: expected a criterion about {word!r}, got {culprits}"
        )
    others = [c for c in culprits if not any(word in c for word in words)]
    assert not others, f"{label}: other criteria also failed: {others} ({ind.reasons})"


def test_braf_v600e_reason_names_the_braf_criterion() -> None:
    ind = indication(evaluation("melanoma-braf-v600e-no-braf-inhibitor-42m"), LIFI, "melanoma")
    assert any("BRAF" in reason for reason in ind.reasons), ind.reasons


def test_no_anti_cd38_reason_names_the_anti_cd38_requirement() -> None:
    ind = indication(evaluation("myeloma-no-anti-cd38-70f"), IDE, "multiple_myeloma")
    assert any("CD38" in reason for reason in ind.reasons), ind.reasons


def test_braf_untested_melanoma_needs_braf_testing_only() -> None:
    # 1.7: without a BRAF result the BRAF clause is unknown; every other criterion is met.
    ev = evaluation("melanoma-braf-untested-42m")
    ind = indication(ev, LIFI, "melanoma")
    assert failed(ind) == []
    assert len(unknown(ind)) == 1 and "braf" in unknown(ind)[0]
    item = next((w for w in ev.workup if w.id == "braf_testing"), None)
    assert item is not None, [w.id for w in ev.workup]
    assert any("braf" in criterion for criterion in item.settles), item.settles


@pytest.mark.parametrize(
    "example",
    ["melanoma-braf-wt-42m", "melanoma-braf-v600e-no-braf-inhibitor-42m", "melanoma-braf-untested-42m"],
)
def test_a_melanoma_patient_is_not_sent_for_hla_typing(example: str) -> None:
    # HLA typing settles only Tecelra's criteria (1.8), which a melanoma patient cannot meet.
    ev = evaluation(example)
    assert "hla_typing" not in {w.id for w in ev.workup}
    assert indication(ev, AFAMI, "synovial_sarcoma").verdict is NOT_ELIGIBLE


def test_hodgkin_lymphoma_has_no_on_label_product() -> None:
    # No product in section 1 is approved for classical Hodgkin lymphoma: every indication in force
    # fails, and each names its diagnosis (or histology) criterion.
    ev = evaluation("hodgkin-lymphoma-30m")
    indications = [(p.id, i) for p in ev.products for i in p.indications]
    assert len(indications) >= 9
    for product_id, ind in indications:
        assert ind.verdict is NOT_ELIGIBLE, f"{product_id}/{ind.id}: {ind.verdict}"
        assert any(re.search("diagnosis|histology", c) for c in failed(ind)), (
            f"{product_id}/{ind.id}: {failed(ind)}"
        )


def test_myeloma_three_lines_before_the_april_2024_labels() -> None:
    # 1.5 / 1.6 / 1.11: until April 2024 Abecma needed >= 4 prior lines (incl. IMiD, PI, anti-CD38)
    # and Carvykti >= 4 prior lines (incl. PI, IMiD, anti-CD38). With 3 lines both fail on the count.
    ev = evaluation("myeloma-three-lines-63m", BEFORE_APRIL_2024)
    for product in (IDE, CILTA):
        ind = indication(ev, product, "multiple_myeloma")
        assert ind.verdict is NOT_ELIGIBLE, f"{product}: {ind.verdict} {ind.reasons}"
        assert [c for c in failed(ind) if "lines" in c] == failed(ind), failed(ind)
    assert ev.patient.prior_lines == 3


@pytest.mark.parametrize(
    ("example", "lines"),
    [
        ("all-second-relapse-34f", 2),  # hyper-CVAD + POMP (stated line 1); blinatumomab (line 2)
        ("all-refractory-19m", 2),  # induction; blinatumomab after induction failure
        ("lbcl-primary-refractory-58m", 1),  # R-CHOP
        ("mcl-after-btki-66m", 2),  # BR + rituximab maintenance; ibrutinib
        ("cll-after-btki-venetoclax-61f", 2),  # ibrutinib; venetoclax-obinutuzumab
        ("myeloma-three-lines-63m", 3),  # VRd + ASCT + lenalidomide maintenance; DPd; KCd
        ("myeloma-len-refractory-57f", 1),  # VRd + ASCT + lenalidomide maintenance
        ("myeloma-no-anti-cd38-70f", 2),  # VRd-lite then Rd continuation; KPd
        ("melanoma-braf-wt-42m", 2),  # adjuvant nivolumab; ipilimumab + nivolumab then nivolumab
        ("synovial-sarcoma-a0201-mage-a4-39f", 1),  # doxorubicin + ifosfamide
        ("all-first-relapse-22f", 1),  # CALGB 10403 induction to maintenance (stated line 1)
    ],
)
def test_prior_lines_are_counted_as_the_history_reads(example: str, lines: int) -> None:
    # Lines by the IMWG definition (data/rules/lines-of-therapy.yaml); corticosteroids do not count.
    assert evaluation(example).patient.prior_lines == lines


# -- the bundles themselves ----------------------------------------------------------------------

ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.json"))
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_every_example_is_covered_by_an_expected_verdict() -> None:
    covered = {e for e, *_ in EXPECTED} | {"hodgkin-lymphoma-30m"}
    assert set(ALL_EXAMPLES) == covered


@pytest.mark.parametrize("example", ALL_EXAMPLES)
def test_example_bundle_follows_the_input_conventions(example: str) -> None:
    bundle = json.loads((EXAMPLES / f"{example}.json").read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    entries = bundle["entry"]
    assert 20 <= len(entries) <= 60
    patients = [e for e in entries if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 1
    patient = patients[0]["resource"]
    assert "birthDate" in patient and "name" not in patient and "identifier" not in patient  # synthetic
    full_urls = {e["fullUrl"] for e in entries}
    assert len(full_urls) == len(entries)
    for entry in entries:
        resource = entry["resource"]
        assert resource.get("id"), resource
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        if "subject" in resource:
            assert resource["subject"]["reference"] == patients[0]["fullUrl"]
        for focus in resource.get("focus", []):
            assert focus["reference"] in full_urls
    dates = [s[:10] for s in _strings(bundle) if DATE.match(s)]
    assert max(dates) <= AS_OF.isoformat()
    if example == "myeloma-three-lines-63m":
        assert max(dates) < BEFORE_APRIL_2024.isoformat()


@pytest.mark.parametrize("example", ALL_EXAMPLES)
def test_example_reads_without_notes_of_unmapped_data(example: str) -> None:
    patient = read_bundle(EXAMPLES / f"{example}.json", as_of=AS_OF)
    assert patient.diagnoses and patient.therapies and patient.disease_status
    unmapped = [t.text for t in patient.therapies if t.anticancer and not t.classes]
    assert not unmapped, f"drugs without a class: {unmapped}"
    assert patient.skipped == {}, patient.skipped
    assert patient.notes == (), patient.notes


@pytest.mark.parametrize(
    ("example", "transplants"),
    [
        ("myeloma-three-lines-63m", ["autologous"]),
        ("myeloma-len-refractory-57f", ["autologous"]),
        ("hodgkin-lymphoma-30m", ["autologous"]),
        ("all-second-relapse-34f", []),  # a marrow biopsy Procedure is not a transplant
        ("synovial-sarcoma-a0201-mage-a4-39f", []),  # nor is a tumour excision
    ],
)
def test_only_transplant_procedures_are_read_as_transplants(example: str, transplants: list[str]) -> None:
    patient = read_bundle(EXAMPLES / f"{example}.json", as_of=AS_OF)
    assert [t.type for t in patient.transplants] == transplants
