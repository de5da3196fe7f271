"""The shipped grading tables load, cite their source, and are rejected when broken."""

from __future__ import annotations

import copy
import typing
from typing import Any

import pytest

from actnav.errors import DataFileError
from actnav.knowledge.loader import data_root, parse_file, read_yaml
from actnav.toxicity.crs import CRS_FILE, CrsTable, load_crs_table
from actnav.toxicity.icans import (
    CAPD_FILE,
    ICANS_FILE,
    CapdTable,
    IcansTable,
    load_capd_table,
    load_icans_table,
)
from actnav.toxicity.ice import ICE_FILE, IceTable, load_ice_table
from actnav.toxicity.models import Assessment, GradingTableFile, IceItems, OxygenDevice, _sources

TABLES: list[tuple[str, type[GradingTableFile]]] = [
    (CRS_FILE, CrsTable),
    (ICANS_FILE, IcansTable),
    (ICE_FILE, IceTable),
    (CAPD_FILE, CapdTable),
]


def _raw(name: str) -> Any:
    return copy.deepcopy(read_yaml(data_root() / name, name))


@pytest.mark.parametrize(("name", "model"), TABLES)
def test_every_table_loads_and_every_row_cites_lee_2019_with_a_table(
    name: str, model: type[GradingTableFile]
) -> None:
    table = parse_file(model, _raw(name), name)
    assert "625-638" in table.references["lee2019"].citation
    sources = _sources(table, "")
    assert sources
    for where, source in sources:
        assert source.verification.value in {"V", "S", "R", "U"}, where
        if source.ref == "lee2019":
            assert source.section and "Table" in source.section, where


def test_an_unknown_key_in_a_row_is_rejected_naming_file_row_and_field() -> None:
    data = _raw(CRS_FILE)
    data["hypoxia"][4]["flow"] = 3
    with pytest.raises(DataFileError) as caught:
        parse_file(CrsTable, data, CRS_FILE)
    assert caught.value.where == "toxicity/astct-crs.yaml: rule crs-hypoxia-mask: hypoxia.4.flow"


def test_a_device_without_a_row_is_rejected() -> None:
    data = _raw(CRS_FILE)
    data["hypoxia"] = [row for row in data["hypoxia"] if row["id"] != "crs-hypoxia-blow-by"]
    with pytest.raises(DataFileError, match="device 'blow_by'"):
        parse_file(CrsTable, data, CRS_FILE)


def test_overlapping_flow_rows_are_rejected() -> None:
    data = _raw(CRS_FILE)
    data["hypoxia"][1]["flow_l_min"] = {"le": 7.0}
    with pytest.raises(DataFileError, match="matches rows"):
        parse_file(CrsTable, data, CRS_FILE)


def test_an_undeclared_reference_is_rejected() -> None:
    data = _raw(ICANS_FILE)
    data["seizure"][1]["source"]["ref"] = "nowhere"
    with pytest.raises(DataFileError, match="not declared under references"):
        parse_file(IcansTable, data, ICANS_FILE)


def test_a_gap_in_the_ice_bands_is_rejected() -> None:
    data = _raw(ICE_FILE)
    data["grade_bands"][1]["min"] = 8  # 7 is left without a band
    with pytest.raises(DataFileError, match="score 7 is in 0 bands"):
        parse_file(IceTable, data, ICE_FILE)


def test_a_missing_consciousness_level_is_rejected() -> None:
    data = _raw(ICANS_FILE)
    data["consciousness"].pop()
    with pytest.raises(DataFileError, match="consciousness: rows must cover"):
        parse_file(IcansTable, data, ICANS_FILE)


def test_thresholds_live_in_the_data() -> None:
    crs = load_crs_table()
    assert (crs.fever.threshold.value, crs.fever.threshold.unit, crs.fever.comparator) == (38.0, "Cel", "ge")
    low = next(r for r in crs.hypoxia if r.id == "crs-hypoxia-low-flow-nasal-cannula")
    assert low.flow_l_min is not None and low.flow_l_min.le == 6.0
    assert [a.id for a in crs.vasopressor_agents if not a.counts_toward_multiple] == ["vasopressin"]
    assert load_capd_table().applies_to.max_age_years == 12
    assert next(b for b in load_capd_table().grade_bands if b.grade == 3).min == 9


def test_the_input_schema_bounds_match_the_tables() -> None:
    ice = load_ice_table()
    for item in ice.items:
        meta = IceItems.model_fields[item.id].metadata
        assert any(getattr(m, "le", None) == item.max_points for m in meta), item.id
    assert any(getattr(m, "le", None) == ice.total_max for m in Assessment.model_fields["ice_score"].metadata)
    capd_max = load_capd_table().score_range.max
    assert any(getattr(m, "le", None) == capd_max for m in Assessment.model_fields["capd_score"].metadata)


def test_every_oxygen_device_code_has_a_row() -> None:
    crs = load_crs_table()
    covered = {device for row in crs.hypoxia for device in row.devices}
    assert covered == set(typing.get_args(OxygenDevice))


def test_icans_domain_order_is_complete() -> None:
    assert set(load_icans_table().domain_order) == {
        "ice",
        "capd",
        "consciousness",
        "seizure",
        "motor",
        "raised_icp",
    }
