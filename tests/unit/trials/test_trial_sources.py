"""Reading trial records from files (actnav.trials.sources).

Records come from the packaged offline bundle (real ClinicalTrials.gov records), so these tests
need nothing outside the repository. Malformed inputs are built by editing real records.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from actnav.trials.sources import (
    RecordError,
    TrialSourceError,
    iter_bundled_records,
    list_input_files,
    parse_age_years,
    parse_record,
    parse_str_list,
    read_path,
)

ROOT = Path(__file__).resolve().parents[3]
CTGOV_FIXTURES = ROOT / "tests" / "fixtures" / "trials" / "ctgov"


def _bundled() -> dict[str, dict[str, Any]]:
    return {r.record.nct_id: r.record.raw for r in iter_bundled_records() if r.record is not None}


@pytest.fixture(scope="module")
def bundled() -> dict[str, dict[str, Any]]:
    return _bundled()


def _flat(bundled: dict[str, dict[str, Any]], nct: str = "NCT03391466") -> dict[str, Any]:
    return copy.deepcopy(bundled[nct])


def _v2(bundled: dict[str, dict[str, Any]], nct: str = "NCT02576665") -> dict[str, Any]:
    return copy.deepcopy(bundled[nct])


# ---- ages and lists ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("18 Years", 18.0),
        ("1 Year", 1.0),
        ("6 Months", 0.5),
        ("18 months", 1.5),
        ("2 Weeks", 0.0383),
        ("30 Days", 0.0821),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_registry_ages_become_years(text: str | None, years: float | None) -> None:
    assert parse_age_years(text) == years


@pytest.mark.parametrize("bad", ["eighteen", "18", "Years 18", 18])
def test_an_unreadable_age_names_the_field(bad: object) -> None:
    with pytest.raises(RecordError) as err:
        parse_age_years(bad, "maximum_age")
    assert err.value.field == "maximum_age"


def test_list_fields_stored_as_python_repr_strings_are_parsed_as_literals() -> None:
    assert parse_str_list("['PHASE1', 'PHASE2']", "phases") == ("PHASE1", "PHASE2")
    assert parse_str_list(["Lymphoma", " "], "condition") == ("Lymphoma",)
    assert parse_str_list("Lymphoma", "condition") == ("Lymphoma",)
    assert parse_str_list("", "condition") == ()


def test_a_repr_string_with_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(RecordError) as err:
        parse_str_list(f"[__import__('pathlib').Path({str(marker)!r}).touch()]", "phases")
    assert err.value.field == "phases"
    assert not marker.exists()


def test_a_list_of_non_strings_names_the_item() -> None:
    with pytest.raises(RecordError) as err:
        parse_str_list("['PHASE1', 2]", "phases")
    assert err.value.field == "phases[1]"


# ---- shapes ------------------------------------------------------------------------------------


def test_flattened_record_is_normalised(bundled: dict[str, dict[str, Any]]) -> None:
    # NCT03391466 (ZUMA-7): minimum_age "18 Years", maximum_age "", condition list, phases PHASE3.
    record = parse_record(_flat(bundled))
    assert record.nct_id == "NCT03391466"
    assert record.source_format == "trialgpt_flat"
    assert record.minimum_age_years == 18.0 and record.maximum_age_years is None
    assert record.phases == ("PHASE3",)
    assert record.conditions == ("Relapsed/Refractory Diffuse Large B-Cell Lymphoma (DLBCL)",)
    assert record.eligibility_text.startswith("Key Inclusion Criteria:")
    assert record.last_update is None
    assert record.raw == bundled["NCT03391466"]


def test_flattened_record_with_repr_string_lists(bundled: dict[str, dict[str, Any]]) -> None:
    flat = _flat(bundled)
    flat["phases"] = "['PHASE1', 'PHASE2']"
    flat["condition"] = "['Lymphoma', 'DLBCL']"
    record = parse_record(flat)
    assert record.phases == ("PHASE1", "PHASE2")
    assert record.conditions == ("Lymphoma", "DLBCL")


def test_v2_study_without_derived_section(bundled: dict[str, dict[str, Any]]) -> None:
    # NCT02576665 (Toca 6): three sites with geo points, ages 18 to 75 years, TERMINATED.
    record = parse_record(_v2(bundled))
    assert record.source_format == "ctgov_v2"
    assert (record.minimum_age_years, record.maximum_age_years) == (18.0, 75.0)
    assert record.overall_status == "TERMINATED"
    assert record.interventions[0].name == "Toca 511"
    assert "vocimagene amiretrorepvec" in record.interventions[0].other_names
    assert len(record.sites) == 3
    assert record.sites[0].city == "Denver" and record.sites[0].postcode == "80218"
    assert record.sites[0].lat == pytest.approx(39.73915)
    assert record.sponsor == "Tocagen Inc."


def test_v2_study_with_derived_section_and_last_update(bundled: dict[str, dict[str, Any]]) -> None:
    study = _v2(bundled)
    study["derivedSection"] = {"miscInfoModule": {"versionHolder": "2026-11-27"}}
    study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {
        "date": "2025-03",
        "type": "ACTUAL",
    }
    record = parse_record(study)
    assert record.last_update is not None and record.last_update.isoformat() == "2025-03-01"
    assert record.raw["derivedSection"]["miscInfoModule"]["versionHolder"] == "2026-11-27"


def _write(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_paged_search_response(tmp_path: Path) -> None:
    results = list(read_path(CTGOV_FIXTURES / "studies-page-1.json"))
    assert [r.record.nct_id for r in results if r.record] == ["NCT02133196", "NCT02621021", "NCT02830724"]
    assert results[0].record is not None and results[0].record.last_update is not None


def test_ndjson_zip_and_gzip(tmp_path: Path, bundled: dict[str, dict[str, Any]]) -> None:
    lines = "\n".join(json.dumps(bundled[n]) for n in ("NCT03391466", "NCT02576665")) + "\n"
    nd = tmp_path / "two.ndjson"
    nd.write_text(lines, encoding="utf-8")
    gz = tmp_path / "two.jsonl.gz"
    gz.write_bytes(gzip.compress(lines.encode()))
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("dir/two.ndjson", lines)
        zf.writestr("page.json", (CTGOV_FIXTURES / "studies-page-2.json").read_text(encoding="utf-8"))
        zf.writestr("README.md", "not a record")
    for path, expected in ((nd, 2), (gz, 2), (archive, 5)):
        results = list(read_path(path))
        assert [r.problem for r in results if r.problem] == []
        assert len(results) == expected


def test_several_json_values_in_a_json_file_are_read_as_ndjson(
    tmp_path: Path, bundled: dict[str, dict[str, Any]]
) -> None:
    path = tmp_path / "records.json"
    path.write_text(json.dumps(bundled["NCT03391466"]) + "\n" + json.dumps(bundled["NCT03575351"]) + "\n")
    assert [r.record.nct_id for r in read_path(path) if r.record] == ["NCT03391466", "NCT03575351"]


def test_a_folder_reads_only_record_files(tmp_path: Path, bundled: dict[str, dict[str, Any]]) -> None:
    _write(tmp_path / "a.json", bundled["NCT03391466"])
    (tmp_path / "index.tsv").write_text("nctid\n")
    (tmp_path / "SOURCE.md").write_text("# source\n")
    assert [p.name for p in list_input_files(tmp_path)] == ["a.json"]
    with pytest.raises(TrialSourceError) as err:
        list_input_files(tmp_path / "missing")
    assert "missing" in str(err.value)


# ---- malformed records are reported and skipped -------------------------------------------------


def test_missing_nctid_is_reported_with_file_record_and_field(
    tmp_path: Path, bundled: dict[str, dict[str, Any]]
) -> None:
    bad = _flat(bundled)
    del bad["nctid"]
    path = _write(tmp_path / "batch.json", [bundled["NCT03575351"], bad, bundled["NCT03672851"]])
    results = list(read_path(path))
    assert [r.record.nct_id for r in results if r.record] == ["NCT03575351", "NCT03672851"]
    (problem,) = [r.problem for r in results if r.problem]
    assert (problem.file, problem.record, problem.field) == (str(path), "record 2", "nctid")
    assert str(problem).startswith(f"{path}:record 2:nctid: missing")


def test_eligibility_not_a_string_names_the_trial_and_field(
    tmp_path: Path, bundled: dict[str, dict[str, Any]]
) -> None:
    flat = _flat(bundled)
    flat["raw_criteria"] = ["Inclusion Criteria:", "* Age >= 18"]
    study = _v2(bundled)
    study["protocolSection"]["eligibilityModule"]["eligibilityCriteria"] = {"text": "x"}
    results = list(read_path(_write(tmp_path / "bad.json", [flat, study])))
    problems = [r.problem for r in results if r.problem]
    assert [(p.record, p.field) for p in problems] == [
        ("NCT03391466", "raw_criteria"),
        ("NCT02576665", "protocolSection.eligibilityModule.eligibilityCriteria"),
    ]
    assert all("expected a string, got list" in p.problem or "got dict" in p.problem for p in problems)


def test_zip_with_one_bad_line_lands_the_rest(tmp_path: Path, bundled: dict[str, dict[str, Any]]) -> None:
    good = [json.dumps(bundled[n]) for n in ("NCT03391466", "NCT03575351", "NCT03672851")]
    lines = [good[0], '{"nctid": "NCT03575351", "title": ', good[2]]
    archive = tmp_path / "trials.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("trials.ndjson", "\n".join(lines) + "\n")
    results = list(read_path(archive))
    assert [r.record.nct_id for r in results if r.record] == ["NCT03391466", "NCT03672851"]
    (problem,) = [r.problem for r in results if r.problem]
    assert (problem.file, problem.record, problem.field) == (f"{archive}!trials.ndjson", "line 2", "(line)")
    assert "not valid JSON" in problem.problem


def test_a_bad_age_and_a_bad_nct_id_are_reported(bundled: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    age = _flat(bundled)
    age["minimum_age"] = "about 18"
    ident = _flat(bundled)
    ident["nctid"] = "NCT123"
    results = list(read_path(_write(tmp_path / "x.json", [age, ident])))
    assert [(r.problem.record, r.problem.field) for r in results if r.problem] == [
        ("NCT03391466", "minimum_age"),
        ("record 2", "nctid"),
    ]


def test_unreadable_files_yield_one_problem_each(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"studies": [', encoding="utf-8")
    notzip = tmp_path / "fake.zip"
    notzip.write_bytes(b"not a zip")
    other = _write(tmp_path / "other.json", {"hello": "world"})
    problems = [r.problem for p in (broken, notzip, other) for r in read_path(p) if r.problem]
    assert [(p.record, p.field) for p in problems] == [
        ("-", "(file)"),
        ("-", "(file)"),
        ("record 1", "record"),
    ]
    assert "not valid JSON" in problems[0].problem
    assert "not a readable zip" in problems[1].problem


def test_bundled_records_all_parse() -> None:
    results = list(iter_bundled_records())
    assert len(results) == 59
    assert all(r.record is not None for r in results)
    formats = sorted({r.record.source_format for r in results if r.record})
    assert formats == ["ctgov_v2", "trialgpt_flat"]


def test_gzip_member_must_be_json(tmp_path: Path) -> None:
    buffer = io.BytesIO(b"garbage")
    bad = tmp_path / "x.json.gz"
    bad.write_bytes(buffer.getvalue())
    (result,) = list(read_path(bad))
    assert result.problem is not None and "gzip" in result.problem.problem


def test_streamed_ndjson_problems_are_reported(tmp_path: Path, bundled: dict[str, dict[str, Any]]) -> None:
    corrupt = tmp_path / "export.ndjson.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(
        json.dumps(bundled["NCT03391466"]).encode() + b"\n" + '{"title": "caf\xe9"}'.encode("latin-1")
    )
    (gz_problem,) = [r.problem for r in read_path(corrupt) if r.problem]
    assert "gzip" in gz_problem.problem
    results = list(read_path(latin))
    assert results[0].record is not None
    assert results[-1].problem is not None and "UTF-8" in results[-1].problem.problem
