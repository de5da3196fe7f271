"""Persistence: SQLAlchemy tables and sessions (SQLite by default, PostgreSQL when configured)."""
