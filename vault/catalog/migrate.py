"""Bring a catalog's schema to this mlvault's head revision, or refuse a newer one.

Runs inside one transaction (SQLite and PostgreSQL both have transactional DDL). On
PostgreSQL an advisory lock makes concurrent first opens wait for each other instead of
racing to create the same tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

import migrations
from vault.errors import CatalogTooNewError

_ADVISORY_LOCK = 0x6D6C7661  # "mlva"


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def head_revision() -> str:
    """The newest schema revision this mlvault knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade(engine: Engine) -> bool:
    """Upgrade the catalog to head; return whether anything ran."""
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
