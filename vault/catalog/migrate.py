"""Bring a catalog's schema to this mlvault's head revision, or refuse a newer one.

The common case, a catalog already at head, is answered with one query and without
importing Alembic (which costs a few hundred milliseconds on every command). Otherwise
the upgrade runs inside one transaction (SQLite and PostgreSQL both have transactional
DDL); on PostgreSQL an advisory lock makes concurrent first opens wait for each other
instead of racing to create the same tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

import mlvault_migrations as migrations
from vault.errors import CatalogTooNewError

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in migrations/versions; a test keeps the two equal.
HEAD_REVISION = "0007"
_ADVISORY_LOCK = 0x6D6C7661  # "mlva"


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def head_revision() -> str:
    """The newest schema revision according to the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            value = conn.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            return None  # no alembic_version table yet: a new catalog
    return None if value is None else str(value)


def upgrade(engine: Engine) -> bool:
    """Upgrade the catalog to head; return whether anything ran."""
    if _current_revision(engine) == HEAD_REVISION:
        return False
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in known:
            raise CatalogTooNewError(
                f"the catalog schema ({current}) is newer than this mlvault understands; upgrade mlvault"
            )
        if current == script.get_current_head():
            return False
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return True
