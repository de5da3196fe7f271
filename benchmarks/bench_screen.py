"""Population screening speed (run by ``make bench``): 10k, 30k and 100k synthetic patients.

For each size, a synthetic FHIR bulk export (``actnav.screen.synthetic``, seed 1) is screened
against every product indication in force on the date and every bundled trial (``--trials all``,
the default) on a local Dask cluster of two workers (the default of ``actnav screen run``), from
a fresh output folder. Reported: the number of targets (indications + trials), wall time,
patients per second, peak memory (the summed RSS of this process and all its children, sampled
every 0.2 s) and the time per patient relative to the smallest size (linearity: it should not
grow with the population). Then the smallest population is screened again in-process
(synchronous scheduler) and the two Parquet outputs are compared (identical content).
Target: 100,000 patients in under 10 minutes on a 2-core machine.

Usage::

    python benchmarks/bench_screen.py [--sizes 10000 30000 100000] [--partition-size 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actnav.screen.records import BULK_TYPES
from actnav.screen.run import run_screen
from actnav.screen.synthetic import generate

AS_OF = date(2026, 11, 29)
TARGET_S = 600.0


class PeakRss:
    """Samples the summed RSS of this process tree in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_populations(root: Path, sizes: list[int]) -> dict[int, Path]:
    """One pass of the generator writes every size (patient i goes to each size above i)."""
    folders = {n: root / f"pop-{n}" for n in sizes}
    handles = {}
    for n, folder in folders.items():
        folder.mkdir(parents=True)
        handles[n] = {t: (folder / f"{t}.ndjson").open("w", encoding="utf-8") for t in BULK_TYPES}
    try:
        for i, resources in enumerate(generate(max(sizes), seed=1, as_of=AS_OF)):
            lines = [(r["resourceType"], json.dumps(r, separators=(",", ":")) + "\n") for r in resources]
            for n in sizes:
                if i < n:
                    for rtype, line in lines:
                        handles[n][rtype].write(line)
    finally:
        for group in handles.values():
            for handle in group.values():
                handle.close()
    return folders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--partition-size", type=int, default=1000)
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    from actnav.knowledge.loader import load_knowledge
    from actnav.screen.vector import bundled_trials, targets

    indications, trials = len(targets(load_knowledge(), AS_OF)), len(bundled_trials())
    print(
        f"targets: {indications + trials} ({indications} product indications in force, {trials} bundled trials)"
    )
    with tempfile.TemporaryDirectory(prefix="actnav-bench-screen-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        folders = write_populations(root, sizes)
        print(
            f"generated {', '.join(map(str, sizes))} synthetic patients in {time.perf_counter() - started:.0f} s"
        )
        print(
            f"{'patients':>9} {'wall s':>8} {'patients/s':>11} {'peak RSS MB':>12} {'s/1k vs smallest':>17}  status"
        )
        base = None
        results = {}
        for n in sizes:
            out = root / f"out-{n}"
            with PeakRss() as rss:
                t0 = time.perf_counter()
                result = run_screen(
                    folders[n], out, as_of=AS_OF, partition_size=args.partition_size, progress=False
                )
                wall = time.perf_counter() - t0
            assert result.patients == n, (result.patients, n)
            kinds = pc.value_counts(pq.read_table(result.parquet, columns=["kind"]).column("kind"))
            counts = {k["values"]: k["counts"] for k in kinds.to_pylist()}
            assert counts.get("indication") == n * indications and counts.get("trial") == n * trials, counts
            results[n] = result
            per_k = wall / n * 1000
            base = base or per_k
            status = "ok" if wall < TARGET_S * n / 100_000 else "SLOW"
            print(
                f"{n:>9} {wall:>8.1f} {n / wall:>11.0f} {rss.peak / 2**20:>12.0f} {per_k / base:>17.2f}  {status}"
            )
        smallest = sizes[0]
        sync = run_screen(
            folders[smallest], root / "out-sync", as_of=AS_OF, scheduler="synchronous",
            partition_size=args.partition_size, progress=False,
        )  # fmt: skip
        same = pq.read_table(sync.parquet).equals(pq.read_table(results[smallest].parquet))
        print(f"{smallest} patients: local cluster (2 workers) and in-process outputs identical: {same}")
        shutil.rmtree(root, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
