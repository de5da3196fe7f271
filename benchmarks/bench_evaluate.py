"""Speed figures for actnav (run by ``make bench``): evaluation, FHIR import, CLI cold start.

Measures:

* ``evaluate_patient`` in-process for one example patient against the whole knowledge base
  (the bundle parsed once beforehand; warm-up, then at least 200 timed runs): median and p95.
  Target: < 5 ms.
* FHIR import (``read_bundle``) of the example and, when ``../shared`` is present, of the largest
  Synthea bundle there (warm: the FHIR models already imported).
* CLI cold start: ``actnav --version`` and ``actnav evaluate EXAMPLE --format json --out ...``,
  each run 10 times as a fresh process: median wall time. Target: < 1 s.

Prints a small table and exits 0 (a missing piece is reported as skipped, not as a failure).
Bundle file names are never printed: Synthea names its files after the (synthetic) patient.

Usage::

    python benchmarks/bench_evaluate.py [EXAMPLE] [--as-of YYYY-MM-DD] [--runs 200] [--cli-runs 10]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLE = ROOT / "examples" / "patients" / "all-second-relapse-34f.json"
SYNTHEA_DIR = ROOT.parent / "shared" / "data" / "synthea-fhir-r4-oncology" / "bundles"
EVALUATE_TARGET_MS = 5.0
CLI_TARGET_MS = 1000.0


@dataclass
class Row:
    """One line of the result table (times in milliseconds)."""

    measure: str
    runs: int = 0
    median_ms: float | None = None
    p95_ms: float | None = None
    target_ms: float | None = None
    note: str = ""

    @property
    def status(self) -> str:
        if self.median_ms is None:
            return "skipped"
        if self.target_ms is None:
            return ""
        worst = self.p95_ms if self.p95_ms is not None else self.median_ms
        return "ok" if worst < self.target_ms else "SLOW"


def _p95(samples_ms: list[float]) -> float:
    ordered = sorted(samples_ms)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _timed(row: Row, samples_s: list[float]) -> Row:
    samples_ms = [s * 1000.0 for s in samples_s]
    row.runs = len(samples_ms)
    row.median_ms = statistics.median(samples_ms)
    row.p95_ms = _p95(samples_ms)
    return row


def _repeat(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    return timeit.Timer(fn).repeat(repeat=runs, number=1)


def _pipeline() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``read_bundle`` and ``evaluate_patient`` (ImportError while they are not written)."""
    from actnav.eligibility import evaluate
    from actnav.patient import fhir

    return fhir.read_bundle, evaluate.evaluate_patient


def bench_in_process(example: Path, as_of: date, runs: int) -> tuple[list[Row], Any]:
    """Knowledge load, FHIR import of the example, and evaluate_patient timings."""
    rows: list[Row] = []
    try:
        from actnav.knowledge.loader import load_knowledge

        started = time.perf_counter()
        load_knowledge()
        rows.append(_timed(Row("knowledge load (first call, once)"), [time.perf_counter() - started]))
    except Exception as exc:
        rows.append(Row("knowledge load", note=f"{type(exc).__name__}: {exc}"))
        return rows, None

    if not example.exists():
        note = f"example not found: {example}"
        rows += [Row("FHIR import: example", note=note), Row("evaluate_patient (in-process)", note=note)]
        return rows, None
    try:
        read_bundle, evaluate_patient = _pipeline()
    except ImportError as exc:
        note = f"not available yet: {exc}"
        rows += [Row("FHIR import: example", note=note), Row("evaluate_patient (in-process)", note=note)]
        return rows, None

    try:
        started = time.perf_counter()
        patient = read_bundle(example, as_of=as_of)
        first = time.perf_counter() - started
        rows.append(_timed(Row("FHIR import: example (first call)"), [first]))
        warm = _repeat(lambda: read_bundle(example, as_of=as_of), runs=20, warmup=2)
        rows.append(_timed(Row("FHIR import: example (warm)"), warm))
    except Exception as exc:
        rows.append(Row("FHIR import: example", note=f"{type(exc).__name__}: {exc}"))
        return rows, None

    try:
        samples = _repeat(lambda: evaluate_patient(patient, as_of=as_of), runs=runs, warmup=20)
        row = Row("evaluate_patient (in-process)", target_ms=EVALUATE_TARGET_MS)
        rows.append(_timed(row, samples))
    except Exception as exc:
        rows.append(Row("evaluate_patient (in-process)", note=f"{type(exc).__name__}: {exc}"))
    return rows, patient


def bench_synthea(as_of: date, workdir: Path) -> list[Row]:
    """FHIR import of the largest Synthea bundle in ../shared, if present."""
    label = "FHIR import: largest Synthea bundle"
    if not SYNTHEA_DIR.is_dir():
        return [Row(label, note=f"{SYNTHEA_DIR} not present")]
    bundles = sorted(SYNTHEA_DIR.glob("*.json.gz"))
    if not bundles:
        return [Row(label, note="no bundles found")]
    raw = max((gzip.decompress(p.read_bytes()) for p in bundles), key=len)
    path = workdir / "synthea-largest.json"
    path.write_bytes(raw)
    entries = raw.count(b'"fullUrl"')
    label = f"{label} ({entries} entries, {len(raw) / 1e6:.1f} MB)"
    try:
        read_bundle, _ = _pipeline()
    except ImportError as exc:
        return [Row(label, note=f"not available yet: {exc}")]
    try:
        return [_timed(Row(label), _repeat(lambda: read_bundle(path, as_of=as_of), runs=5, warmup=1))]
    except Exception as exc:
        return [Row(label, note=f"{type(exc).__name__}: {exc}")]


def _actnav_script() -> Path | None:
    beside = Path(sys.executable).parent / "actnav"
    if beside.exists():
        return beside
    found = shutil.which("actnav")
    return Path(found) if found else None


def _wall_times(argv: list[str], runs: int) -> tuple[list[float], str]:
    samples: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        samples.append(time.perf_counter() - started)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            return samples, f"exit {done.returncode}: {lines[-1] if lines else ''}"
    return samples, ""


def bench_cli(example: Path, as_of: date, runs: int, workdir: Path) -> list[Row]:
    """Cold start of the console script, as fresh processes."""
    script = _actnav_script()
    if script is None:
        return [Row("CLI cold start", note="actnav console script not installed")]
    rows = []
    samples, error = _wall_times([str(script), "--version"], runs)
    row = Row("CLI cold start: actnav --version", target_ms=CLI_TARGET_MS)
    rows.append(Row(row.measure, note=error) if error else _timed(row, samples))

    if not example.exists():
        rows.append(Row("CLI cold start: actnav evaluate", note=f"example not found: {example}"))
        return rows
    out = workdir / "bench-report.json"
    argv = [str(script), "evaluate", str(example), "--as-of", as_of.isoformat(), "--format", "json"]
    # Labels only (the issue-2 main job), then with the bundled trials matched as well.
    for label, extra in (
        ("CLI cold start: actnav evaluate --no-trials --out", ["--no-trials"]),
        ("CLI cold start: actnav evaluate (with trials) --out", []),
    ):
        samples, error = _wall_times([*argv, *extra, "--out", str(out)], runs)
        row = Row(label, target_ms=CLI_TARGET_MS if extra else None)
        rows.append(Row(label, note=error) if error else _timed(row, samples))
    return rows


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ms" if value < 10 else f"{value:.0f} ms"


def print_table(rows: list[Row]) -> None:
    """Print the results as a fixed-width table."""
    width = max(len(r.measure) for r in rows)
    header = f"{'measure':<{width}}  {'runs':>5}  {'median':>11}  {'p95':>11}  {'target':>9}  status"
    print(header)
    print("-" * len(header))
    for r in rows:
        target = f"< {r.target_ms:g} ms" if r.target_ms is not None else ""
        line = (
            f"{r.measure:<{width}}  {r.runs or '':>5}  {_fmt_ms(r.median_ms):>11}  "
            f"{_fmt_ms(r.p95_ms) if r.runs > 1 else '':>11}  {target:>9}  {r.status}"
        )
        print(line + (f"  ({r.note})" if r.note else ""))


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark and print the table; always returns 0."""
    parser = argparse.ArgumentParser(description="actnav speed figures")
    parser.add_argument("example", nargs="?", type=Path, default=DEFAULT_EXAMPLE, help="FHIR Bundle")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 29))
    parser.add_argument("--runs", type=int, default=200, help="timed evaluate_patient runs (>= 200)")
    parser.add_argument("--cli-runs", type=int, default=10, help="cold starts per command")
    args = parser.parse_args(argv)
    runs = max(200, args.runs)
    example: Path = args.example.resolve()

    print(f"actnav benchmarks: Python {sys.version.split()[0]}, as of {args.as_of}")
    shown = example.relative_to(ROOT) if example.is_relative_to(ROOT) else example
    print(f"example: {shown}\n")
    with tempfile.TemporaryDirectory(prefix="actnav-bench-") as tmp:
        workdir = Path(tmp)
        rows, _ = bench_in_process(example, args.as_of, runs)
        rows += bench_synthea(args.as_of, workdir)
        rows += bench_cli(example, args.as_of, args.cli_runs, workdir)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
