"""The ``actnav`` command line, end to end: exit codes, one-line errors, atomic report files.

Most tests run the Typer app in-process (``CliRunner``); the ones about the console script, its
start-up and what reaches a real stderr run it as a subprocess. Tests that need the FHIR importer
use a fake ``read_bundle``/``evaluate_patient`` (so they do not depend on the clinical data), except
the last group, which evaluates the shipped example patient.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from actnav import cli, clikit
from actnav.care.report import schema_json
from actnav.eligibility.engine import CriterionResult, Result, SourceInfo
from actnav.eligibility.report_model import (
    Evaluation,
    IndicationResult,
    PatientSummary,
    ProductResult,
    Verdict,
)
from actnav.errors import DataFileError, FhirImportError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "patients" / "all-second-relapse-34f.json"
ACTNAV = Path(sys.executable).parent / "actnav"
AS_OF = "2026-11-29"

runner = CliRunner()


def _bundle(tmp_path: Path) -> Path:
    path = tmp_path / "patient.json"
    path.write_text('{"resourceType": "Bundle", "type": "collection", "entry": []}', encoding="utf-8")
    return path


def _evaluation(as_of: date) -> Evaluation:
    source = SourceInfo(citation="Label", section="1", verification="V", confirmed=True)
    criterion = CriterionResult(id="age", text="Age 18 or older", result=Result.MET, source=source)
    indication = IndicationResult(
        id="lbcl",
        name="Large B-cell lymphoma",
        disease="lbcl",
        label_revision="2024-04",
        effective_from=date(2017, 10, 18),
        approval="regular",
        verdict=Verdict.ELIGIBLE,
        reasons=[],
        criteria=[criterion],
        unconfirmed=False,
        source=source,
    )
    return Evaluation(
        as_of=as_of,
        generated_by="actnav test",
        patient=PatientSummary(
            id="p-test",
            age_years=40,
            sex="male",
            deceased=False,
            diagnoses=["DLBCL"],
            prior_lines=2,
            skipped_resources={},
        ),
        summary=[],
        products=[
            ProductResult(
                product="axicabtagene ciloleucel",
                id="axicabtagene_ciloleucel",
                brand="Yescarta",
                modality="CAR-T",
                target="CD19",
                approved_on_as_of=True,
                indications=[indication],
            )
        ],
        fitness=[],
        workup=[],
        knowledge_version="test",
        disclaimer="Decision support only.",
    )


class FakePipeline:
    """Stands in for the FHIR importer and the evaluator; records the dates it was given."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.read_as_of: list[date] = []
        self.evaluated_as_of: list[date] = []

    def read_bundle(self, path: Path, *, as_of: date) -> str:
        self.read_as_of.append(as_of)
        if self.fail_with is not None:
            raise self.fail_with
        return "patient"

    def evaluate_patient(self, patient: Any, *, as_of: date) -> Evaluation:
        self.evaluated_as_of.append(as_of)
        return _evaluation(as_of)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePipeline]:
    pipeline = FakePipeline()
    fhir = types.ModuleType("actnav.patient.fhir")
    fhir.read_bundle = pipeline.read_bundle  # type: ignore[attr-defined]
    evaluate = types.ModuleType("actnav.eligibility.evaluate")
    evaluate.evaluate_patient = pipeline.evaluate_patient  # type: ignore[attr-defined]
    # Trial matching is stubbed too: it needs a real patient record (tests/e2e/test_match_cli.py).
    search = types.ModuleType("actnav.trials.search")
    search.load_trial_index = lambda database_url=None: None  # type: ignore[attr-defined]
    search.add_trials = lambda evaluation, patient, **kw: evaluation  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "actnav.patient.fhir", fhir)
    monkeypatch.setitem(sys.modules, "actnav.eligibility.evaluate", evaluate)
    monkeypatch.setitem(sys.modules, "actnav.trials.search", search)
    yield pipeline


def _run_console_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not ACTNAV.exists():
        pytest.skip(f"console script {ACTNAV} not installed (pip install -e .)")
    return subprocess.run(
        [str(ACTNAV), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


# --- version and help --------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    done = _run_console_script("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "actnav 0.1.0"


def test_help_lists_the_commands() -> None:
    result = runner.invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    assert "evaluate" in result.stdout and "knowledge" in result.stdout


# --- bad options: exit 2 naming the option --------------------------------------------------------


@pytest.mark.parametrize("value", ["2026-13-01", "2026-02-30", "29/11/2026", "20261129", "today"])
def test_a_bad_as_of_date_exits_2_naming_the_option(tmp_path: Path, value: str) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--as-of", value])
    assert result.exit_code == 2
    assert "--as-of" in result.stderr
    assert "Traceback" not in result.output


def test_an_unknown_format_exits_2_naming_the_option(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--format", "xml"])
    assert result.exit_code == 2
    assert "--format" in result.stderr


def test_an_out_suffix_naming_no_format_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--out", str(out)])
    assert result.exit_code == 2
    assert "--format" in result.stderr
    assert not out.exists()


# --- bad input: exit 2, one line, no traceback ----------------------------------------------------


def test_a_nonexistent_bundle_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = runner.invoke(cli.app, ["evaluate", str(missing), "--as-of", AS_OF])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"actnav: error: {missing}: no such file (give the path of a FHIR Bundle)"
    ]
    assert result.stdout == ""


def test_a_directory_as_bundle_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(tmp_path), "--as-of", AS_OF])
    assert result.exit_code == 2
    assert result.stderr.startswith("actnav: error:")


def test_an_import_error_exits_2_and_leaves_out_untouched(tmp_path: Path, fake: FakePipeline) -> None:
    fake.fail_with = FhirImportError("not a Bundle", where="patient.json")
    out = tmp_path / "out" / "report.html"
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--as-of", AS_OF, "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr == "actnav: error: patient.json: not a Bundle\n"
    assert not out.exists() and not out.parent.exists()


def test_a_failed_evaluation_keeps_the_previous_report(tmp_path: Path, fake: FakePipeline) -> None:
    fake.fail_with = FhirImportError("not a Bundle")
    out = tmp_path / "report.html"
    out.write_text("previous report", encoding="utf-8")
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--out", str(out)])
    assert result.exit_code == 2
    assert out.read_text(encoding="utf-8") == "previous report"
    assert {p.name for p in tmp_path.iterdir()} == {"patient.json", "report.html"}


def test_invalid_json_exits_2_and_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", ', encoding="utf-8")
    out = tmp_path / "out" / "report.html"
    done = _run_console_script("evaluate", str(bad), "--as-of", AS_OF, "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("actnav: error:")
    assert not out.exists()


# --- internal and data-file errors ----------------------------------------------------------------


def _broken_loader(exc: Exception) -> types.ModuleType:
    module = types.ModuleType("actnav.knowledge.loader")

    def load_knowledge() -> None:
        raise exc

    module.load_knowledge = load_knowledge  # type: ignore[attr-defined]
    return module


def test_an_unexpected_exception_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clikit.DEBUG_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "actnav.knowledge.loader", _broken_loader(RuntimeError("boom\nagain")))
    result = runner.invoke(cli.app, ["knowledge", "list"])
    assert result.exit_code == 1
    assert result.stderr == "actnav: internal error: RuntimeError: boom again (please report)\n"


def test_actnav_debug_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "actnav.knowledge.loader", _broken_loader(RuntimeError("boom")))
    result = runner.invoke(cli.app, ["knowledge", "list"], env={clikit.DEBUG_ENV: "1"})
    assert isinstance(result.exception, RuntimeError)


def test_a_broken_data_file_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    error = DataFileError("Extra inputs are not permitted", where="products/x.yaml: rule y: z")
    monkeypatch.setitem(sys.modules, "actnav.knowledge.loader", _broken_loader(error))
    result = runner.invoke(cli.app, ["knowledge", "list"])
    assert result.exit_code == 3
    assert result.stderr == "actnav: error: products/x.yaml: rule y: z: Extra inputs are not permitted\n"


# --- success with a fake pipeline -----------------------------------------------------------------


def test_as_of_is_passed_down_to_import_and_evaluation(tmp_path: Path, fake: FakePipeline) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--as-of", "2025-01-31"])
    assert result.exit_code == 0, result.output
    assert fake.read_as_of == fake.evaluated_as_of == [date(2025, 1, 31)]


def test_as_of_defaults_to_today_read_once(tmp_path: Path, fake: FakePipeline) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path))])
    assert result.exit_code == 0, result.output
    assert fake.read_as_of == fake.evaluated_as_of
    assert date.today() - timedelta(days=1) <= fake.read_as_of[0] <= date.today()  # midnight-safe


def test_default_output_is_the_text_summary_on_stdout(tmp_path: Path, fake: FakePipeline) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--as-of", AS_OF])
    assert result.exit_code == 0, result.output
    assert "[ELIGIBLE]" in result.stdout
    assert "supports clinicians, it does not replace them" in result.stdout


def test_json_to_stdout_is_a_valid_evaluation(tmp_path: Path, fake: FakePipeline) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--as-of", AS_OF, "-f", "json"])
    assert result.exit_code == 0, result.output
    assert Evaluation.model_validate_json(result.stdout).as_of == date(2026, 11, 29)


@pytest.mark.parametrize(
    ("name", "marker"),
    [("r.html", "<!DOCTYPE html>"), ("r.json", '"schema_version"'), ("r.txt", "Label verdicts")],
)
def test_out_suffix_picks_the_format_and_a_summary_is_printed(
    tmp_path: Path, fake: FakePipeline, name: str, marker: str
) -> None:
    out = tmp_path / "new" / "dir" / name
    result = runner.invoke(cli.app, ["evaluate", str(_bundle(tmp_path)), "--as-of", AS_OF, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert marker in out.read_text(encoding="utf-8")
    assert "Patient p-test: 40 y, male" in result.stdout
    assert f"report: {out}" in result.stdout
    assert [p.name for p in out.parent.iterdir()] == [name], "no temporary file is left behind"


def test_an_explicit_format_wins_over_the_suffix(tmp_path: Path, fake: FakePipeline) -> None:
    out = tmp_path / "report.txt"
    args = ["evaluate", str(_bundle(tmp_path)), "--as-of", AS_OF, "--out", str(out), "--format", "json"]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    json.loads(out.read_text(encoding="utf-8"))


def test_write_atomic_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "report.html"
    cli.write_atomic(target, "one")
    cli.write_atomic(target, "two")
    assert target.read_text(encoding="utf-8") == "two"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


# --- knowledge ------------------------------------------------------------------------------------


def test_knowledge_schema_prints_the_published_evaluation_schema() -> None:
    result = runner.invoke(cli.app, ["knowledge", "schema"])
    assert result.exit_code == 0, result.output
    assert result.stdout == schema_json(Evaluation)
    assert result.stdout == (ROOT / "schemas" / "evaluation.schema.json").read_text(encoding="utf-8")


def test_knowledge_list_names_every_product_and_indication() -> None:
    from actnav.knowledge.loader import load_knowledge

    result = runner.invoke(cli.app, ["knowledge", "list"])
    assert result.exit_code == 0, result.output
    knowledge = load_knowledge()
    lines = result.stdout.splitlines()
    expected = sum(1 + len(p.indications) for p in knowledge.products)
    assert len(lines) == expected
    for product in knowledge.products:
        assert any(line.startswith(f"{product.id}  {product.brand}") for line in lines)


# --- the shipped example patient ----------------------------------------------------------------


def test_the_example_patient_gives_an_html_report(tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.html"
    done = _run_console_script("evaluate", str(EXAMPLE), "--as-of", AS_OF, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    page = out.read_text(encoding="utf-8")
    assert "<!DOCTYPE html>" in page and 'id="verdicts"' in page
    assert "Trial-derived context — not label requirements" in page
    assert f"Wrote html report: {out}" in done.stdout


def test_the_example_patient_json_matches_the_published_schema() -> None:
    import jsonschema

    result = runner.invoke(cli.app, ["evaluate", str(EXAMPLE), "--as-of", AS_OF, "--format", "json"])
    assert result.exit_code == 0, result.output
    schema = json.loads((ROOT / "schemas" / "evaluation.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(result.stdout), schema)


def test_out_may_not_overwrite_the_input_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    before = bundle.read_text(encoding="utf-8")
    result = runner.invoke(cli.app, ["evaluate", str(bundle), "--out", str(bundle), "--format", "json"])
    assert result.exit_code == 2
    assert "--out" in result.output
    assert bundle.read_text(encoding="utf-8") == before
