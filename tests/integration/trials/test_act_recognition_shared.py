"""ACT recognition on real records, against hand labels (actnav.trials.recognition.classify).

* The 56 real ACT trial records (packaged copies of ../shared/data/ctgov-act-trials and
  trialgpt2-act-sample-records) must be ACT with the hand-labelled modality and at least the
  hand-labelled targets: tests/fixtures/trials/act-hand-labels.yaml transcribes the ``act_type``
  column of index.tsv (checked here against the file when ../shared is present).
* The 1,602 HINT oncology trials (../shared/data/hint-top-trial-outcome, non-commercial licence,
  read here only): no trial whose criteria merely mention T cells, NK cells or cell therapy may be
  classified ACT; the real ACT trials among them named in its SOURCE.md are found.

Tests reading ../shared skip with a reason when it is absent, except in CI (``CI=true``).
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from actnav.trials.models import Intervention, TrialRecord
from actnav.trials.recognition import classify
from actnav.trials.sources import iter_bundled_records

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT / ".." / "shared"
LABELS_FILE = ROOT / "tests" / "fixtures" / "trials" / "act-hand-labels.yaml"

# Real ACT trials among the HINT rows, per hint-top-trial-outcome/SOURCE.md ("by drug list only
# about 5-7 are real ACT trials") and each row's drug list.
HINT_REAL_ACT = {
    "NCT00924001": "DMF5 melanoma-reactive TIL (drug list)",
    "NCT02354690": "TIL infusion + vemurafenib (drug list)",
    "NCT03672851": "anti-CD123 CAR-T (drug list)",
    "NCT01050764": "regulatory and conventional T cells after transplant (drug list)",
    "NCT00610311": "lymphodepletion + cell transfer (criteria only: not recognisable from drugs)",
    "NCT00625729": "lymphodepletion + cell transfer (criteria only: not recognisable from drugs)",
    "NCT00963872": "lymphodepletion + cell transfer (criteria only: not recognisable from drugs)",
}
MUST_FIND = ("NCT00924001", "NCT02354690", "NCT03672851")
MENTION = re.compile(
    r"\b(?:T[\s-]?cells?|NK[\s-]?cells?|natural killer|T[\s-]?lymphocytes?|CAR[\s-]?T|chimeric antigen|"
    r"tumou?r[\s-]infiltrating|TILs?|adoptive|cell(?:ular)? therapy|lymphocyte infusion|T[\s-]?cell)\b",
    re.IGNORECASE,
)


def require_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing (the shared data folder is required in CI)")
        pytest.skip(f"{path} is missing: the shared data folder is needed for this test")
    return path


def labels() -> list[dict[str, Any]]:
    data = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    entries = data["labels"]
    assert isinstance(entries, list)
    return entries


LABELS = labels()
RECORDS = {r.record.nct_id: r.record for r in iter_bundled_records() if r.record is not None}
ALIASES = {"HER2": ("HER2",), "EpCAM": ("EPCAM",), "Claudin 18.2": ("Claudin18.2",)}


def test_the_labels_cover_the_56_act_records() -> None:
    assert len(LABELS) == 56
    act_ids = {n for n, r in RECORDS.items() if r.source_format == "trialgpt_flat"}
    assert {e["nct_id"] for e in LABELS} == act_ids


def test_the_transcribed_labels_match_index_tsv() -> None:
    index = require_shared("data", "ctgov-act-trials", "index.tsv")
    with index.open(encoding="utf-8", newline="") as fh:
        act_type = {row["nctid"]: row["act_type"] for row in csv.DictReader(fh, delimiter="\t")}
    from_index = [e for e in LABELS if e["label_source"] == "ctgov-act-trials/index.tsv"]
    assert len(from_index) == 50
    for entry in from_index:
        text = act_type[entry["nct_id"]]
        assert entry["act_type"] == text
        assert text.startswith(entry["modality"]), entry["nct_id"]
        for target in entry["targets"]:
            names = ALIASES.get(target, (target,))
            assert any(n.lower() in text.lower() for n in names), (entry["nct_id"], target)


@pytest.mark.parametrize("label", LABELS, ids=[e["nct_id"] for e in LABELS])
def test_each_act_record_gets_its_hand_labelled_modality_and_targets(label: dict[str, Any]) -> None:
    result = classify(RECORDS[label["nct_id"]])
    assert result.is_act, label["act_type"]
    assert result.modality == label["modality"], label["act_type"]
    missing = set(label["targets"]) - set(result.targets)
    assert not missing, f"{label['act_type']}: missing {sorted(missing)}, got {result.targets}"
    if "cell_source" in label:
        assert result.cell_source == label["cell_source"]


def test_the_v2_samples_are_not_act() -> None:
    for nct in ("NCT02576665", "NCT06382129", "NCT06604689"):
        assert classify(RECORDS[nct]).is_act is False, nct


def _list(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return [text]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else [text]


def hint_records() -> list[tuple[TrialRecord, dict[str, Any]]]:
    path = require_shared("data", "hint-top-trial-outcome", "top_oncology_trials.jsonl.gz")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            # HINT rows have no title or summary: diseases, drugs and criteria are all there is.
            record = TrialRecord(
                nct_id=row["nctid"],
                title="",
                conditions=tuple(_list(row["diseases"])),
                interventions=tuple(Intervention(name=d) for d in _list(row["drugs"])),
                eligibility_text=row["criteria"],
                source_format="trialgpt_flat",
                raw={},
            )
            out.append((record, row))
    return out


def test_hint_trials_that_only_mention_t_or_nk_cells_are_not_act() -> None:
    rows = hint_records()
    assert len(rows) == 1602
    positives = {record.nct_id for record, _ in rows if classify(record).is_act}
    mentioning = {record.nct_id for record, row in rows if MENTION.search(row["criteria"])}
    assert len(mentioning) > 50  # not vacuous: 94 trials mention T/NK cells or cell therapy in criteria
    false_positives = positives - set(HINT_REAL_ACT)
    assert not false_positives, sorted(false_positives)
    assert not (positives & mentioning) - set(HINT_REAL_ACT)
    assert set(MUST_FIND) <= positives
