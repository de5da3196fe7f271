"""A screening run in this process: output, summary, rerun skips finished partitions."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from actnav.errors import InputError
from actnav.screen.run import run_screen
from actnav.screen.synthetic import write_bulk

AS_OF = date(2026, 11, 29)


def test_run_and_rerun(tmp_path: Path) -> None:
    write_bulk(tmp_path / "in", 60, seed=3, as_of=AS_OF)
    first = run_screen(
        tmp_path / "in",
        tmp_path / "out",
        as_of=AS_OF,
        scheduler="synchronous",
        partition_size=25,
        progress=False,
    )
    assert (first.partitions, first.screened, first.skipped, first.patients) == (3, 3, 0, 60)
    table = pq.read_table(first.parquet)
    assert table.column_names == [
        "patient", "kind", "target", "product", "indication", "disease", "status", "verdict", "score",
        "unknowns",
    ]  # fmt: skip
    # 20 product indications in force on the date and the 59 bundled trials, per patient.
    assert table.num_rows == first.rows == 60 * (20 + 59)
    text = first.summary_text.read_text()
    assert "60 patients, 20 product indications, 59 trials" in text
    assert "NCT" in text and "(RECRUITING)" in text  # trials listed with their overall status
    assert "<table>" in first.summary_html.read_text()
    again = run_screen(
        tmp_path / "in",
        tmp_path / "out",
        as_of=AS_OF,
        scheduler="synchronous",
        partition_size=25,
        progress=False,
    )
    assert (again.screened, again.skipped) == (0, 3)
    assert pq.read_table(again.parquet).equals(table)


def test_bad_record_is_reported_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_bulk(folder, 5, seed=3, as_of=AS_OF)
    with (folder / "Patient.ndjson").open("a") as handle:
        handle.write('{"resourceType":"Patient","id":"nobirth"}\n')
    result = run_screen(folder, tmp_path / "out", as_of=AS_OF, scheduler="synchronous", progress=False)
    assert result.patients == 6
    assert sum(result.input_errors.values()) == 1
    assert "birthDate" in next(iter(result.input_errors))


def test_missing_patient_file(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(InputError, match=r"Patient\.ndjson"):
        run_screen(tmp_path / "in", tmp_path / "out", as_of=AS_OF, scheduler="synchronous", progress=False)


@pytest.mark.parametrize(("choice", "trials"), [("none", 0), ("recruiting", 9)])
def test_trials_choice(tmp_path: Path, choice: str, trials: int) -> None:
    # Bundled overall statuses (data/trials/bundled): 9 RECRUITING, none not yet recruiting or
    # enrolling by invitation.
    write_bulk(tmp_path / "in", 4, seed=3, as_of=AS_OF)
    result = run_screen(
        tmp_path / "in", tmp_path / "out", as_of=AS_OF, scheduler="synchronous", progress=False, trials=choice
    )
    assert result.rows == 4 * (20 + trials)
    assert f"4 patients, 20 product indications, {trials} trials" in result.summary_text.read_text()


def test_bad_trials_choice(tmp_path: Path) -> None:
    write_bulk(tmp_path / "in", 1, seed=3, as_of=AS_OF)
    with pytest.raises(InputError, match="--trials"):
        run_screen(tmp_path / "in", tmp_path / "out", as_of=AS_OF, scheduler="synchronous", trials="open")


def test_record_error_names_element_and_problem_not_value_or_id(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_bulk(folder, 3, seed=3, as_of=AS_OF)
    with (folder / "Patient.ndjson").open("a") as handle:
        handle.write('{"resourceType":"Patient","id":"pt-7781","birthDate":"2031-01-10"}\n')
    result = run_screen(folder, tmp_path / "out", as_of=AS_OF, scheduler="synchronous", progress=False)
    assert result.input_errors == {"Patient.birthDate: after the screening date": 1}
    rows = pq.read_table(result.parquet).to_pylist()
    (message,) = [m for r in rows if r["verdict"] == "input_error" for m in r["unknowns"]]
    assert "2031" not in message and "pt-7781" not in message and "2026" not in message


def test_record_problem_strips_values_ids_and_hints() -> None:
    from actnav.errors import FhirImportError, UnitError
    from actnav.screen.run import record_problem

    resources = [{"resourceType": "Patient", "id": "a.b"}, {"resourceType": "Observation", "id": "o1"}]
    cases = {
        FhirImportError("2024-02-30 is not a calendar date", where="Observation/o1.effectiveDateTime"): (
            "Observation.effectiveDateTime: not a calendar date"
        ),
        FhirImportError(
            "-5 10*9/L is outside the plausible range for anc (0 to 1000 10*9/L)",
            where="Observation/o1.valueQuantity",
            hint="written '-5'; check the value and its unit",
        ): "Observation.valueQuantity: outside the plausible range for anc",
        UnitError("cannot convert 'mg' to 'mmol/L'", where="Observation/o1.valueQuantity"): (
            "Observation.valueQuantity: the unit cannot be converted"
        ),
        FhirImportError(
            "expected a FHIR date string like 2024-01-31, got 'John'", where="Patient/a.b.birthDate"
        ): ("Patient.birthDate: expected a FHIR date string"),
        FhirImportError(
            "a measured amount cannot be negative, got -3", where="Observation/x9.valueQuantity"
        ): ("Observation.valueQuantity: a measured amount cannot be negative"),
    }
    for exc, expected in cases.items():
        assert record_problem(exc, resources) == expected


def test_bad_ndjson_line_is_named_by_line_number(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_bulk(folder, 3, seed=3, as_of=AS_OF)
    lines = (folder / "Patient.ndjson").read_text().splitlines()
    (folder / "Patient.ndjson").write_text(
        "\n".join([lines[0], "", '{"resourceType": Pat', *lines[1:]]) + "\n"
    )
    with pytest.raises(InputError) as err:
        run_screen(folder, tmp_path / "out", as_of=AS_OF, scheduler="synchronous", progress=False)
    assert err.value.where == "Patient.ndjson"
    assert "line 3 is not JSON" in err.value.message


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "no-port"])
def test_unreachable_scheduler_is_an_input_error(tmp_path: Path, address: str) -> None:
    write_bulk(tmp_path / "in", 1, seed=3, as_of=AS_OF)
    with pytest.raises(InputError) as err:
        run_screen(tmp_path / "in", tmp_path / "out", as_of=AS_OF, scheduler=address, progress=False)
    assert err.value.where == "--scheduler"
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.parametrize("as_of", ["tomorrow", "1899-12-31"])
def test_screen_date_after_today_or_before_1900_is_refused(tmp_path: Path, as_of: str) -> None:
    from typer.testing import CliRunner

    from actnav.screen.cli import app

    if as_of == "tomorrow":
        as_of = (date.today() + timedelta(days=1)).isoformat()
    write_bulk(tmp_path / "in", 1, seed=3, as_of=AS_OF)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--as-of", as_of, "--no-progress"]
    )
    assert result.exit_code == 2
    assert "--as-of" in result.output
    assert not (tmp_path / "out").exists()


def test_each_short_list_holds_only_its_own_targets_patients() -> None:
    # Targets with fewer hits than the short list must not borrow the next targets' rows.
    import pyarrow as pa

    from actnav.screen.run import summarise
    from actnav.screen.vector import SCHEMA

    rows = [
        ("p1", "a/x", "eligible", 90.0),
        ("p2", "a/x", "not_eligible", 10.0),
        ("p2", "b/y", "eligible", 80.0),
        ("p3", "b/y", "not_eligible", 5.0),
        ("p3", "c/z", "needs_information", 40.0),
        ("p1", "c/z", "not_eligible", 5.0),
    ]
    table = pa.Table.from_pylist(
        [
            {
                "patient": p, "kind": "indication", "target": t, "product": t.split("/")[0],
                "indication": t.split("/")[1], "disease": "", "status": "", "verdict": v, "score": s,
                "unknowns": [],
            }
            for p, t, v, s in rows
        ],
        schema=SCHEMA,
    )  # fmt: skip
    text, _page = summarise(table, date(2026, 11, 29), short_list=2)
    listed: dict[str, list[str]] = {}
    target = ""
    for line in text.splitlines():
        if " eligible, " in line and not line.startswith(" "):
            target = line.split(":")[0]
            listed[target] = []
        elif line.startswith("  ") and target:
            listed[target].append(line.split()[-1])
    assert listed == {"a/x": ["p1"], "b/y": ["p2"], "c/z": ["p3"]}


def test_an_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    write_bulk(tmp_path / "in", 3, seed=1, as_of=AS_OF)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError) as caught:
        run_screen(tmp_path / "in", tmp_path / "afile", as_of=AS_OF, scheduler="synchronous", progress=False)
    assert caught.value.where == "--out"


def test_a_server_that_is_not_a_dask_scheduler_is_refused() -> None:
    import socketserver
    import threading

    from actnav.screen.run import check_scheduler

    class Garbage(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 50)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Garbage) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with pytest.raises(InputError) as caught:
                check_scheduler(f"tcp://127.0.0.1:{server.server_address[1]}", timeout=5)
        finally:
            server.shutdown()
    assert caught.value.where == "--scheduler" and "not as a Dask scheduler" in str(caught.value)
