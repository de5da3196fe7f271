"""Write a new Alembic revision by comparing the declared tables with the newest revision.

Usage::

    python scripts/new_migration.py "what changed" [--rev-id 0003] [--tables a,b]

Upgrades a throw-away SQLite database to the current head, then autogenerates the difference into
``src/actnav/store/migrations/versions/``. Read and edit the result before committing: check
PostgreSQL types and server defaults by hand.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from actnav.store.migrate import alembic_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message")
    parser.add_argument("--rev-id", default=None)
    parser.add_argument("--tables", default=None, help="comma-separated tables to include (default all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'head.db'}")
        with engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            if args.tables:
                cfg.attributes["include_tables"] = set(args.tables.split(","))
            command.upgrade(cfg, "head")
            scripts = command.revision(cfg, message=args.message, autogenerate=True, rev_id=args.rev_id)
    # Autogenerate writes JSONB(astext_type=Text()) without importing Text.
    for script in scripts if isinstance(scripts, list) else [scripts]:
        if script is not None:
            path = Path(script.path)
            path.write_text(path.read_text().replace("astext_type=Text()", "astext_type=sa.Text()"))


if __name__ == "__main__":
    main()
