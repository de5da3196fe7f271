"""Rebuild the packaged offline trial records from ../shared (run by hand, never at run time).

Writes ``src/actnav/data/trials/bundled/act-trials.ndjson.gz`` (one raw record per line, content
unchanged, compact JSON, gzip with a zero timestamp so rebuilding gives the same bytes) and its
``SOURCE.md`` (origin, commit, licence, date, and a manifest with the SHA-256 of each source file).

Sources (each with its SOURCE.md in ../shared/data):

* ``ctgov-act-trials/*.json``: 50 ACT trial records (TrialGPT 2.0 flattened JSON).
* ``trialgpt2-act-sample-records/trials/*.json``: 6 more ACT trial records (same shape).
* ``ctgov-v2-samples/*.json``: 3 ClinicalTrials.gov API v2 study records (not ACT).

``hint-top-trial-outcome`` is licensed for non-commercial use and is never bundled.

Usage::

    python scripts/bundle_act_trials.py [--shared ../shared] [--date YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import io
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "src" / "actnav" / "data" / "trials" / "bundled"
GROUPS = (
    ("ctgov-act-trials", "ctgov-act-trials/*.json"),
    ("trialgpt2-act-sample-records", "trialgpt2-act-sample-records/trials/*.json"),
    ("ctgov-v2-samples", "ctgov-v2-samples/*.json"),
)

SOURCE_HEAD = """\
# Bundled trial records (offline default)

`act-trials.ndjson.gz`: {count} real ClinicalTrials.gov records, one JSON object per line, each
the source file's JSON content unchanged (re-serialised compactly; keys in their original order).
Read by `actnav.trials.sources.iter_bundled_records()` and imported by
`actnav.trials.cli.load_bundled_trials()`. Rebuilt by `scripts/bundle_act_trials.py` on {date}.

## Origin

(see the SOURCE.md of each folder in `../shared/data/`)

* `ctgov-act-trials` ({n_act} records): GitHub `TrialGPT2/TrialGPT2.0` (mirror of
  `NLM-DIR/TrialGPT2`), commit `2ebcccd9c774f9b7be4b4284caa165e042ea5301`,
  `data/{{trec_2021,trec_2022,sigir,nih_trialbench}}/trials/<NCTID>.json`; a flattened subset of
  the API v2 `protocolSection`.
* `trialgpt2-act-sample-records` ({n_sample} records): same repository and commit,
  `data/trec_2021/trials/` and `data/nih_trialbench/trials/`.
* `ctgov-v2-samples` ({n_v2} records, not ACT trials): GitHub `genomoncology/biomcp`, commit
  `582f442aa66736d79ab5b79a0d7b9ddc653072fb`, `testdata/sources/ctgov/get_<nctid>_20260811.json`
  (live API v2 responses captured 2025-08-11, requested with a `fields=` filter).

The 56 ACT records are adoptive cell therapy trials (CAR-T 35, TCR-T 6, TIL 9 among the first 50;
see `../shared/data/ctgov-act-trials/index.tsv`, column `act_type`, for the hand labels).

## Licence

* Trial text: ClinicalTrials.gov content, a US government work (public domain).
* `TrialGPT2/TrialGPT2.0`: its `LICENSE` (read at commit `1c5f9ebc3b98d1f780ceea68043efdaa2daba880`)
  is the National Library of Medicine public domain notice for a United States Government Work,
  which asks users to cite: Fang Y, Jin Q, Tian S, et al., NIH-TrialBench Consortium, Lu Z.
  *Towards AI-Assisted Clinical Trial Matching: Practical Considerations, Multicenter Evaluation,
  and Real-World Deployment.*
* The 14 `nih_trialbench` records also carry the LLM-derived fields
  `line_of_therapy_overall_summary` and `cohort_line_of_therapy`; the NIH-TrialBench dataset card
  (`data/nih_trialbench/huggingface_original/README.md`) states CC BY 4.0: attribution to
  NIH-TrialBench / TrialGPT 2.0 (NLM) as above. actnav does not use these fields; they are kept
  because the records are stored unchanged.
* `genomoncology/biomcp` is MIT-licensed, Copyright (c) 2025 Ian Maurer; the three files are
  registry responses (public domain content), bundled with this notice.
* Not bundled: `../shared/data/hint-top-trial-outcome/` (non-commercial use only; test data only).

## Manifest

SHA-256 of each source file as read from `../shared/data/` (before re-serialisation).

| line | NCT id | group | source file | bytes | sha256 |
| ---: | --- | --- | --- | ---: | --- |
"""


def main() -> None:
    """Build the bundle."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="date written into SOURCE.md")
    args = parser.parse_args()
    data_dir: Path = args.shared / "data"

    lines: list[str] = []
    manifest: list[str] = []
    counts: dict[str, int] = {}
    for group, pattern in GROUPS:
        files = sorted(data_dir.glob(pattern))
        counts[group] = len(files)
        for path in files:
            raw = path.read_bytes()
            obj = json.loads(raw.decode("utf-8"))
            nct = obj.get("nctid") or obj["protocolSection"]["identificationModule"]["nctId"]
            lines.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
            rel = path.relative_to(data_dir).as_posix()
            digest = hashlib.sha256(raw).hexdigest()
            manifest.append(f"| {len(lines)} | {nct} | {group} | `{rel}` | {len(raw)} | `{digest}` |")

    payload = ("\n".join(lines) + "\n").encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(payload)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "act-trials.ndjson.gz").write_bytes(buffer.getvalue())
    head = SOURCE_HEAD.format(
        count=len(lines),
        date=args.date,
        n_act=counts["ctgov-act-trials"],
        n_sample=counts["trialgpt2-act-sample-records"],
        n_v2=counts["ctgov-v2-samples"],
    )
    (OUT_DIR / "SOURCE.md").write_text(head + "\n".join(manifest) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} records ({len(payload)} bytes, {len(buffer.getvalue())} gzipped) to {OUT_DIR}")


if __name__ == "__main__":
    main()
