"""A screening run in this process: output, summary, rerun skips finished partitions."""

from __future__ import annotations

from datetime import date
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
