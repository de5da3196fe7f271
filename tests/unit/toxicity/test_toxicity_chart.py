"""The course chart is written as PNG or SVG, chosen by the file suffix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from actnav.errors import InputError
from actnav.toxicity import Course, parse_input
from actnav.toxicity.chart import render_chart


def _course(infusion_date: str | None = "2025-06-01") -> Course:
    parsed = parse_input(
        {
            "weight_kg": 30,
            "infusion_date": infusion_date,
            "age_years": 9,
            "assessments": [
                {"time": "2025-06-02T08:00:00", "temp_c": 37.1, "capd_score": 0},
                {"time": "2025-06-02T20:00:00", "temp_c": 39.1, "oxygen_device": "blow_by", "capd_score": 4},
                {
                    "time": "2025-06-03T08:00:00",
                    "temp_c": 37.6,
                    "vasopressors": ["epinephrine"],
                    "oxygen_device": "high_flow_nasal_cannula",
                    "oxygen_flow_l_min": 12,
                    "capd_score": 10,
                    "drugs_given": [{"drug": "tocilizumab", "dose_mg": 360}],
                },
                {"time": "2025-06-04T08:00:00", "consciousness": "alert"},
            ],
        }
    )
    assert isinstance(parsed, Course)
    return parsed


def test_a_png_is_written(tmp_path: Path) -> None:
    out = render_chart(_course(), tmp_path / "course.png")
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_an_svg_is_written_and_is_reproducible(tmp_path: Path) -> None:
    first = render_chart(_course(), tmp_path / "a.svg").read_text(encoding="utf-8")
    second = render_chart(_course(), tmp_path / "b.svg").read_text(encoding="utf-8")
    assert "<svg" in first
    assert first == second


def test_a_course_without_infusion_date_is_charted_from_the_first_assessment(tmp_path: Path) -> None:
    out = render_chart(_course(infusion_date=None), tmp_path / "course.svg")
    assert "Days since the first assessment" in out.read_text(encoding="utf-8")


def test_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        render_chart(_course(), tmp_path / "course.pdf")
    assert caught.value.where == str(tmp_path / "course.pdf")
    assert not (tmp_path / "course.pdf").exists()


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    render_chart(_course(), tmp_path / "course.png")
    assert [p.name for p in tmp_path.iterdir()] == ["course.png"]


def test_matplotlib_is_not_imported_by_the_toxicity_package() -> None:
    import importlib

    import actnav.toxicity

    importlib.reload(actnav.toxicity)
    assert "actnav.toxicity.chart" not in actnav.toxicity.__dict__
    assert all(name != "actnav.toxicity.chart" for name in actnav.toxicity.__all__)
    assert "matplotlib" not in getattr(sys.modules["actnav.toxicity.models"], "__dict__", {})
