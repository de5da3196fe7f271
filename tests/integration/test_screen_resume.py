"""Killing a screen run midway and rerunning it: same output, finished partitions not redone;
and a local Dask cluster of two workers gives the same output as the in-process run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from actnav.screen.run import run_screen
from actnav.screen.synthetic import write_bulk

AS_OF = date(2026, 11, 29)


def _done_markers(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.glob(".work/*/parts/*.done")}


def test_kill_and_resume(tmp_path: Path) -> None:
    source = tmp_path / "in"
    write_bulk(source, 400, seed=11, as_of=AS_OF)
    out = tmp_path / "out"
    args = [sys.executable, "-c", "from actnav.cli import main; main()", "screen", "run", str(source),
            "--out", str(out), "--as-of", AS_OF.isoformat(), "--scheduler", "synchronous",
            "--partition-size", "10", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(_done_markers(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = _done_markers(out)
    assert 3 <= len(before) < 40, "the run should have been killed midway"
    assert not (out / "screen.parquet").exists()

    resumed = run_screen(source, out, as_of=AS_OF, scheduler="synchronous", partition_size=10, progress=False)
    assert resumed.skipped == len(before)
    assert resumed.screened == 40 - len(before)
    after = _done_markers(out)
    assert all(after[p] == mtime for p, mtime in before.items())  # not redone

    clean = run_screen(
        source, tmp_path / "clean", as_of=AS_OF, scheduler="synchronous", partition_size=10, progress=False
    )
    assert pq.read_table(resumed.parquet).equals(pq.read_table(clean.parquet))


def test_local_cluster_of_two_workers_gives_identical_output(tmp_path: Path) -> None:
    source = tmp_path / "in"
    write_bulk(source, 200, seed=12, as_of=AS_OF)
    local = run_screen(
        source, tmp_path / "sync", as_of=AS_OF, scheduler="synchronous", partition_size=50, progress=False
    )
    cluster = run_screen(source, tmp_path / "dask", as_of=AS_OF, workers=2, partition_size=50, progress=False)
    assert cluster.screened == 4
    assert pq.read_table(cluster.parquet).equals(pq.read_table(local.parquet))


def test_ctrl_c_on_a_local_cluster_is_quiet_and_resumable(tmp_path: Path) -> None:
    source = tmp_path / "in"
    write_bulk(source, 400, seed=11, as_of=AS_OF)
    out = tmp_path / "out"
    args = [sys.executable, "-c", "from actnav.cli import main; main()", "screen", "run", str(source),
            "--out", str(out), "--as-of", AS_OF.isoformat(), "--workers", "2",
            "--partition-size", "10", "--no-progress"]  # fmt: skip
    # Its own process group, as a terminal's Ctrl-C reaches the coordinator and its workers.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _done_markers(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the cluster has started once a partition is done
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert stderr.decode() == "actnav: interrupted\n"
    done = len(_done_markers(out))
    resumed = run_screen(source, out, as_of=AS_OF, scheduler="synchronous", partition_size=10, progress=False)
    assert (resumed.skipped, resumed.screened, resumed.patients) == (done, 40 - done, 400)
