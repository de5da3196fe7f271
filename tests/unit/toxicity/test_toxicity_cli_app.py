"""The ``actnav toxicity`` sub-app: grade, chart, record (run with Typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from actnav.errors import InputError
from actnav.toxicity.cli import app

runner = CliRunner()

COURSE: dict[str, Any] = {
    "weight_kg": 82,
    "infusion_date": "2025-06-01",
    "age_years": 61,
    "assessments": [
        {"time": "2025-06-02T08:00:00+00:00", "temp_c": 38.4, "ice_score": 10},
        {
            "time": "2025-06-03T08:00:00+00:00",
            "temp_c": 39.2,
            "vasopressors": ["norepinephrine"],
            "oxygen_device": "low_flow_nasal_cannula",
            "oxygen_flow_l_min": 4,
            "ice_score": 6,
        },
        {"time": "2025-06-04T08:00:00+00:00", "temp_c": 36.9, "ice_score": 10},
    ],
}


def _write(tmp_path: Path, data: Any, name: str = "input.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_grade_a_single_assessment_as_json(tmp_path: Path) -> None:
    path = _write(
        tmp_path, {"temp_f": 100.4, "oxygen_device": "low_flow_nasal_cannula", "oxygen_flow_l_min": 7}
    )
    result = runner.invoke(app, ["grade", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["crs"]["grade"] == 3
    assert out["crs"]["reason"].startswith("grade 3: fever 100.4 F = 38.0 C")
    assert out["icans"] == {**out["icans"], "grade": None, "deciding_domain": None}


def test_grade_a_course_as_json_gives_every_assessment_and_the_maximum_grades(tmp_path: Path) -> None:
    result = runner.invoke(app, ["grade", str(_write(tmp_path, COURSE))])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [a["crs"]["grade"] for a in out["assessments"]] == [1, 3, None]
    assert [a["icans"]["grade"] for a in out["assessments"]] == [0, 2, 0]
    assert out["assessments"][1]["icans"]["deciding_domain"] == "ice"
    assert out["max_grades"] == {"crs": 3, "icans": 2}
    assert out["crs"]["onset_day"] == 1


def test_grade_a_course_as_text(tmp_path: Path) -> None:
    result = runner.invoke(app, ["grade", str(_write(tmp_path, COURSE)), "--format", "text"])
    assert result.exit_code == 0, result.output
    assert "CRS 3  ICANS 2" in result.stdout
    assert "CRS: maximum grade 3 on day 2; onset day 1" in result.stdout
    assert "criteria for CRS not met; consider other causes" in result.stdout


def test_grade_reads_standard_input() -> None:
    result = runner.invoke(app, ["grade", "-"], input=json.dumps({"temp_c": 38.0}))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["crs"]["grade"] == 1


@pytest.mark.parametrize(
    ("content", "where", "fragment"),
    [
        ('{"temp_c": 60}', "temp_c", "60 is not a plausible body temperature"),
        ('{"temp_c": 38.1,', "input.json:1:", "not valid JSON"),
        ('{"temp_c": NaN}', "input.json", "NaN is not a number"),
        ('{"oxygen_device": "helmet"}', "oxygen_device", "unknown value 'helmet'"),
    ],
)
def test_bad_input_raises_an_input_error_naming_where(
    tmp_path: Path, content: str, where: str, fragment: str
) -> None:
    path = tmp_path / "input.json"
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["grade", str(path)])
    assert isinstance(result.exception, InputError)
    assert where in (result.exception.where or "")
    assert fragment in result.exception.message
    assert result.stdout == ""


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["grade", str(tmp_path / "absent.json")])
    assert isinstance(result.exception, InputError)
    assert result.exception.message == "no such file"


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["grade", str(_write(tmp_path, COURSE)), "--format", "xml"])
    assert result.exit_code == 2


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_chart_writes_the_file(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"chart{suffix}"
    result = runner.invoke(app, ["chart", str(_write(tmp_path, COURSE)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000
    assert result.stdout.strip() == f"wrote {out}"


def test_chart_of_a_single_assessment_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["chart", str(_write(tmp_path, {"temp_c": 38.5})), "--out", str(tmp_path / "c.png")]
    )
    assert isinstance(result.exception, InputError)
    assert "a chart needs a course" in result.exception.message


def test_record_stores_the_course_for_a_case(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'actnav.db'}"
    result = runner.invoke(
        app, ["record", str(_write(tmp_path, COURSE)), "--case", "CASE-12", "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "case": "CASE-12",
        "course_id": 1,
        "max_grades": {"crs": 3, "icans": 2},
    }

    from actnav.store.db import get_engine
    from actnav.store.toxicity import read_course

    assert read_course(get_engine(url), "CASE-12").max_grades == {"crs": 3, "icans": 2}
