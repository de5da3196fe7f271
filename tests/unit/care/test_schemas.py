"""The published JSON Schemas (``schemas/*.schema.json``) equal the ones the models generate."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "export_schemas.py"
FIX = "run `python scripts/export_schemas.py` (or `make schemas`) and commit the result"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_schemas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    result: dict[Path, str] = _load_script().generate()
    return result


def test_the_script_publishes_the_evaluation_and_product_schemas(generated: dict[Path, str]) -> None:
    names = sorted(path.name for path in generated)
    assert names == ["evaluation.schema.json", "product.schema.json", "toxicity-input.schema.json"]


@pytest.mark.parametrize(
    "name", ["evaluation.schema.json", "product.schema.json", "toxicity-input.schema.json"]
)
def test_committed_schema_equals_the_generated_one(generated: dict[Path, str], name: str) -> None:
    path = ROOT / "schemas" / name
    assert path.is_file(), f"schemas/{name} is missing: {FIX}"
    text = next(text for p, text in generated.items() if p.name == name)
    assert path.read_text(encoding="utf-8") == text, f"schemas/{name} is out of date: {FIX}"


def test_the_evaluation_schema_forbids_unknown_keys(generated: dict[Path, str]) -> None:
    schema = json.loads(next(t for p, t in generated.items() if p.name == "evaluation.schema.json"))
    assert schema["title"] == "Evaluation"
    assert schema["additionalProperties"] is False
