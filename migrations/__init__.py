"""Alembic migrations for the mlvault catalog, shipped inside the wheel."""
