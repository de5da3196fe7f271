"""``actnav match`` and the trials section of ``actnav evaluate``, end to end on the example patient
and the bundled offline trial records (the database URL names a file that does not exist)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actnav import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "patients" / "all-second-relapse-34f.json"
AS_OF = "2026-11-29"
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTNAV_DATABASE_URL", f"sqlite:///{tmp_path / 'absent' / 'actnav.db'}")


def test_match_prints_ranked_trials_with_verdict_score_and_reasons() -> None:
    result = runner.invoke(cli.app, ["match", str(EXAMPLE), "--as-of", AS_OF, "--limit", "3"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "56 trial(s) checked from the bundled offline records" in out
    assert out.count("https://clinicaltrials.gov/study/NCT") == 3
    assert "why: Diagnosis:" in out and "[NEEDS INFORMATION]" in out
    assert "does not replace" in out


def test_match_json_lists_criteria_beside_their_text(tmp_path: Path) -> None:
    out = tmp_path / "matches.json"
    result = runner.invoke(
        cli.app, ["match", str(EXAMPLE), "--as-of", AS_OF, "--out", str(out), "--limit", "5"]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote json trial matches: {out}" in result.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["search"]["source"] == "bundled" and len(data["trials"]) == 5
    first = data["trials"][0]
    assert {"verdict", "score", "why_listed", "criteria", "workup"} <= set(first)
    review = [c for c in first["criteria"] if c["parse_status"] == "review"]
    assert review and review[0]["result"]["needs"].startswith("unknown: needs review: ")


def test_match_html_is_a_self_contained_page(tmp_path: Path) -> None:
    out = tmp_path / "matches.html"
    result = runner.invoke(
        cli.app, ["match", str(EXAMPLE), "--as-of", AS_OF, "--out", str(out), "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Criteria beside their original text" in page
    assert "<script" not in page and "stylesheet" not in page


def test_match_filters_by_status_modality_and_distance() -> None:
    args = [
        "match",
        str(EXAMPLE),
        "--as-of",
        AS_OF,
        "--status",
        "recruiting",
        "--modality",
        "til",
        "-f",
        "json",
    ]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["search"]["statuses"] == ["RECRUITING"] and data["search"]["modality"] == "TIL"
    assert all(t["modality"] == "TIL" and t["overall_status"] == "RECRUITING" for t in data["trials"])
    near = runner.invoke(
        cli.app,
        ["match", str(EXAMPLE), "--as-of", AS_OF, "--near", "80218", "--radius-km", "100", "-f", "json"],
    )
    assert near.exit_code == 0, near.output
    # The flattened ACT records carry no sites: none is within 100 km.
    assert json.loads(near.stdout)["trials"] == []


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--near", "00000"], "--near"),
        (["--modality", "vaccine"], "--modality"),
        (["--status", "sleeping"], "--status"),
        (["--radius-km", "50"], "--radius-km"),
    ],
)
def test_bad_match_options_exit_2_naming_the_option(args: list[str], option: str) -> None:
    result = runner.invoke(cli.app, ["match", str(EXAMPLE), "--as-of", AS_OF, *args])
    assert result.exit_code == 2
    assert option in result.output


def test_evaluate_includes_the_matched_trials() -> None:
    result = runner.invoke(cli.app, ["evaluate", str(EXAMPLE), "--as-of", AS_OF, "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["trial_search"]["source"] == "bundled"
    assert 0 < len(data["trials"]) <= 10
    assert data["products"]  # the label evaluation is unchanged
    text = runner.invoke(cli.app, ["evaluate", str(EXAMPLE), "--as-of", AS_OF])
    assert "Clinical trials (56 checked, bundled offline records; best 10):" in text.stdout
    html = runner.invoke(cli.app, ["evaluate", str(EXAMPLE), "--as-of", AS_OF, "-f", "html"])
    assert 'id="trials"' in html.stdout and "needs review" in html.stdout


def test_evaluate_without_trials_leaves_them_out() -> None:
    result = runner.invoke(cli.app, ["evaluate", str(EXAMPLE), "--as-of", AS_OF, "-f", "json", "--no-trials"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["trials"] == [] and data["trial_search"] is None
