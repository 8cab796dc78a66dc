"""Backing up part of a vault: the catalog rows and stored objects a schedule's include patterns need.

A schedule with include patterns backs up the artifacts whose
names any pattern matches (:func:`vault.access.patterns.matches`) and what opening them needs, as
decided by :func:`select_included`. Packs are kept per *keyring*, not per version: which chunks a
version uses is written only in its sealed manifest, and nothing here decrypts; chunks are
deduplicated within a keyring, so every pack of a keyring an included version (or an included
artifact's namespace) uses is copied. A pack of a keyring only excluded artifacts use is not. So
the snapshot holds, of the catalog: the included artifacts, their versions, files, metadata,
signatures and tags, the lineage rows whose version *and* parent are included (rows to an excluded
parent are dropped: the restored vault cannot name a version it lacks), the kept keyrings with their
packs and chunk index, and the key slots of the kept keyrings and of the owner ring. Tables that
describe the vault rather than its artifacts are kept whole: trust and access policies, principals
and grants, schedules, key events, and the audit log (its rows form one hash chain and cannot be
thinned without breaking ``audit verify``; they may name excluded artifacts). Of the stored
objects, only those of one version or keyring are filtered: the slots under ``keys/owner/`` and
``keys/<kept ring>/``, the manifests (and re-sealed manifests) and provenance records of included
versions, and the kept packs. Every other kind describes the vault and is kept whole — ``config``,
the audit checkpoints, the owner identity, every tag's provenance records (a tag id is a keyed hash:
nothing here can tell which artifact a tag belongs to, and a record of a tag the restored vault
lacks is never read), and any kind added later, so a new vault-wide object is never silently lost.
A restore of such a snapshot is a working vault holding only those artifacts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vault import layout
from vault.access.patterns import matches
from vault.catalog.export import Rows


def _column(rows: Rows, table: str, name: str) -> tuple[list[list[Any]], int]:
    entry = rows[table]
    return entry["rows"], list(entry["columns"]).index(name)


def _keep_rows(rows: Rows, table: str, keep: Callable[[list[Any]], bool]) -> None:
    entry = rows[table]
    entry["rows"] = [row for row in entry["rows"] if keep(row)]


def select_included(rows: Rows, patterns: tuple[str, ...]) -> tuple[Rows, Callable[[str], bool]]:
    """The exported ``rows`` thinned to the artifacts ``patterns`` include, and a predicate on
    storage keys naming the objects those rows need (see the module docstring)."""
    out: Rows = {name: {"columns": list(e["columns"]), "rows": list(e["rows"])} for name, e in rows.items()}
    art_rows, a_id = _column(out, "artifacts", "id")
    a_name = out["artifacts"]["columns"].index("name")
    a_ns = out["artifacts"]["columns"].index("namespace")
    included = [row for row in art_rows if any(matches(p, row[a_name]) for p in patterns)]
    artifact_ids = {row[a_id] for row in included}
    namespaces = {row[a_ns] for row in included}
    ver_rows, v_art = _column(out, "versions", "artifact_id")
    v_id = out["versions"]["columns"].index("id")
    v_ring = out["versions"]["columns"].index("ring_id")
    kept_versions = [row for row in ver_rows if row[v_art] in artifact_ids]
    version_ids = {row[v_id] for row in kept_versions}
    ring_rows, r_id = _column(out, "keyrings", "ring_id")
    r_ns = out["keyrings"]["columns"].index("namespace")
    rings = {row[v_ring] for row in kept_versions} | {
        row[r_id] for row in ring_rows if row[r_ns] in namespaces
    }
    pack_rows, p_id = _column(out, "packs", "id")
    p_ring = out["packs"]["columns"].index("ring_id")
    pack_ids = {row[p_id] for row in pack_rows if row[p_ring] in rings}

    def by(table: str, column: str, values: set[Any]) -> None:
        index = out[table]["columns"].index(column)
        _keep_rows(out, table, lambda row: row[index] in values)

    by("artifacts", "id", artifact_ids)
    by("versions", "id", version_ids)
    by("keyrings", "ring_id", rings)
    for table in ("version_files", "version_metadata", "signatures", "lineage"):
        by(table, "version_id", version_ids)
    by("lineage", "parent_id", version_ids)
    by("tags", "artifact_id", artifact_ids)
    by("tags", "version_id", version_ids)
    by("packs", "id", pack_ids)
    by("chunks", "pack_id", pack_ids)
    by("key_slots", "ring", rings | {layout.OWNER_RING})

    def wanted(key: str) -> bool:
        # Objects of one version or keyring are filtered; every other kind (config, checkpoints, the
        # owner identity, tag records, and kinds added later) describes the vault and is kept whole.
        slot = layout.parse_slot_key(key)
        if slot is not None:
            return slot[0] == layout.OWNER_RING or slot[0] in rings
        record = layout.parse_version_record_key(key)
        if record is not None:
            return record[0] in version_ids
        manifest = layout.parse_manifest_key(key)
        if manifest is None:
            resealed = layout.parse_resealed_manifest_key(key)
            manifest = None if resealed is None else resealed[0]
        if manifest is not None:
            return manifest in version_ids
        pack = layout.parse_pack_key(key)
        return pack is None or pack in pack_ids

    return out, wanted
