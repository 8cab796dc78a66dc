"""Every storage key the vault uses, built and parsed in one place.

A vault's storage is a flat, write-once key → bytes map (see :mod:`vault.storage.base`).
This module is the only one that knows what the keys look like; everything else asks it
for a key of a kind and never builds one from a literal (restic's ``backend/layout`` is
the model). Parsers are strict: a listed key that does not have exactly the shape of its
kind is not ours, and the caller treats it as foreign rather than guessing.

::

    config                      the vault config (plaintext, no secrets)
    keys/owner/<slot id>        passphrase (and later KMS, recipient) slots on the owner key
    keys/<ring id>/<slot id>    slots wrapping a namespace keyring
    owner-identity/<id>         the owner identity, sealed under the owner key (vault.keys.owner_identity)
    recovery-identity/<slot id> a kept recovery identity, sealed under the owner key (vault.keys.recovery)
    namespaces/<id>             owner-signed record: a deeper namespace's own keyring (vault.keys.subtrees)
    manifests/<version id>      sealed version manifests
    manifests/<version id>.e<N> the same manifest re-sealed under key epoch N (``rekey --reencrypt``)
    packs/<id[:2]>/<pack id>    packs of encrypted chunk records
    audit/<seq, 20 digits>      audit checkpoints (vault.audit.checkpoint), zero-padded so a listing sorts
    records/v/<version id>/<sha256>   provenance records of a version (push, attest), named by their digest
    records/t/<tag id>/<seq, 20 digits>  provenance records of a tag's moves (tag id: a keyed hash of
                                artifact and tag, so names reveal nothing), numbered so a listing sorts

A backup target (:mod:`vault.backup`) holds verbatim copies of those objects under the same keys,
plus three kinds of its own::

    backup/target               marker written first: which vault the target belongs to (plaintext JSON)
    snapshots/<snapshot id>     catalog rows, sealed to the vault's recovery recipients
    snapshots/<id>.objects      the plaintext list of objects (keys and sizes) that snapshot needs

A local vault directory also holds two names that are not storage objects: the spool
directory for in-flight writes and the embedded SQLite catalog.
"""

from __future__ import annotations

import re

from vault.errors import IntegrityError

CONFIG = "config"
KEYS_PREFIX = "keys/"
MANIFESTS_PREFIX = "manifests/"
PACKS_PREFIX = "packs/"
AUDIT_PREFIX = "audit/"
RECORDS_PREFIX = "records/"
VERSION_RECORDS_PREFIX = "records/v/"
TAG_RECORDS_PREFIX = "records/t/"
OWNER_IDENTITY_PREFIX = "owner-identity/"
RECOVERY_IDENTITY_PREFIX = "recovery-identity/"
NAMESPACES_PREFIX = "namespaces/"
OWNER_RING = "owner"
BACKUP_TARGET = "backup/target"
SNAPSHOTS_PREFIX = "snapshots/"
_OBJECT_LIST = ".objects"

# Not storage objects: names a local vault directory holds beside its objects.
SPOOL_DIR = "tmp"
CATALOG_FILE = "catalog.sqlite"
LOCAL_NOT_OBJECTS = (SPOOL_DIR, CATALOG_FILE)

ID_HEX_LEN = 32
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_RESEALED = ".e"
MAX_EPOCH = 1023  # the keyring format holds at most 1,024 epochs
_RESEALED_RE = re.compile(r"^manifests/([0-9a-f]{32})\.e([1-9][0-9]{0,3})$")


def is_id(value: object) -> bool:
    """Whether ``value`` is a 128-bit id in lower-case hex (version, pack, ring, slot ids)."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def _require_id(value: str, what: str) -> str:
    # Ids come from the catalog or from storage listings, both writable by an attacker.
    if not is_id(value):
        raise IntegrityError(f"invalid {what} id {value!r}: not 32 lower-case hex digits")
    return value


def manifest_key(version_id: str) -> str:
    """Storage key of a version manifest."""
    return MANIFESTS_PREFIX + _require_id(version_id, "version")


def parse_manifest_key(key: str) -> str | None:
    """The version id of a manifest key, or None if ``key`` is not one."""
    rest = key.removeprefix(MANIFESTS_PREFIX)
    return rest if rest != key and is_id(rest) else None


def resealed_manifest_key(version_id: str, epoch: int) -> str:
    """Storage key of a version manifest re-sealed under key epoch ``epoch``.

    Objects are write-once, so a re-encryption cannot replace ``manifests/<id>``; it writes this
    sibling instead and readers take the newest epoch. A sibling name, not ``manifests/<id>/e<N>``:
    a local vault cannot hold a directory where the original manifest is a file.
    """
    if not 0 < epoch <= MAX_EPOCH:
        raise ValueError(f"key epoch {epoch} out of range")
    return f"{manifest_key(version_id)}{_RESEALED}{epoch}"


def parse_resealed_manifest_key(key: str) -> tuple[str, int] | None:
    """(version id, epoch) of a re-sealed manifest key, or None if ``key`` is not one."""
    match = _RESEALED_RE.match(key)
    if match is None:
        return None
    epoch = int(match.group(2))
    return (match.group(1), epoch) if 0 < epoch <= MAX_EPOCH else None


def pack_key(pack_id: str) -> str:
    """Storage key of a pack (fanned out by the first two hex digits)."""
    _require_id(pack_id, "pack")
    return f"{PACKS_PREFIX}{pack_id[:2]}/{pack_id}"


def parse_pack_key(key: str) -> str | None:
    """The pack id of a pack key, or None if ``key`` is not one."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != PACKS_PREFIX or not is_id(parts[2]):
        return None
    return parts[2] if parts[1] == parts[2][:2] else None


def slot_prefix(ring: str) -> str:
    """Prefix under which the slots of ``ring`` (a ring id or :data:`OWNER_RING`) live."""
    if ring != OWNER_RING:
        _require_id(ring, "keyring")
    return f"{KEYS_PREFIX}{ring}/"


def slot_key(ring: str, slot_id: bytes | str) -> str:
    """Storage key of one key slot of ``ring``."""
    slot_hex = slot_id.hex() if isinstance(slot_id, bytes) else slot_id
    return slot_prefix(ring) + _require_id(slot_hex, "slot")


def parse_slot_key(key: str) -> tuple[str, str] | None:
    """(ring, slot id) of a slot key, or None if ``key`` is not one."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != KEYS_PREFIX or not is_id(parts[2]):
        return None
    if parts[1] != OWNER_RING and not is_id(parts[1]):
        return None
    return parts[1], parts[2]


def owner_identity_key(object_id: str) -> str:
    """Storage key of the owner identity sealed under one owner key (its id derives from that key)."""
    return OWNER_IDENTITY_PREFIX + _require_id(object_id, "owner identity")


def parse_owner_identity_key(key: str) -> str | None:
    """The object id of an owner-identity key, or None if ``key`` is not one."""
    rest = key.removeprefix(OWNER_IDENTITY_PREFIX)
    return rest if rest != key and is_id(rest) else None


def recovery_identity_key(slot_id: str) -> str:
    """Storage key of the recovery identity whose x25519 slot on the owner ring is ``slot_id``."""
    return RECOVERY_IDENTITY_PREFIX + _require_id(slot_id, "recovery identity")


def parse_recovery_identity_key(key: str) -> str | None:
    """The slot id of a recovery-identity key, or None if ``key`` is not one."""
    rest = key.removeprefix(RECOVERY_IDENTITY_PREFIX)
    return rest if rest != key and is_id(rest) else None


def namespace_keyring_key(record_id: str) -> str:
    """Storage key of the owner-signed record giving a deeper namespace its own keyring."""
    return NAMESPACES_PREFIX + _require_id(record_id, "namespace record")


def parse_namespace_keyring_key(key: str) -> str | None:
    """The record id of a namespace-keyring record key, or None if ``key`` is not one."""
    rest = key.removeprefix(NAMESPACES_PREFIX)
    return rest if rest != key and is_id(rest) else None


def snapshot_key(snapshot_id: str) -> str:
    """Storage key (on a backup target) of a sealed snapshot."""
    return SNAPSHOTS_PREFIX + _require_id(snapshot_id, "snapshot")


def snapshot_objects_key(snapshot_id: str) -> str:
    """Storage key (on a backup target) of a snapshot's plaintext object list."""
    return snapshot_key(snapshot_id) + _OBJECT_LIST


def parse_snapshot_key(key: str) -> str | None:
    """The snapshot id of a sealed-snapshot key, or None if ``key`` is not one."""
    rest = key.removeprefix(SNAPSHOTS_PREFIX)
    return rest if rest != key and is_id(rest) else None


def parse_snapshot_objects_key(key: str) -> str | None:
    """The snapshot id of an object-list key, or None if ``key`` is not one."""
    if not key.endswith(_OBJECT_LIST):
        return None
    return parse_snapshot_key(key.removesuffix(_OBJECT_LIST))


def is_backup_key(key: str) -> bool:
    """Whether ``key`` is one of a backup target's own objects (not a copy of a vault object)."""
    return key == BACKUP_TARGET or key.startswith(SNAPSHOTS_PREFIX)


_AUDIT_DIGITS = 20
_AUDIT_RE = re.compile(r"^audit/([0-9]{20})$")


def audit_checkpoint_key(seq: int) -> str:
    """Storage key of the audit checkpoint that pins row ``seq`` (1 ≤ seq < 2**63)."""
    if isinstance(seq, bool) or not 0 < seq < 1 << 63:
        raise ValueError(f"audit sequence {seq!r} out of range")
    return f"{AUDIT_PREFIX}{seq:0{_AUDIT_DIGITS}d}"


def parse_audit_checkpoint_key(key: str) -> int | None:
    """The row an audit checkpoint key pins, or None if ``key`` is not one."""
    match = _AUDIT_RE.match(key)
    if match is None:
        return None
    seq = int(match.group(1))
    return seq if 0 < seq < 1 << 63 else None


_RECORD_SEQ_DIGITS = 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_VERSION_RECORD_RE = re.compile(r"^records/v/([0-9a-f]{32})/([0-9a-f]{64})$")
_TAG_RECORD_RE = re.compile(r"^records/t/([0-9a-f]{32})/([0-9]{20})$")


def version_records_prefix(version_id: str) -> str:
    """Prefix under which the provenance records of one version live."""
    return f"{VERSION_RECORDS_PREFIX}{_require_id(version_id, 'version')}/"


def version_record_key(version_id: str, digest: str) -> str:
    """Storage key of one provenance record of a version, named by the record's SHA-256."""
    if not _SHA256_RE.match(digest):
        raise IntegrityError(f"invalid record digest {digest!r}: not 64 lower-case hex digits")
    return version_records_prefix(version_id) + digest


def parse_version_record_key(key: str) -> tuple[str, str] | None:
    """(version id, record digest) of a version record key, or None if ``key`` is not one."""
    match = _VERSION_RECORD_RE.match(key)
    return None if match is None else (match.group(1), match.group(2))


def tag_records_prefix(tag_id: str) -> str:
    """Prefix under which the provenance records of one tag's moves live."""
    return f"{TAG_RECORDS_PREFIX}{_require_id(tag_id, 'tag')}/"


def tag_record_key(tag_id: str, seq: int) -> str:
    """Storage key of the ``seq``-th move of a tag (1 ≤ seq < 2**53)."""
    if isinstance(seq, bool) or not 0 < seq < 1 << 53:
        raise ValueError(f"tag record sequence {seq!r} out of range")
    return f"{tag_records_prefix(tag_id)}{seq:0{_RECORD_SEQ_DIGITS}d}"


def parse_tag_record_key(key: str) -> tuple[str, int] | None:
    """(tag id, seq) of a tag record key, or None if ``key`` is not one."""
    match = _TAG_RECORD_RE.match(key)
    if match is None:
        return None
    seq = int(match.group(2))
    return (match.group(1), seq) if 0 < seq < 1 << 53 else None
