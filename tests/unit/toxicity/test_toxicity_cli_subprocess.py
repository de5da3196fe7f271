"""The installed console script, end to end: ``actnav toxicity grade`` and ``chart`` on the example
course, and a bad input giving one line on stderr with exit code 2 (actnav.errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ACTNAV = Path(sys.executable).parent / "actnav"
EXAMPLE = "examples/toxicity/crs-course.json"

pytestmark = pytest.mark.skipif(not ACTNAV.exists(), reason="the actnav console script is not installed")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ACTNAV), "toxicity", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_grade_the_example_course() -> None:
    done = _run("grade", EXAMPLE)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["max_grades"] == {"crs": 3, "icans": 2}
    assert out["assessments"][5]["guidance"]["tocilizumab"]["allowed"] is False
    assert out["monitoring_plan"]["brand"] == "Yescarta"


def test_chart_the_example_course(tmp_path: Path) -> None:
    out = tmp_path / "tmp.png"
    done = _run("chart", EXAMPLE, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.stdout.strip() == f"wrote {out}"


def test_bad_input_is_one_line_on_stderr_with_exit_code_2() -> None:
    done = _run("tocilizumab", "--weight-kg", "heavy", "--at", "2025-09-03T08:00")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == ["actnav: error: --weight-kg: 'heavy' is not a number"]
