"""``backup restore``: a working vault rebuilt from a backup target, with no catalog to start from.

The vault may be gone entirely; the target and the recovery identity are all this needs. Without
an identity file, the owner's passphrase will do when the vault kept its recovery identity sealed
under the owner key (:func:`kept_recovery_identity`): the target's owner-ring passphrase slot opens
the owner key, which opens the kept ``recovery-identity/<slot id>`` object.

1. The target's marker names the vault id; the snapshot is the one asked for or the newest. Its
   envelope is opened with the recovery identity (:func:`vault.backup.snapshot.open_snapshot`): a
   snapshot that does not authenticate, or an object list whose SHA-256 the payload does not name,
   is refused (exit 5) before anything is written. Its policies are verified against the vault's
   admin key (``--admin-key-fingerprint`` or this client's pins, :mod:`vault.backup.anchor`), and
   its signature must be one of a signer that verified policy accepts (exit 5 otherwise).
2. The new storage must hold no vault (``config``). Every object the list names except ``config`` is
   copied verbatim, sizes checked; a restore that was interrupted copies only the rest.
3. The catalog (``--target-catalog``, else the vault's default place) must be empty: it gets the
   vault id and every row of the snapshot (:func:`vault.catalog.export.import_rows`).
4. Every version's manifest is authenticated and cross-checked against its rows with the keys the
   recovery identity opens (its x25519 slot on the owner ring opens the owner key, which opens every
   keyring). A failure is exit 5 and no config is written.
5. This client pins the admin key and serials of the snapshot's policies (:func:`vault.backup.anchor.repin`).
6. Last, the new ``config``: the same vault id, chunker, pack size and compression, naming only the
   new catalog (nothing when it is the default). Until then the storage is not an openable vault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import platformdirs

from vault import layout
from vault.backup import snapshot
from vault.backup.anchor import SnapshotTrust, repin, snapshot_trust
from vault.backup.copy import copy_objects
from vault.bootstrap import shareable_catalog_url
from vault.catalog import open_catalog
from vault.catalog.export import import_rows
from vault.errors import ConflictError, IntegrityError, NotFoundError
from vault.formats import ALTERED
from vault.formats import config as config_format
from vault.keycache import KeyCache, Unlock
from vault.repository.manifests import load_manifest
from vault.storage import Backend, StorageOptions, open_backend

if TYPE_CHECKING:
    from vault.clientstate import ClientState
    from vault.clientstate.identities import Identity


@dataclass(frozen=True)
class RestoreReport:
    """What a restore rebuilt."""

    vault_id: str
    snapshot_id: str
    objects_copied: int
    bytes_copied: int
    rows: int
    versions_checked: int
    catalog_url: str
    signed_by: str = "unsigned"

    def describe(self) -> str:
        """One line for the user."""
        return (
            f"restored vault {self.vault_id} from snapshot {self.snapshot_id}: {self.objects_copied} objects "
            f"copied, {self.rows} catalog rows into {self.catalog_url}, {self.versions_checked} manifests "
            f"authenticated; snapshot signed by {self.signed_by}"
        )


@dataclass(frozen=True)
class OpenedSnapshot:
    """An authenticated snapshot: its object list and its payload."""

    vault_id: str
    objects: snapshot.ObjectList
    payload: dict[str, Any]
    trust: SnapshotTrust
    signed_by: str


def open_target_snapshot(
    target: Backend,
    identity: Identity,
    snapshot_id: str | None,
    *,
    admin_fingerprints: tuple[str, ...] = (),
    state: ClientState | None = None,
) -> OpenedSnapshot:
    """The snapshot ``snapshot_id`` (default: the newest) on ``target``, authenticated and its
    signer accepted by its access policy, verified against the admin key (see the module docstring)."""
    vault_id = snapshot.read_marker(target)
    if vault_id is None:
        raise NotFoundError(f"{target.url} is not an mlvault backup target (no backup/target marker)")
    ids = snapshot.snapshot_ids(target)
    if snapshot_id is None:
        if not ids:
            raise NotFoundError(f"the backup target {target.url} holds no snapshot yet")
        snapshot_id = ids[-1]
    elif not layout.is_id(snapshot_id) or snapshot_id not in ids:
        raise NotFoundError(f"no snapshot {snapshot_id!r} on {target.url} (see `mlvault backup ls`)")
    raw_list = target.get(layout.snapshot_objects_key(snapshot_id), max_size=snapshot.MAX_OBJECT_LIST)
    raw = target.get(layout.snapshot_key(snapshot_id), max_size=snapshot.MAX_ENVELOPE)
    compressed = snapshot.open_snapshot(raw, identity, bytes.fromhex(vault_id), bytes.fromhex(snapshot_id))
    payload = snapshot.decompress_json(compressed, snapshot.MAX_PAYLOAD, f"snapshot {snapshot_id}")
    expected = {
        "format": snapshot.PAYLOAD_FORMAT,
        "version": 1,
        "vault_id": vault_id,
        "snapshot_id": snapshot_id,
        "objects_sha256": snapshot.sha256_hex(raw_list),
    }
    for name, value in expected.items():
        if payload.get(name) != value:
            raise IntegrityError(f"snapshot {snapshot_id} does not match its {name}{ALTERED}")
    objects = snapshot.ObjectList.decode(raw_list, snapshot_id)
    if objects.vault_id != vault_id or layout.CONFIG not in objects.objects:
        raise IntegrityError(f"the object list of snapshot {snapshot_id} is not this vault's{ALTERED}")
    if not isinstance(payload.get("catalog"), dict):
        raise IntegrityError(f"snapshot {snapshot_id} holds no catalog rows{ALTERED}")
    envelope = snapshot.parse_envelope(raw)
    trust = snapshot_trust(
        payload["catalog"], vault_id, envelope.signature, admin_fingerprints=admin_fingerprints, state=state
    )
    signed_by = snapshot.check_signature(envelope, raw_list, trust.acceptance, objects.created_at)
    return OpenedSnapshot(vault_id, objects, payload, trust, signed_by)


def kept_recovery_identity(
    target: Backend, passphrase: Callable[[], bytes], *, state: ClientState | None = None
) -> Identity:
    """The recovery identity the vault kept sealed under its owner key (``keys add-recovery
    --generate``), read from ``target`` and opened with the owner key the passphrase opens there.

    The target holds the owner ring's slots and ``recovery-identity/`` objects verbatim, so no
    recovery identity file is needed: only a passphrase that opened the vault's owner key.
    """
    from vault.keys import recovery

    vault_id = snapshot.read_marker(target)
    if vault_id is None:
        raise NotFoundError(f"{target.url} is not an mlvault backup target (no backup/target marker)")
    kept = [s for s in recovery.kept_slots(target) if target.exists(layout.slot_key(layout.OWNER_RING, s))]
    if not kept:
        raise NotFoundError(
            f"the backup target {target.url} holds no recovery identity kept by the vault "
            "(`keys add-recovery --generate`); give the recovery identity with --recovery-key"
        )
    keys = KeyCache(target, bytes.fromhex(vault_id), Unlock(passphrase=passphrase), key_pins=state)
    return recovery.load(target, keys.vault_id, keys.owner_key(), kept[-1])


def default_catalog_url(url: str, vault_id: str) -> str:
    """Where a vault at ``url`` keeps its catalog when its config names none (as ``open_vault`` does)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        local = Path(parsed.path if parsed.scheme == "file" else url).expanduser().resolve()
        return f"sqlite:///{local / layout.CATALOG_FILE}"
    path = Path(platformdirs.user_data_dir("mlvault")) / "catalogs" / f"{vault_id}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def restore_vault(
    source: Backend,
    identity: Identity,
    *,
    to_url: str,
    to_options: StorageOptions | None = None,
    snapshot_id: str | None = None,
    target_catalog: str | None = None,
    admin_fingerprints: tuple[str, ...] = (),
    state: ClientState | None = None,
) -> RestoreReport:
    """Rebuild the vault a snapshot on ``source`` describes at ``to_url`` (see the module docstring);
    ``state``: this client's pins, read as the anchor and re-pinned after."""
    opened = open_target_snapshot(
        source, identity, snapshot_id, admin_fingerprints=admin_fingerprints, state=state
    )
    sid, vault_id = opened.objects.snapshot_id, opened.vault_id
    old_config = config_format.decode(source.get(layout.CONFIG, max_size=config_format.MAX_SIZE))
    if old_config.vault_id != vault_id:
        raise IntegrityError(f"the config on the backup target is not vault {vault_id}'s{ALTERED}")
    new_config = replace(
        old_config, catalog=shareable_catalog_url(target_catalog) if target_catalog else None
    )
    destination = open_backend(to_url, to_options, create=True)
    try:
        if destination.exists(layout.CONFIG):
            raise ConflictError(f"a vault already exists at {to_url}; restore into a new, empty location")
        wanted = sorted((k, s) for k, s in opened.objects.objects.items() if k != layout.CONFIG)
        copied = copy_objects(source, destination, wanted)
        catalog_url = target_catalog or default_catalog_url(to_url, vault_id)
        catalog = open_catalog(catalog_url)
        try:
            catalog.set_info("vault_id", vault_id)
            rows = import_rows(catalog, opened.payload["catalog"])
            keys = KeyCache(destination, bytes.fromhex(vault_id), Unlock(identity=lambda: identity))
            versions = catalog.all_versions()
            for version in versions:
                load_manifest(destination, keys.keyring(version.ring_id), vault_id, version)
            shown = catalog.display_url
        finally:
            catalog.close()
        if state is not None:
            repin(state, vault_id, opened.trust)
        destination.put(layout.CONFIG, config_format.encode(new_config))
    finally:
        destination.close()
    return RestoreReport(
        vault_id, sid, copied.objects, copied.bytes, rows, len(versions), shown, opened.signed_by
    )
