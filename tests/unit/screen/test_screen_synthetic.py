"""The synthetic population: deterministic, readable by the importer, spread across diseases."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import date
from pathlib import Path

from actnav.eligibility.facts import PatientFacts, age_in_years
from actnav.knowledge.loader import load_knowledge
from actnav.screen.records import record_from_resources
from actnav.screen.synthetic import generate, write_bulk

AS_OF = date(2026, 11, 29)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    write_bulk(tmp_path / "a", 50, seed=4, as_of=AS_OF)
    write_bulk(tmp_path / "b", 50, seed=4, as_of=AS_OF)
    write_bulk(tmp_path / "c", 50, seed=5, as_of=AS_OF)
    for name in ("Patient.ndjson", "Observation.ndjson", "MedicationStatement.ndjson"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_prefix_stable() -> None:
    assert list(generate(20, seed=2, as_of=AS_OF)) == list(generate(40, seed=2, as_of=AS_OF))[:20]


def test_population_is_readable_and_spread() -> None:
    kb = load_knowledge()
    records = [record_from_resources(r, as_of=AS_OF) for r in generate(400, seed=9, as_of=AS_OF)]
    concepts = Counter(c for r in records for d in r.diagnoses for c in d.concepts)
    for concept in ("b_all", "dlbcl_nos", "fl", "mcl", "cll", "multiple_myeloma", "cutaneous_melanoma",
                    "synovial_sarcoma", "breast_cancer"):  # fmt: skip
        assert concepts[concept] > 0, concept
    ages = [age_in_years(r.birth_date, AS_OF) for r in records]
    assert min(ages) >= 2 and max(ages) <= 95
    assert 45 <= statistics.median(ages) <= 70
    lines = Counter(PatientFacts(r, AS_OF, kb.facts)("prior_lines").value for r in records)
    assert len(lines) >= 4  # several lines of therapy are represented
    keys = Counter(m.key for r in records for m in r.measurements)
    for key in ("anc", "platelets", "creatinine", "bilirubin", "alt", "lvef", "ecog"):
        assert keys[key] > 200, key
    assert any(r.transplants for r in records)
    assert any(r.hla for r in records)
    assert any(f.key == "braf_v600" for r in records for f in r.findings)
    assert all(m.date is not None and m.date <= AS_OF for r in records for m in r.measurements)
