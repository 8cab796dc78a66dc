"""Catalog engines: one SQLAlchemy engine per catalog URL, with database failures mapped once.

SQLite (a file inside the vault, or any path the user names) runs in WAL mode with
``BEGIN IMMEDIATE`` transactions, so writers are serialized instead of deadlocking on
lock upgrade. PostgreSQL gets a small pool with pre-ping.

Failures that are not the caller's fault are mapped here, at the boundary, for every
query any module runs on the engine (through SQLAlchemy's ``handle_error`` event):

- a corrupt or truncated SQLite file, a file that is not a database, or a PostgreSQL
  ``data_corrupted`` / ``index_corrupted`` error → :class:`CatalogDamagedError` (exit 5);
- a catalog path that is a FIFO, a directory or a device is refused before SQLite opens it
  (SQLite would block on a FIFO forever);
- a URL whose database driver is not installed → :class:`ConfigurationError` naming the
  extra to install.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, ExceptionContext, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from vault.errors import CatalogDamagedError, ConfigurationError

_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_PG_DAMAGE = frozenset({"XX001", "XX002"})  # data_corrupted, index_corrupted
POSTGRES_DRIVER_HINT = "the PostgreSQL driver is not installed: pip install 'mlvault[postgres]'"


def now() -> dt.datetime:
    """The timestamp catalog rows are written with (UTC)."""
    return dt.datetime.now(dt.UTC)


def upsert_for(engine: Engine) -> Callable[..., Any]:
    """The dialect's ``insert`` (it has ``on_conflict_do_nothing`` / ``_do_update``)."""
    # Imported here: the PostgreSQL dialect costs a SQLite vault's every command ~50 ms (issue 13).
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


class Aggregate:
    """The queries of one aggregate over a catalog engine (the base of each, and of ``Catalog``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = upsert_for(engine)


def shown(url: URL) -> str:
    """A catalog URL as it may be shown to a user (password hidden)."""
    return url.render_as_string(hide_password=True)


def damaged(url: str, reason: str) -> CatalogDamagedError:
    """The error for a catalog that can no longer be read."""
    return CatalogDamagedError(
        f"the catalog {url} is damaged ({reason}); restore it from a backup "
        "or run `mlvault catalog rebuild` (coming soon)"
    )


def parse_url(url: str) -> URL:
    """Parse a catalog URL; ConfigurationError if it is not one."""
    try:
        return make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigurationError(f"invalid catalog URL {url!r}") from exc


def create_catalog_engine(parsed: URL) -> Engine:
    """An engine for ``parsed`` (sqlite or postgresql), with damage mapping installed."""
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(f"unsupported catalog {backend!r}: use sqlite or postgresql")
    if backend == "sqlite":
        _refuse_non_file(parsed)
    try:
        engine = (
            _sqlite_engine(parsed)
            if backend == "sqlite"
            else create_engine(parsed, pool_pre_ping=True, pool_size=4)
        )
    except ImportError as exc:  # the dialect imports its DBAPI module here
        if backend == "postgresql":
            raise ConfigurationError(f"{POSTGRES_DRIVER_HINT} (no module {exc.name!r})") from exc
        raise ConfigurationError(f"the catalog driver for {shown(parsed)} is not installed: {exc}") from exc
    except sa_exc.NoSuchModuleError as exc:
        raise ConfigurationError(
            f"unsupported catalog driver {parsed.drivername!r}: use sqlite or postgresql+psycopg"
        ) from exc
    _map_damage(engine, shown(parsed))
    return engine


def _refuse_non_file(parsed: URL) -> None:
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing (SQLite creates it) or unreadable (SQLite says why)
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
        raise damaged(shown(parsed), f"{path} is {kind}, not a database file")


def _sqlite_engine(parsed: URL) -> Engine:
    engine = create_engine(parsed, poolclass=NullPool, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_damage(error: BaseException | None) -> bool:
    """Whether a DBAPI error says the database itself is corrupt or not a database."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return getattr(error, "sqlstate", None) in _PG_DAMAGE


def _map_damage(engine: Engine, url: str) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        original = context.original_exception
        if is_damage(original):
            raise damaged(url, str(original).strip() or type(original).__name__) from (
                context.sqlalchemy_exception or original
            )
