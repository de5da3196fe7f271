"""Alembic migrations of the actnav database (see actnav.store.migrate)."""
