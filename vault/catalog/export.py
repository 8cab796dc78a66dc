"""Every catalog row a rebuild needs, read in one transaction and written into an empty catalog.

A backup snapshot carries the catalog as plain values: :func:`export_rows` reads the tables in
:data:`EXPORTED` (foreign keys before the rows that point at them) inside one read transaction
(``REPEATABLE READ`` on PostgreSQL, one transaction on SQLite), so the rows agree with each other.
Each table becomes ``{"columns": [...], "rows": [[...], ...]}`` with JSON-safe values: timestamps as
ISO 8601 in UTC, binary as hex, everything else as it is.

Not exported: ``vault_info`` (the restore sets the vault id itself), and a schedule's lease and run
history (they describe this host's runs, not the vault). A test holds every table of the schema to
one of the two lists, so a new table is a decision, not an omission.

:func:`import_rows` writes them into a catalog that holds no rows of those tables, in one
transaction, checking every value against its column (type, nullability, length) first: a snapshot
that authenticates can still be one a recovery-key holder made, and nothing reaches the database
unchecked. An unknown table or column is refused; a column the snapshot lacks (written by an older
mlvault) is left to its default, which must then be nullable. PostgreSQL sequences of the integer
keys are moved past the imported ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

from vault.catalog.catalog import Catalog
from vault.catalog.schema import (
    access_grants,
    access_policies,
    access_principals,
    artifacts,
    audit_log,
    backup_leases,
    backup_runs,
    backup_schedules,
    chunks,
    key_events,
    key_slots,
    keyrings,
    lineage,
    packs,
    provenance_records,
    signatures,
    tags,
    trust_policies,
    vault_info,
    version_files,
    version_metadata,
    versions,
)
from vault.errors import ConflictError, IntegrityError

EXPORTED: tuple[Table, ...] = (
    keyrings,
    artifacts,
    versions,
    version_files,
    version_metadata,
    lineage,
    tags,
    packs,
    chunks,
    signatures,
    trust_policies,
    key_slots,
    key_events,
    backup_schedules,
    audit_log,
    access_policies,
    access_principals,
    access_grants,
    provenance_records,
)
NOT_EXPORTED: tuple[Table, ...] = (vault_info, backup_leases, backup_runs)
MAX_TEXT = 16 * 1024 * 1024
_BATCH = 2000
_BIG = 1 << 63

Rows = dict[str, dict[str, Any]]


def export_rows(catalog: Catalog) -> Rows:
    """Every exported table's rows, read in one transaction."""
    engine = catalog.engine
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    out: Rows = {}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        for table in EXPORTED:
            columns = list(table.columns)
            order = list(table.primary_key.columns) or columns
            rows = conn.execute(select(*columns).order_by(*order)).all()
            out[table.name] = {
                "columns": [c.name for c in columns],
                "rows": [[_dump(value) for value in row] for row in rows],
            }
    return out


def count_rows(rows: Rows, table: str) -> int:
    """How many rows of ``table`` an export holds."""
    entry = rows.get(table)
    return len(entry["rows"]) if isinstance(entry, dict) and isinstance(entry.get("rows"), list) else 0


def import_rows(catalog: Catalog, rows: Rows) -> int:
    """Write an export into ``catalog``, which must hold none of those rows; returns the row count."""
    tables = {t.name: t for t in EXPORTED}
    unknown = set(rows) - set(tables)
    if unknown:
        raise IntegrityError(
            f"the snapshot holds catalog tables this mlvault does not know: {sorted(unknown)}"
        )
    prepared = [(table, _checked(table, rows[table.name])) for table in EXPORTED if table.name in rows]
    engine = catalog.engine
    total = 0
    with engine.begin() as conn:
        for table in EXPORTED:
            if conn.scalar(select(func.count()).select_from(table)):
                raise ConflictError(f"the catalog {catalog.display_url} is not empty (table {table.name})")
        for table, values in prepared:
            for start in range(0, len(values), _BATCH):
                conn.execute(insert(table), values[start : start + _BATCH])
            total += len(values)
        if conn.dialect.name == "postgresql":
            _advance_sequences(conn)
    return total


def _advance_sequences(conn: Connection) -> None:
    for table in EXPORTED:
        key = list(table.primary_key.columns)
        if len(key) == 1 and isinstance(key[0].type, Integer) and key[0].autoincrement is True:
            column = key[0]
            following = select(func.coalesce(func.max(column), 0) + 1).scalar_subquery()
            sequence = func.pg_get_serial_sequence(table.name, column.name)
            conn.execute(select(func.setval(sequence, following, False)))


def _dump(value: object) -> object:
    if isinstance(value, dt.datetime):
        moment = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return moment.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _checked(table: Table, entry: object) -> list[dict[str, Any]]:
    where = f"the snapshot's {table.name} rows"
    if not isinstance(entry, dict) or not isinstance(entry.get("columns"), list):
        raise IntegrityError(f"{where} are malformed")
    names, rows = entry["columns"], entry.get("rows")
    if not isinstance(rows, list) or len(set(map(str, names))) != len(names):
        raise IntegrityError(f"{where} are malformed")
    columns = {c.name: c for c in table.columns}
    extra = [n for n in names if n not in columns]
    if extra:
        raise IntegrityError(f"{where} name columns this mlvault does not know: {extra}")
    missing = [c for n, c in columns.items() if n not in names and not c.nullable and c.default is None]
    if missing:
        raise IntegrityError(f"{where} lack the required columns {[c.name for c in missing]}")
    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(names):
            raise IntegrityError(f"{where} hold a malformed row")
        out.append({n: _load(columns[n], v, where) for n, v in zip(names, row, strict=True)})
    return out


def _load(column: Column[Any], value: object, where: str) -> object:
    kind = column.type
    bad = IntegrityError(f"{where}: {column.name} {str(value)[:80]!r} is not a valid {kind}")
    if value is None:
        if column.nullable or (column.primary_key and column.autoincrement is True):
            return None
        raise bad
    if isinstance(kind, Boolean):
        if isinstance(value, bool):
            return value
    elif isinstance(kind, Integer | BigInteger):
        if isinstance(value, int) and not isinstance(value, bool) and -_BIG <= value < _BIG:
            return value
    elif isinstance(kind, Float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(kind, DateTime):
        if isinstance(value, str) and len(value) <= 64:
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                raise bad from None
            if moment.tzinfo is not None:
                return moment.astimezone(dt.UTC)
    elif isinstance(kind, LargeBinary):
        if isinstance(value, str) and len(value) <= 2 * MAX_TEXT:
            try:
                return bytes.fromhex(value)
            except ValueError:
                raise bad from None
    elif isinstance(kind, String | Text):
        limit = kind.length or MAX_TEXT
        if isinstance(value, str) and len(value) <= limit:
            return value
    raise bad
