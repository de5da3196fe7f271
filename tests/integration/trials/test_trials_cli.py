"""``actnav trials`` commands, run in-process on a temporary SQLite database (Typer CliRunner).

The sub-app is mounted here as ``actnav trials`` the way the main CLI mounts it. Sync replays the
recorded search pages (httpx.MockTransport); nothing touches the network.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from actnav.trials import cli as trials_cli
from actnav.trials.ctgov import CtgovClient
from actnav.trials.sources import iter_bundled_records

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "trials" / "ctgov"
runner = CliRunner()


def make_app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """actnav"""

    root.add_typer(trials_cli.app, name="trials")
    return root


APP = make_app()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def raw(nct: str) -> dict[str, Any]:
    (record,) = [r.record for r in iter_bundled_records() if r.record is not None and r.record.nct_id == nct]
    return copy.deepcopy(record.raw)


def test_import_prints_a_summary_and_lists_malformed_records(tmp_path: Path, db: str) -> None:
    bad = raw("NCT03575351")
    del bad["nctid"]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps([raw("NCT03391466"), raw("NCT04044768")]), encoding="utf-8")
    (folder / "bad.json").write_text(json.dumps([bad]), encoding="utf-8")
    result = runner.invoke(APP, ["trials", "import", str(folder), "--database-url", db])
    assert result.exit_code == 0, result.output
    assert "Files read: 2 (3 records)" in result.output
    assert "Records: new 2, updated 0, unchanged 0, skipped-older 0, malformed 1" in result.output
    assert "Database: 2 trials, 2 classified as adoptive cell therapy" in result.output
    assert f"{folder / 'bad.json'}:record 1:nctid: missing" in result.output

    again = runner.invoke(
        APP, ["trials", "import", str(folder / "good.json"), "--database-url", db, "--strict"]
    )
    assert again.exit_code == 0 and "new 0, updated 0, unchanged 2" in again.output
    strict = runner.invoke(APP, ["trials", "import", str(folder), "--database-url", db, "--strict"])
    assert strict.exit_code == 2


def test_import_of_a_missing_path_is_one_line_and_exit_2(db: str) -> None:
    result = runner.invoke(APP, ["trials", "import", "/no/such/file.json", "--database-url", db])
    assert result.exit_code == 2
    assert "actnav: error: /no/such/file.json: no such file or folder" in result.output
    assert "Traceback" not in result.output


def test_load_bundled_then_list_and_show(db: str) -> None:
    loaded = runner.invoke(APP, ["trials", "load-bundled", "--database-url", db])
    assert loaded.exit_code == 0 and "new 59" in loaded.output

    listed = runner.invoke(APP, ["trials", "list", "--act-only", "--database-url", db])
    assert listed.exit_code == 0
    lines = [line for line in listed.stdout.splitlines() if line.startswith("NCT")]
    assert len(lines) == 56
    til = runner.invoke(
        APP, ["trials", "list", "--modality", "til", "--status", "recruiting", "--database-url", db]
    )
    # the recruiting TIL records: NCT01174121 and NCT02133196 (TrialGPT records), NCT02621021
    assert [line.split()[0] for line in til.stdout.splitlines() if line.startswith("NCT")] == [
        "NCT01174121",
        "NCT02133196",
        "NCT02621021",
    ]

    shown = runner.invoke(APP, ["trials", "show", "nct04244656", "--database-url", db])
    assert shown.exit_code == 0, shown.output
    assert "ACT: CAR-T; targets BCMA; cell source allogeneic" in shown.output
    assert "CTX120" in shown.output

    as_json = runner.invoke(APP, ["trials", "show", "NCT04244656", "--json", "--database-url", db])
    doc = json.loads(as_json.stdout)
    assert doc["act"]["modality"] == "CAR-T" and doc["record"]["nct_id"] == "NCT04244656"

    missing = runner.invoke(APP, ["trials", "show", "NCT00000001", "--database-url", db])
    assert missing.exit_code == 2 and "no such trial" in missing.output


def test_list_rejects_an_unknown_modality(db: str) -> None:
    result = runner.invoke(APP, ["trials", "list", "--modality", "vaccine", "--database-url", db])
    assert result.exit_code == 2 and "--modality" in result.output


def test_sync_reports_total_fetched_and_changes(monkeypatch: pytest.MonkeyPatch, db: str) -> None:
    pages = [json.loads((FIXTURES / f"studies-page-{n}.json").read_text(encoding="utf-8")) for n in (1, 2, 3)]
    tokens = {None: 0, "ZVNkVfNWtkRXhMZ3": 1, "NUpHVGZjb2hGbE1y": 2}
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[tokens[request.url.params.get("pageToken")]])

    monkeypatch.setattr(
        trials_cli,
        "make_client",
        lambda: CtgovClient("https://ctgov.test/api/v2", transport=httpx.MockTransport(handler)),
    )
    args = ["trials", "sync", "--condition", "melanoma", "--status", "recruiting", "--database-url", db]
    result = runner.invoke(APP, [*args, "--page-size", "3"])
    assert result.exit_code == 0, result.output
    assert "ClinicalTrials.gov: 9 studies match; fetched 9 in 3 pages" in result.stdout
    assert "Changes: new 9, updated 0, closed 0" in result.stdout
    assert seen[0].url.params["query.cond"] == "melanoma"
    assert seen[0].url.params["filter.overallStatus"] == "RECRUITING"


def test_sync_needs_a_query_and_a_known_status(db: str) -> None:
    empty = runner.invoke(APP, ["trials", "sync", "--database-url", db])
    assert empty.exit_code == 2 and "give at least one of" in empty.output
    bad = runner.invoke(APP, ["trials", "sync", "--status", "open", "--database-url", db])
    assert bad.exit_code == 2 and "unknown status 'open'" in bad.output


def test_load_bundled_trials_function_is_idempotent(db: str) -> None:
    first = trials_cli.load_bundled_trials(db)
    second = trials_cli.load_bundled_trials(db)
    assert (first.new, second.unchanged) == (59, 59)
