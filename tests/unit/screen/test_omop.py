"""OMOP CDM v5.4 input: the same verdicts as the FHIR bulk path, a hand-written export, bad input.

Expected verdicts of the tiny export (tests/fixtures/omop/tiny/README.md) come from the label
criteria of data/products: idecabtagene vicleucel 2024 (age >= 18, multiple myeloma, relapsed or
refractory, >= 2 prior lines, prior IMiD + PI + anti-CD38: 5 criteria) and ciltacabtagene
autoleucel 2024 (age >= 18, multiple myeloma, relapsed or refractory, >= 1 prior line, prior PI +
IMiD, refractory to lenalidomide: 6 criteria); the score is the share of criteria met.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from actnav.errors import InputError
from actnav.screen.omop import detect_format, omop_tables, shard_omop
from actnav.screen.records import record_from_resources
from actnav.screen.run import run_screen
from actnav.screen.synthetic import OMOP_LOCAL_BASE, omop_concepts, write_bulk, write_omop

AS_OF = date(2026, 11, 29)
TINY = Path(__file__).parents[2] / "fixtures" / "omop" / "tiny"
IDE_CEL = "idecabtagene_vicleucel/mm-after-2-lines-2024"
CILTA_CEL = "ciltacabtagene_autoleucel/mm-after-1-line-len-refractory-2024"


def _screen(folder: Path, out: Path, **kwargs: object) -> list[dict[str, object]]:
    result = run_screen(folder, out, as_of=AS_OF, scheduler="synchronous", progress=False, **kwargs)  # type: ignore[arg-type]
    return list(pq.read_table(result.parquet).to_pylist())


@pytest.fixture(scope="module")
def fhir_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    folder = tmp_path_factory.mktemp("fhir")
    write_bulk(folder / "in", 60, seed=11, as_of=AS_OF)
    patients = [
        json.loads(line)["id"] for line in (folder / "in" / "Patient.ndjson").read_text().splitlines()
    ]
    person_of = {pid: str(i + 1) for i, pid in enumerate(patients)}  # person_id = position + 1
    rows = _screen(folder / "in", folder / "out", partition_size=25)
    return [{**row, "patient": person_of[str(row["patient"])]} for row in rows]


@pytest.mark.parametrize("file_format", ["csv", "parquet", "csv.gz"])
def test_omop_export_gives_the_fhir_rows(
    tmp_path: Path, fhir_rows: list[dict[str, object]], file_format: str
) -> None:
    write_omop(tmp_path / "in", 60, seed=11, as_of=AS_OF, file_format=file_format)
    rows = _screen(tmp_path / "in", tmp_path / "out", partition_size=25)
    assert len(rows) == len(fhir_rows) and len(rows) % 60 == 0
    assert rows == fhir_rows  # verdict, score, unknowns, in person order
    assert {r["verdict"] for r in rows} >= {"eligible", "needs_information", "not_eligible"}


def test_tiny_export_verdicts_follow_the_labels(tmp_path: Path) -> None:
    rows = _screen(TINY, tmp_path / "out")
    # Product indications only (a run may also screen trials: rows with kind "trial").
    labels = [r for r in rows if r.get("kind", "indication") == "indication"]
    got = {(r["patient"], r["target"]): (r["verdict"], r["score"], r["unknowns"]) for r in labels}
    # 101: 64 years, myeloma, refractory to lenalidomide, 2 lines with IMiD, PI and anti-CD38.
    assert got[("101", IDE_CEL)] == ("eligible", 100.0, [])
    assert got[("101", CILTA_CEL)] == ("eligible", 100.0, [])
    # 102: born December 2008 (day estimated the 15th): 17 years old, every other criterion met.
    assert got[("102", IDE_CEL)] == ("not_eligible", 80.0, [])
    assert got[("102", CILTA_CEL)] == ("not_eligible", 83.3, [])
    # 103: one line of lenalidomide only (no PI), relapsed (not refractory): 3 of 5, 4 of 6.
    assert got[("103", IDE_CEL)] == ("not_eligible", 60.0, [])
    assert got[("103", CILTA_CEL)] == ("not_eligible", 66.7, [])
    # Myeloma patients are not eligible for any lymphoma, leukaemia or solid-tumour indication.
    others = {v for (p, t), (v, _, _) in got.items() if t not in (IDE_CEL, CILTA_CEL)}
    assert others == {"not_eligible"}
    assert {r["patient"] for r in rows} == {"101", "102", "103"}  # person 999 is not screened


def _records(folder: Path, staging: Path) -> dict[str, object]:
    stats = shard_omop(folder, staging, 10)
    by_patient: dict[str, list[dict[str, object]]] = {}
    for path in sorted((staging / "part-00000").glob("*.ndjson")):
        for line in path.read_text().splitlines():
            resource = json.loads(line)
            pid = (
                resource["id"]
                if resource["resourceType"] == "Patient"
                else resource["subject"]["reference"][8:]
            )
            by_patient.setdefault(pid, []).append(resource)
    return {"stats": stats, **{p: record_from_resources(r, as_of=AS_OF) for p, r in by_patient.items()}}


def test_tiny_export_records(tmp_path: Path) -> None:
    got = _records(TINY, tmp_path / "shards")
    first, second, third = got["101"], got["102"], got["103"]
    assert (first.sex, first.birth_date) == ("female", date(1962, 5, 10))  # type: ignore[attr-defined]
    assert (second.sex, second.birth_date) == ("male", date(2008, 12, 15))  # type: ignore[attr-defined]
    assert third.birth_date == date(1956, 3, 2)  # type: ignore[attr-defined]
    # 150 x 10^3/uL is 150 x 10^9/L (docs/fhir-input.md: 10*3/uL accepted for platelets).
    platelets = [m for m in first.measurements if m.key == "platelets"]  # type: ignore[attr-defined]
    assert [(m.value, m.unit, m.upper_limit_normal, m.date) for m in platelets] == [
        (150.0, "10*9/L", 400.0, date(2026, 11, 20))
    ]
    assert [(m.key, m.value) for m in third.measurements] == [("platelets", 95.0)]  # type: ignore[attr-defined]
    assert "multiple_myeloma" in third.diagnoses[0].concepts  # type: ignore[attr-defined]
    assert sorted((t.agents, t.line) for t in first.therapies) == [  # type: ignore[attr-defined]
        (("bortezomib",), 1), (("daratumumab",), 2), (("lenalidomide",), 1),
    ]  # fmt: skip
    assert [(s.status, s.focus) for s in first.disease_status] == [  # type: ignore[attr-defined]
        ("refractory", "MedicationStatement/de-11")
    ]
    assert [t.type for t in first.transplants] == ["autologous"]  # type: ignore[attr-defined]
    assert [t.type for t in second.transplants] == ["autologous"]  # CPT4 name read as text  # type: ignore[attr-defined]
    stats = got["stats"]
    assert stats.persons == 3 and stats.partitions == 1  # type: ignore[attr-defined]
    assert dict(stats.ignored) == {"condition_occurrence": 1, "death": 1}  # type: ignore[attr-defined]


def test_gender_concepts_are_the_omop_standard_ones() -> None:
    # OHDSI Gender vocabulary: MALE 8507, FEMALE 8532 (all other genders 0).
    assert {g.concept_id: g.gender for g in omop_tables().genders} == {8507: "male", 8532: "female"}


def test_format_is_detected_and_can_be_forced(tmp_path: Path) -> None:
    assert detect_format(TINY) == "omop"
    write_bulk(tmp_path / "fhir", 2, seed=1, as_of=AS_OF)
    assert detect_format(tmp_path / "fhir") == "fhir"
    assert detect_format(tmp_path / "fhir", "omop") == "omop"
    shutil.copy(TINY / "person.csv", tmp_path / "fhir" / "person.csv")
    with pytest.raises(InputError, match="--format"):
        detect_format(tmp_path / "fhir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither"):
        detect_format(tmp_path / "empty")


def _copy_tiny(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    shutil.copytree(TINY, folder)
    return folder


def test_missing_column_names_table_and_column(tmp_path: Path) -> None:
    folder = _copy_tiny(tmp_path)
    lines = (folder / "measurement.csv").read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("measurement_date")
    (folder / "measurement.csv").write_text(
        "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines) + "\n"
    )
    with pytest.raises(InputError) as err:
        run_screen(folder, tmp_path / "out", as_of=AS_OF, scheduler="synchronous", progress=False)
    assert err.value.where == "measurement.measurement_date"


def test_bad_date_names_table_row_and_column_not_the_value(tmp_path: Path) -> None:
    folder = _copy_tiny(tmp_path)
    text = (
        (folder / "drug_exposure.csv").read_text().replace("2024-03-01,2025-09-01", "2024-13-01,2025-09-01")
    )
    (folder / "drug_exposure.csv").write_text(text)
    with pytest.raises(InputError) as err:
        shard_omop(folder, tmp_path / "shards", 10)
    assert err.value.where == "drug_exposure row 3, column drug_exposure_start_date"
    assert "2024-13-01" not in str(err.value)


def test_empty_or_missing_person_table_is_an_error(tmp_path: Path) -> None:
    folder = _copy_tiny(tmp_path)
    (folder / "person.csv").write_text((folder / "person.csv").read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match="person table has no rows"):
        shard_omop(folder, tmp_path / "shards", 10)
    (folder / "person.csv").unlink()
    with pytest.raises(InputError, match="no person table"):
        shard_omop(folder, tmp_path / "shards", 10)


def test_unreadable_gzip_is_an_input_error(tmp_path: Path) -> None:
    folder = _copy_tiny(tmp_path)
    (folder / "measurement.csv").unlink()
    (folder / "measurement.csv.gz").write_bytes(gzip.compress(b"measurement_id,person_id\n")[:12])
    with pytest.raises(InputError, match="cannot read the measurement table"):
        shard_omop(folder, tmp_path / "shards", 10)


def test_synthetic_omop_export_is_deterministic_with_local_concept_ids(tmp_path: Path) -> None:
    write_omop(tmp_path / "a", 20, seed=4, as_of=AS_OF)
    write_omop(tmp_path / "b", 20, seed=4, as_of=AS_OF)
    for name in ("person.csv", "measurement.csv", "concept.csv", "episode.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert all(c["concept_id"] > OMOP_LOCAL_BASE for c in omop_concepts())


def test_cli_writes_an_omop_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from actnav.screen.cli import app

    result = CliRunner().invoke(
        app,
        ["synthetic", str(tmp_path / "pop"), "-n", "3", "--as-of", "2026-11-29", "--format", "omop",
         "--file-format", "parquet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "pop" / "person.parquet").num_rows == 3
    assert detect_format(tmp_path / "pop") == "omop"


def test_corrupt_gzip_stream_names_the_file(tmp_path: Path) -> None:
    folder = _copy_tiny(tmp_path)
    (folder / "measurement.csv").unlink()
    # A valid gzip header followed by bytes that are no deflate stream (zlib error -3).
    (folder / "measurement.csv.gz").write_bytes(gzip.compress(b"x")[:10] + bytes(range(7, 200)))
    with pytest.raises(InputError) as err:
        run_screen(folder, tmp_path / "out", as_of=AS_OF, scheduler="synchronous", progress=False)
    assert err.value.where == "measurement.csv.gz"
    assert "not a valid gzip file" in err.value.message


def test_row_with_wrong_number_of_columns_is_named(tmp_path: Path) -> None:
    folder = _copy_tiny(tmp_path)
    lines = (folder / "measurement.csv").read_text().splitlines()
    lines[2] += ",extra"  # data row 2 (line 3 of the file)
    (folder / "measurement.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        shard_omop(folder, tmp_path / "shards", 10)
    assert err.value.where == "measurement.csv"
    assert "row 2 has the wrong number of columns" in err.value.message
    assert "after row 0" not in err.value.message and "extra" not in str(err.value)


def test_rows_of_unknown_persons_are_logged_as_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # tests/fixtures/omop/tiny/README.md: person 999 has clinical rows but no person row.
    with caplog.at_level("WARNING", logger="actnav.screen.omop"):
        stats = shard_omop(TINY, tmp_path / "shards", 10)
    ignored = {table: n for table, n in stats.ignored.items() if n}
    assert ignored
    (record,) = [r for r in caplog.records if "ignored" in r.getMessage()]
    assert all(f"{table} {n}" in record.getMessage() for table, n in ignored.items())
    assert "999" not in record.getMessage()
