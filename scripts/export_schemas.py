"""Write the published JSON Schemas from the pydantic models (run by ``make schemas``).

* ``schemas/evaluation.schema.json``: the report of ``actnav evaluate --format json``
  (:class:`actnav.eligibility.report_model.Evaluation`).
* ``schemas/product.schema.json``: one product file under ``src/actnav/data/products/``
  (:class:`actnav.knowledge.models.Product`).
* ``schemas/toxicity-input.schema.json``: the input of ``actnav toxicity grade``
  (:mod:`actnav.toxicity.models`).

The committed files must equal what this script generates; ``tests/unit/care/test_schemas.py``
fails when a model changed and the script was not run.

Usage::

    python scripts/export_schemas.py           # write the files
    python scripts/export_schemas.py --check   # exit 1 if a committed file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "schemas"


def generate() -> dict[Path, str]:
    """The schema files this script writes, keyed by path, with their exact content."""
    from actnav.care.report import schema_json
    from actnav.eligibility.report_model import Evaluation
    from actnav.knowledge.models import Product
    from actnav.toxicity.models import export_schema

    return {
        SCHEMA_DIR / "evaluation.schema.json": schema_json(Evaluation),
        SCHEMA_DIR / "product.schema.json": schema_json(Product),
        SCHEMA_DIR / "toxicity-input.schema.json": export_schema(),
    }


def stale() -> list[Path]:
    """Schema files that are missing or differ from the generated ones."""
    return [
        path
        for path, text in generate().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, verify) the schema files; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path.relative_to(ROOT)} (run: python scripts/export_schemas.py)")
        return 1 if out_of_date else 0
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in generate().items():
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
